"""The referrers index (distribution-spec "Listing Referrers").

An entry is written in the same transaction as the manifest that names a subject and is
deleted with it. Deleting the *subject* leaves its referrers and their entries alone: they
stay listed until they are deleted themselves or garbage collection collects them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.registry.manifests import ParsedManifest
from chalicelib.storage import cache
from chalicelib.storage.models import ReferrerModel

# Annotations larger than this stay in the manifest (read back when listed), keeping the
# item far below DynamoDB's 400 KB.
INLINE_ANNOTATIONS_BYTES = 64 * 1024


def subject_key(repository: str, subject: str) -> str:
    return f"{repository}@{subject}"


def _type_key(artifact_type: str | None, digest: str) -> str:
    return f"{artifact_type or ''} {digest}"


def entry_for(repository: str, parsed: ParsedManifest) -> ReferrerModel:
    assert parsed.subject is not None
    annotations = parsed.annotations or None
    in_body = bool(annotations) and len(json.dumps(annotations)) > INLINE_ANNOTATIONS_BYTES
    return ReferrerModel(
        subject_key(repository, parsed.subject.digest),
        parsed.digest,
        type_key=_type_key(parsed.artifact_type, parsed.digest),
        media_type=parsed.media_type,
        size=parsed.size,
        artifact_type=parsed.artifact_type,
        annotations=None if in_body else annotations,
        annotations_in_body=in_body,
    )


@dataclass(frozen=True)
class Referrer:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None
    annotations_in_body: bool

    def descriptor(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            found["artifactType"] = self.artifact_type
        if self.annotations:
            found["annotations"] = self.annotations
        return found


def list_page(
    repository: str, subject: str, artifact_type: str | None, after: str | None, limit: int
) -> tuple[list[Referrer], bool]:
    """One Query page of referrers after digest `after`; True when more remain. Cached for
    the bound (storage/cache.py): a popular subject's page is read once per container."""
    key = subject_key(repository, subject)
    return cache.read(
        cache.dynamodb(ReferrerModel.Meta.table_name, key),
        ("page", artifact_type, after, limit),
        lambda: _read_page(key, artifact_type, after, limit),
        size=lambda page: 256 + 512 * len(page[0]),
    )


def _read_page(
    key: str, artifact_type: str | None, after: str | None, limit: int
) -> tuple[list[Referrer], bool]:
    start: dict[str, Any] | None = None
    if artifact_type is None:
        if after:
            start = {"subject_key": {"S": key}, "digest": {"S": after}}
        items = ReferrerModel.query(
            key, limit=limit + 1, page_size=limit + 1, last_evaluated_key=start
        )
    else:
        if after:
            start = {
                "subject_key": {"S": key},
                "digest": {"S": after},
                "type_key": {"S": _type_key(artifact_type, after)},
            }
        items = ReferrerModel.by_type.query(
            key,
            ReferrerModel.type_key.startswith(artifact_type + " "),
            limit=limit + 1,
            page_size=limit + 1,
            last_evaluated_key=start,
        )
    found: list[Referrer] = []
    for item in items:
        found.append(
            Referrer(
                digest=item.digest,
                media_type=item.media_type,
                size=int(item.size),
                artifact_type=item.artifact_type,
                annotations=item.annotations.as_dict() if item.annotations else None,
                annotations_in_body=bool(item.annotations_in_body),
            )
        )
        if len(found) > limit:
            break
    return found[:limit], len(found) > limit
