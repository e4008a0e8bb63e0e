"""V1 image records: the Docker V1 pull protocol names images by id alone, without their
repository, so the ids a V1 client is given are written here for it to look up."""

from __future__ import annotations

import json
from datetime import timedelta

from chalicelib import clock
from chalicelib.registry.schema1 import V1Image
from chalicelib.storage.models import V1ImageModel

# Long enough for any pull that started from a tags listing; the next listing renews it.
RECORD_LIFETIME = timedelta(days=7)


def remember(repository: str, chain: list[V1Image]) -> None:
    """Record a chain (base first); one BatchWriteItem per 25 images."""
    expires = clock.now() + RECORD_LIFETIME
    ids = [image.id for image in chain]
    with V1ImageModel.batch_write() as batch:
        for depth, image in enumerate(chain):
            batch.save(
                V1ImageModel(
                    image.id,
                    repository,
                    blob_sum=image.blob_sum,
                    ancestry=list(reversed(ids[: depth + 1])),
                    v1_json=json.dumps(image.config, separators=(",", ":"), sort_keys=True),
                    expires_at=expires,
                )
            )


def find(image_id: str) -> list[V1ImageModel]:
    """The live records of an id, one per repository holding it."""
    now = clock.now()
    return [
        item
        for item in V1ImageModel.query(image_id, limit=100)
        if item.expires_at is None or item.expires_at > now
    ]
