"""Manifests in DynamoDB (their bytes: storage/bodies.py; their tags: storage/tags.py).

Invariants:
- a tag only points at a stored manifest: the tag is written in the manifest's own
  transaction, and deleting a manifest first marks it (`deleting`), so no push can tag it
  unnoticed, then deletes its tags, found by the tags table's strongly consistent
  `by_digest` index, in batches, and the manifest with the last batch;
- a manifest with a `subject` has exactly one referrers-index entry while it exists.
Nothing on the manifest item grows with its tags: 10,000 tags on one manifest cost what 10
separate manifests cost. Concurrent writers race on conditions, never on blind overwrites;
the loser retries (transactions.retried).
"""

from __future__ import annotations

import json
import secrets

from pynamodb.attributes import UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.errors import (
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
)
from chalicelib.events import actor
from chalicelib.policies import immutability
from chalicelib.registry.manifests import ParsedManifest
from chalicelib.storage import (
    blobs,
    bodies,
    cache,
    referrers,
    repositories,
    tags,
    transactions,
)
from chalicelib.storage.errors import Contention
from chalicelib.storage.models import (
    BlobLinkModel,
    ManifestModel,
    ReferrerModel,
    RepositoryModel,
    TagModel,
    utcnow,
)


def get_by_digest(repository: str, digest: str, *, with_body: bool = True) -> bodies.StoredManifest:
    try:
        item = cache.read(
            cache.dynamodb(ManifestModel.Meta.table_name, repository),
            ("manifest", digest),
            lambda: ManifestModel.get(repository, digest),
            size=cache.item_size,
        )
    except DoesNotExist:
        raise ManifestUnknown({"digest": digest}) from None
    body: bytes | None = item.body  # None when the manifest lives in S3
    return bodies.stored(item.digest, item.media_type, int(item.size), body, with_body=with_body)


def existing(repository: str, digests: set[str]) -> dict[str, str | None]:
    """Which of `digests` are stored here, with each one's `quay.expires-after` value."""
    keys = [(repository, d) for d in digests]
    found = ManifestModel.batch_get(keys, attributes_to_get=["digest", "expires_after"])
    return {m.digest: m.expires_after for m in found}


def _manifest_actions(parsed: ParsedManifest, expires_after: str | None) -> list[Action]:
    inline = bodies.inline(parsed.size)
    actions: list[Action] = [
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
    if parsed.annotations and bodies.inline(len(json.dumps(parsed.annotations))):
        actions.append(ManifestModel.annotations.set(parsed.annotations))
    return actions


def _pushed_by(tag: str | None) -> list[Action]:
    """The push's tag and actor on the manifest item, for the stream's events and audit."""
    who = actor.current()
    return [
        ManifestModel.pushed_tag.set(tag) if tag is not None else ManifestModel.pushed_tag.remove(),
        ManifestModel.pushed_by.set(who.stamp()),
        ManifestModel.pushed_from.set(who.ip) if who.ip else ManifestModel.pushed_from.remove(),
    ]


def _ensure_repository(t: TransactWrite, repository: str) -> None:
    t.update(
        RepositoryModel(repository),
        actions=[
            RepositoryModel.listing.set(
                RepositoryModel.listing | repositories.listing_for(repository)
            ),
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
    _check_item_fits(parsed)
    bodies.store_large(parsed.digest, parsed.body)
    touches = _touches(repository, parsed)
    if len(touches) > _MAX_TOUCHES_INLINE:
        # Too many for one transaction (100 items): touch first, in batches. A touch
        # protects for the whole grace window, so it need not share the commit.
        for start in range(0, len(touches), 100):
            _touch(repository, touches[start : start + 100])
        touches = []
    transactions.retried(
        lambda: _commit(repository, parsed, tag, expires_after, touches), what="tag"
    )


def _commit(
    repository: str,
    parsed: ParsedManifest,
    tag: str | None,
    expires_after: str | None,
    touches: list[Touch],
) -> None:
    previous = tags.current_digest(repository, tag) if tag is not None else None
    try:
        with transactions.transaction() as t:
            now = clock.now()
            for item, attribute in touches:  # first, so failures map to references
                t.update(item, actions=[attribute.set(now)], condition=_exists(item))
            actions = _manifest_actions(parsed, expires_after)
            # A push wins over a delete in progress: the deleter sees its mark gone.
            actions.append(ManifestModel.deleting.remove())
            actions += _pushed_by(tag)
            t.update(ManifestModel(repository, parsed.digest), actions=actions)
            _ensure_repository(t, repository)
            if parsed.subject is not None:
                t.save(referrers.entry_for(repository, parsed))
            if tag is not None:
                tags.write(t, repository, tag, parsed, previous, expires_after)
    except TransactWriteError as exc:
        if transactions.failed_conditions(exc):
            _raise_missing(repository, touches)
        if transactions.lost_race(exc):
            raise transactions.LostRace from exc
        raise


# The manifest item's sets of referenced digests, beside its inline bytes and annotations (64
# KiB each at most), must fit DynamoDB's 400 KB item: about 4,200 sha256 references.
MAX_REFERENCE_BYTES = 300_000


def _check_item_fits(parsed: ParsedManifest) -> None:
    """Refuse, as invalid, a manifest whose references would not fit its item (else the
    commit would fail with DynamoDB's ValidationException: a 500)."""
    referenced = {d.digest for d in parsed.blobs} | {d.digest for d in parsed.children}
    size = sum(len(digest) + 1 for digest in referenced)
    if size > MAX_REFERENCE_BYTES:
        raise ManifestInvalid(
            {"references": len(referenced), "reference_bytes": size},
            message=f"manifest references more than {MAX_REFERENCE_BYTES} bytes of digests",
        )


# Items a manifest's own commit may need besides its touches: manifest, repository,
# referrers entry, tag.
_MAX_TOUCHES_INLINE = 100 - 4

Touch = tuple[BlobLinkModel | ManifestModel, UTCDateTimeAttribute]


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


def _exists(item: BlobLinkModel | ManifestModel) -> Condition:
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


# Tags deleted per transaction: with the manifest and its referrers entry, DynamoDB's 100.
_TAG_BATCH = 98


def delete_manifest(repository: str, digest: str) -> None:
    """Delete a manifest and every tag pointing at it, however many.

    Mark the manifest, then delete its tags batch by batch, the last batch with the
    manifest. A push naming the manifest meanwhile clears the mark and wins: the delete
    then stops with 429 (retry) and the tags it already removed stay removed, as if they
    had been deleted one by one before the push. A delete cut short (a crash, a timeout)
    leaves the mark, which pulls ignore; repeating the DELETE finishes it.
    """
    immutability.refuse_manifest_delete(repository, digest)
    marker = secrets.token_hex(8)
    manifest = ManifestModel(repository, digest)
    try:
        manifest.update(
            actions=[ManifestModel.deleting.set(marker)], condition=ManifestModel.digest.exists()
        )
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise ManifestUnknown({"digest": digest}) from None
        raise
    while not transactions.retried(
        lambda: _next_batch(manifest, marker), what="manifest", attempts=_ATTEMPTS_PER_BATCH
    ):
        pass


# A batch loses a race only when a tag moves away meanwhile: a few tries, then 429.
_ATTEMPTS_PER_BATCH = 8


def _next_batch(manifest: ManifestModel, marker: str) -> bool:
    """Delete the next batch of the manifest's tags (the last with the manifest itself);
    True when the manifest is gone."""
    repository, digest = manifest.repository, manifest.digest
    keys, more = tags.keys_of(repository, digest, _TAG_BATCH)
    immutability.refuse_tags(repository, keys)  # one tagged since the check above
    try:
        _delete_batch(manifest, marker, keys, last=not more)
    except TransactWriteError as exc:
        if not transactions.lost_race(exc):
            raise
        if _gone_or_ours(repository, digest, marker):
            return True  # another delete of the same manifest finished it
        raise transactions.LostRace from exc  # a tag moved away meanwhile: read again
    return not more


def _delete_batch(manifest: ManifestModel, marker: str, sort_keys: list[str], last: bool) -> None:
    repository, digest = manifest.repository, manifest.digest
    ours = ManifestModel.deleting == marker
    with transactions.transaction() as t:
        for sort_key in sort_keys:
            t.delete(TagModel(repository, sort_key), condition=TagModel.digest == digest)
        if not last:
            t.condition_check(ManifestModel, repository, digest, condition=ours)
            return
        t.delete(ManifestModel(repository, digest), condition=ours)
        if manifest.subject:
            t.delete(ReferrerModel(referrers.subject_key(repository, manifest.subject), digest))


def _gone_or_ours(repository: str, digest: str, marker: str) -> bool:
    """After a lost race: True if the manifest is gone; False (go on) if this delete's mark
    is still on it; 429 if a push took it back."""
    try:
        current = ManifestModel.get(
            repository, digest, consistent_read=True, attributes_to_get=["digest", "deleting"]
        )
    except DoesNotExist:
        return True
    if current.deleting != marker:
        raise Contention(
            {"digest": digest, "reason": "the manifest was pushed again while being deleted"}
        )
    return False
