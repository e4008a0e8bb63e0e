"""What the management API (and so the web console) shows about a repository's content
beyond a pull's reads: live tag counts and the latest push, several manifests' bytes at
once, and the one tag change it makes, an expiry set or cleared.

Apart from storage/tags.py and storage/manifests.py, which pulls and pushes load: none of
this runs on a registry request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import UpdateError

from chalicelib import clock
from chalicelib.errors import ManifestUnknown
from chalicelib.policies import immutability
from chalicelib.registry.names import tag_sort_key
from chalicelib.storage.models import ManifestModel, TagModel


def set_expiry(repository: str, tag: str, expires_at: datetime | None) -> None:
    """Set or clear a live tag's expiry (Quay's tag `expiration`): one conditional UpdateItem;
    an unknown or already expired tag is MANIFEST_UNKNOWN and nothing changes."""
    if expires_at is not None:  # an immutable tag does not expire (policies/immutability.py)
        immutability.refuse_change(repository, tag)
    live = TagModel.sort_key.exists() & (
        TagModel.expires_at.does_not_exist() | (TagModel.expires_at > clock.now())
    )
    change = (
        TagModel.expires_at.remove() if expires_at is None else TagModel.expires_at.set(expires_at)
    )
    try:
        TagModel(repository, tag_sort_key(tag)).update(actions=[change], condition=live)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise ManifestUnknown({"tag": tag}) from exc
        raise


@dataclass(frozen=True)
class Summary:
    count: int  # live tags, at most the cap
    last_pushed: datetime | None
    capped: bool  # more live tags than counted


def summary(repository: str, cap: int = 1000) -> Summary:
    """How many live tags and the latest push: one Query of the repository's partition (two
    attributes projected; DynamoDB pages it past 1 MB), stopped after `cap` tags."""
    live = TagModel.expires_at.does_not_exist() | (TagModel.expires_at > clock.now())
    query = TagModel.query(
        repository, filter_condition=live, attributes_to_get=["pushed_at", "expires_at"]
    )
    count, last = 0, None
    for item in query:
        if count == cap:
            return Summary(count, last, True)
        count += 1
        if last is None or item.pushed_at > last:
            last = item.pushed_at
    return Summary(count, last, False)


def manifest_bodies(repository: str, digests: set[str]) -> dict[str, bytes | None]:
    """Several manifests' stored bytes (None: kept in S3), one BatchGetItem per 100 keys:
    the platforms and sizes of the indexes on a page of tags."""
    keys = [(repository, d) for d in sorted(digests)]
    found = ManifestModel.batch_get(keys, attributes_to_get=["digest", "body"])
    return {m.digest: m.body for m in found}
