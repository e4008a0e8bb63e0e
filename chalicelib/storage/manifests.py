"""Manifests and tags in DynamoDB; manifests too large for an item live in S3.

Invariants, each kept by one DynamoDB transaction:
- a tag only points at a stored manifest (the tag is written with the manifest, or with a
  condition that the manifest exists);
- a manifest's `tags` set names exactly the tags pointing at it, so deleting a manifest
  deletes its tags under strongly consistent conditions;
- a manifest with a `subject` has exactly one referrers-index entry while it exists.
A tag item carries a copy of its manifest's bytes (when small) so that a pull by tag is one
GetItem. Concurrent writers race on conditions, never on blind overwrites; the loser retries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pynamodb.attributes import UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib import clock, config
from chalicelib.errors import ManifestBlobUnknown, ManifestUnknown, TagExpired, TooManyRequests
from chalicelib.registry import expiry
from chalicelib.registry.manifests import ParsedManifest
from chalicelib.registry.names import tag_sort_key
from chalicelib.storage import aws, blobs, referrers, transactions
from chalicelib.storage.models import (
    BlobLinkModel,
    ManifestModel,
    ReferrerModel,
    RepositoryModel,
    TagModel,
    utcnow,
)

_ATTEMPTS = 4


@dataclass(frozen=True)
class StoredManifest:
    digest: str
    media_type: str
    size: int
    body: bytes | None  # None on HEAD, where the bytes are not needed


def _object_key(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"manifests/{algorithm}/{encoded}"


def _inline(size: int) -> bool:
    return size <= config.settings.inline_manifest_bytes


def _fetch_body(digest: str) -> bytes:
    obj = aws.s3().get_object(Bucket=config.settings.bucket, Key=_object_key(digest))
    return obj["Body"].read()


def get_by_tag(repository: str, tag: str, *, with_body: bool = True) -> StoredManifest:
    try:
        item = TagModel.get(repository, tag_sort_key(tag))
    except DoesNotExist:
        raise ManifestUnknown({"tag": tag}) from None
    # DynamoDB's TTL deletes lag by up to days; an expired tag is gone for clients at once.
    if _expired(item):
        raise TagExpired({"tag": tag, "expired_at": item.expires_at.isoformat()})
    body = item.body
    if with_body and body is None:
        body = _fetch_body(item.digest)
    return StoredManifest(item.digest, item.media_type, int(item.size), body if with_body else None)


def _expired(item: TagModel) -> bool:
    return item.expires_at is not None and item.expires_at <= clock.now()


def get_by_digest(repository: str, digest: str, *, with_body: bool = True) -> StoredManifest:
    try:
        item = ManifestModel.get(repository, digest)
    except DoesNotExist:
        raise ManifestUnknown({"digest": digest}) from None
    body = item.body
    if with_body and body is None:
        body = _fetch_body(item.digest)
    return StoredManifest(item.digest, item.media_type, int(item.size), body if with_body else None)


def existing(repository: str, digests: set[str]) -> dict[str, str | None]:
    """Which of `digests` are stored here, with each one's `quay.expires-after` value."""
    keys = [(repository, d) for d in digests]
    found = ManifestModel.batch_get(keys, attributes_to_get=["digest", "expires_after"])
    return {m.digest: m.expires_after for m in found}


def _manifest_actions(parsed: ParsedManifest, expires_after: str | None) -> list:
    inline = _inline(parsed.size)
    actions = [
        ManifestModel.media_type.set(parsed.media_type),
        ManifestModel.size.set(parsed.size),
        ManifestModel.pushed_at.set(utcnow()),
        ManifestModel.body.set(parsed.body) if inline else ManifestModel.body.remove(),
    ]
    if parsed.blobs:
        actions.append(ManifestModel.blobs.set({d.digest for d in parsed.blobs}))
    if parsed.children:
        actions.append(ManifestModel.children.set({d.digest for d in parsed.children}))
    if parsed.subject:
        actions.append(ManifestModel.subject.set(parsed.subject.digest))
    if parsed.artifact_type:
        actions.append(ManifestModel.artifact_type.set(parsed.artifact_type))
    actions.append(
        ManifestModel.expires_after.set(expires_after)
        if expires_after is not None
        else ManifestModel.expires_after.remove()
    )
    # Copied for the referrers API; oversized ones stay only in the body (read on demand).
    if parsed.annotations and _inline(len(json.dumps(parsed.annotations))):
        actions.append(ManifestModel.annotations.set(parsed.annotations))
    return actions


def _ensure_repository(t: TransactWrite, repository: str) -> None:
    t.update(
        RepositoryModel(repository),
        actions=[
            RepositoryModel.listing.set(RepositoryModel.listing | "catalog"),
            RepositoryModel.created_at.set(RepositoryModel.created_at | utcnow()),
        ],
    )


def put(
    repository: str, parsed: ParsedManifest, tag: str | None, expires_after: str | None = None
) -> None:
    """Store a manifest and, with a tag, point the tag at it, in one transaction.

    `expires_after` is the `quay.expires-after` value that applies; the tag's TTL is push
    time plus its duration, and a push without one clears any earlier expiry.
    """
    if not _inline(parsed.size):
        aws.put_if_absent(_object_key(parsed.digest), parsed.body)
    touches = _touches(repository, parsed)
    if len(touches) > _MAX_TOUCHES_INLINE:
        # Too many for one transaction (100 items): touch first, in batches. A touch
        # protects for the whole grace window, so it need not share the commit.
        for start in range(0, len(touches), 100):
            _touch(repository, touches[start : start + 100])
        touches = []
    for _ in range(_ATTEMPTS):
        previous = None
        if tag is not None:
            try:
                previous = TagModel.get(repository, tag_sort_key(tag), attributes_to_get=["digest"])
            except DoesNotExist:
                previous = None
        try:
            with transactions.transaction() as t:
                now = clock.now()
                for item, attribute in touches:  # first, so failures map to references
                    t.update(item, actions=[attribute.set(now)], condition=_exists(item))
                actions = _manifest_actions(parsed, expires_after)
                if tag is not None:
                    actions.append(ManifestModel.tags.add({tag}))
                t.update(ManifestModel(repository, parsed.digest), actions=actions)
                _ensure_repository(t, repository)
                if parsed.subject is not None:
                    t.save(referrers.entry_for(repository, parsed))
                if tag is not None:
                    _write_tag(t, repository, tag, parsed, previous, expires_after)
            return
        except TransactWriteError as exc:
            if transactions.failed_conditions(exc):
                _raise_missing(repository, touches)
            if not transactions.lost_race(exc):
                raise
    raise TooManyRequests({"reason": "concurrent updates to this tag; retry"})


# Items a manifest's own commit may need (manifest, repository, referrer, tag, old manifest).
_MAX_TOUCHES_INLINE = 100 - 5

Touch = tuple[Model, UTCDateTimeAttribute]


def _touches(repository: str, parsed: ParsedManifest) -> list[Touch]:
    """Everything the manifest references, to be marked as used (docs/gc.md)."""
    found: list[Touch] = [
        (BlobLinkModel(repository, d), BlobLinkModel.touched_at)
        for d in sorted({d.digest for d in parsed.blobs})
    ]
    found += [
        (ManifestModel(repository, d), ManifestModel.touched_at)
        for d in sorted({d.digest for d in parsed.children})
    ]
    return found


def _exists(item: Model) -> Condition:
    return type(item).digest.exists()


def _touch(repository: str, batch: list[Touch]) -> None:
    now = clock.now()
    try:
        with transactions.transaction() as t:
            for item, attribute in batch:
                t.update(item, actions=[attribute.set(now)], condition=_exists(item))
    except TransactWriteError:
        _raise_missing(repository, batch)
        raise


def _raise_missing(repository: str, touches: list[Touch]) -> None:
    """Raise if a referenced blob or child is missing (never pushed, or collected meanwhile).

    pynamodb reorders a transaction's items, so which condition failed is found by reading.
    """
    wanted_blobs = {i.digest for i, _ in touches if isinstance(i, BlobLinkModel)}
    wanted_children = {i.digest for i, _ in touches if isinstance(i, ManifestModel)}
    missing = set()
    if wanted_blobs:
        missing |= wanted_blobs - blobs.existing_links(repository, wanted_blobs)
    if wanted_children:
        missing |= wanted_children - set(existing(repository, wanted_children))
    if missing:
        raise ManifestBlobUnknown({"missing": sorted(missing)})


def _write_tag(
    t: TransactWrite,
    repository: str,
    tag: str,
    parsed: ParsedManifest,
    previous: TagModel | None,
    expires_after: str | None,
) -> None:
    lifetime = expiry.parse(expires_after)
    item = TagModel(
        repository,
        tag_sort_key(tag),
        name=tag,
        digest=parsed.digest,
        media_type=parsed.media_type,
        size=parsed.size,
        body=parsed.body if _inline(parsed.size) else None,
        pushed_at=clock.now(),
        expires_at=clock.now() + lifetime if lifetime is not None else None,
    )
    if previous is None:
        t.save(item, condition=TagModel.sort_key.does_not_exist())
        return
    t.save(item, condition=TagModel.digest == previous.digest)
    if previous.digest != parsed.digest:
        t.update(
            ManifestModel(repository, previous.digest),
            actions=[ManifestModel.tags.delete({tag})],
            condition=ManifestModel.digest.exists(),
        )


def delete_tag(repository: str, tag: str) -> None:
    for _ in range(_ATTEMPTS):
        try:
            current = TagModel.get(
                repository, tag_sort_key(tag), attributes_to_get=["digest", "expires_at"]
            )
        except DoesNotExist:
            raise ManifestUnknown({"tag": tag}) from None
        if _expired(current):
            raise ManifestUnknown({"tag": tag})  # as if cleanup had already removed it
        try:
            with transactions.transaction() as t:
                t.delete(
                    TagModel(repository, tag_sort_key(tag)),
                    condition=TagModel.digest == current.digest,
                )
                t.update(
                    ManifestModel(repository, current.digest),
                    actions=[ManifestModel.tags.delete({tag})],
                    condition=ManifestModel.digest.exists(),
                )
            return
        except TransactWriteError as exc:
            if not transactions.lost_race(exc):
                raise
    raise TooManyRequests({"reason": "concurrent updates to this tag; retry"})


def delete_manifest(repository: str, digest: str) -> None:
    """Delete a manifest and every tag pointing at it, atomically."""
    for _ in range(_ATTEMPTS):
        try:
            current = ManifestModel.get(
                repository, digest, attributes_to_get=["digest", "tags", "subject"]
            )
        except DoesNotExist:
            raise ManifestUnknown({"digest": digest}) from None
        tags = set(current.tags or ())
        try:
            with transactions.transaction() as t:
                # The tags set must be what we read: a tag added meanwhile aborts and retries.
                condition = (
                    ManifestModel.tags == tags if tags else ManifestModel.tags.does_not_exist()
                )
                t.delete(ManifestModel(repository, digest), condition=condition)
                if current.subject:
                    t.delete(
                        ReferrerModel(referrers.subject_key(repository, current.subject), digest)
                    )
                for tag in sorted(tags):
                    # A tag DynamoDB's TTL already removed may linger in the set.
                    t.delete(
                        TagModel(repository, tag_sort_key(tag)),
                        condition=(TagModel.digest == digest) | TagModel.digest.does_not_exist(),
                    )
            return
        except TransactWriteError as exc:
            if not transactions.lost_race(exc):
                raise
    raise TooManyRequests({"reason": "concurrent updates to this manifest; retry"})


def list_tags(repository: str, after: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to `limit` live tags after `after`, in the spec's order; True when more remain."""
    items, more = tag_page(repository, after, limit, attributes=["name"])
    return [item.name for item in items], more


def tag_page(
    repository: str,
    after: str | None,
    limit: int,
    *,
    include_expired: bool = False,
    attributes: list[str] | None = None,
) -> tuple[list[TagModel], bool]:
    """One page of tag items (one Query, more only where expired tags are skipped)."""
    start = None
    if after:
        start = {"repository": {"S": repository}, "sort_key": {"S": tag_sort_key(after)}}
    live = TagModel.expires_at.does_not_exist() | (TagModel.expires_at > clock.now())
    query = TagModel.query(
        repository,
        limit=limit + 1,
        page_size=limit + 1,
        last_evaluated_key=start,
        filter_condition=None if include_expired else live,
        attributes_to_get=attributes,
    )
    items = []
    for item in query:
        items.append(item)
        if len(items) > limit:
            break
    return items[:limit], len(items) > limit
