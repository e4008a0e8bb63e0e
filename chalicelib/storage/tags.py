"""Tags in DynamoDB: one item per tag, carrying a copy of its manifest's bytes (when small)
so that a pull by tag is one GetItem.

The tag sort key gives the spec's order from a Query; the `by_digest` LSI lists one
manifest's tags, strongly consistent, for deleting the manifest with all of them. A tag is
written only in its manifest's own transaction (storage/manifests.py), so it never points
at a manifest that is not stored.
"""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DeleteError, DoesNotExist
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.errors import ManifestUnknown, TagExpired
from chalicelib.policies import immutability
from chalicelib.registry import expiry
from chalicelib.registry.manifests import ParsedManifest
from chalicelib.registry.names import tag_sort_key
from chalicelib.storage import bodies, cache, transactions
from chalicelib.storage.models import TagModel, TagsByDigest


def get(repository: str, tag: str, *, with_body: bool = True) -> bodies.StoredManifest:
    key = tag_sort_key(tag)
    try:
        item = cache.read(
            cache.dynamodb(TagModel.Meta.table_name, repository),
            ("tag", key),
            lambda: TagModel.get(repository, key),
            size=cache.item_size,
        )
    except DoesNotExist:
        raise ManifestUnknown({"tag": tag}) from None
    # DynamoDB's TTL deletes lag by up to days; an expired tag is gone for clients at once.
    if expired(item):
        raise TagExpired({"tag": tag, "expired_at": item.expires_at.isoformat()})
    body: bytes | None = item.body  # None when the manifest lives in S3
    return bodies.stored(item.digest, item.media_type, int(item.size), body, with_body=with_body)


def expired(item: TagModel) -> bool:
    return item.expires_at is not None and item.expires_at <= clock.now()


def current_digest(repository: str, tag: str) -> str | None:
    """The digest the tag points at now, expired or not (a retag is conditional on it)."""
    try:
        item = TagModel.get(repository, tag_sort_key(tag), attributes_to_get=["digest"])
    except DoesNotExist:
        return None
    return item.digest


def write(
    t: TransactWrite,
    repository: str,
    tag: str,
    parsed: ParsedManifest,
    previous: str | None,
    expires_after: str | None,
) -> None:
    """Point the tag at the manifest, in the manifest's transaction, on condition that it
    still points where the push read it (`previous`, None: nowhere)."""
    lifetime = expiry.parse(expires_after)
    if previous is not None and previous != parsed.digest:
        immutability.refuse_change(repository, tag)
    lifetime = immutability.lifetime_for(repository, tag, lifetime)
    expires_at = clock.now() + lifetime if lifetime is not None else None
    save(t, repository, tag, parsed, previous, expires_at)


def save(
    t: TransactWrite,
    repository: str,
    tag: str,
    parsed: ParsedManifest,
    previous: str | None,
    expires_at: datetime | None,
    revalidate_at: datetime | None = None,
) -> None:
    """The tag item, in the manifest's transaction, on condition that the tag still points
    where the writer read it (`previous`, None: nowhere); policies are the caller's."""
    item = TagModel(
        repository,
        tag_sort_key(tag),
        name=tag,
        digest=parsed.digest,
        media_type=parsed.media_type,
        size=parsed.size,
        body=parsed.body if bodies.inline(parsed.size) else None,
        pushed_at=clock.now(),
        expires_at=expires_at,
        revalidate_at=revalidate_at,
    )
    if previous is None:
        t.save(item, condition=TagModel.sort_key.does_not_exist())
    else:
        t.save(item, condition=TagModel.digest == previous)


def delete(repository: str, tag: str) -> None:
    """Delete a live tag: one conditional DeleteItem (only the version read)."""
    transactions.retried(lambda: _delete_once(repository, tag), what="tag")


def _delete_once(repository: str, tag: str) -> None:
    try:
        current = TagModel.get(
            repository, tag_sort_key(tag), attributes_to_get=["digest", "expires_at"]
        )
    except DoesNotExist:
        raise ManifestUnknown({"tag": tag}) from None
    if expired(current):
        raise ManifestUnknown({"tag": tag})  # as if cleanup had already removed it
    immutability.refuse_change(repository, tag)
    try:
        TagModel(repository, tag_sort_key(tag)).delete(condition=TagModel.digest == current.digest)
    except DeleteError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise transactions.LostRace from exc
        raise


def keys_of(repository: str, digest: str, limit: int) -> tuple[list[str], bool]:
    """Up to `limit` sort keys of the manifest's tags, read strongly consistent, and whether
    more may follow."""
    query = TagModel.by_digest.query(
        repository,
        TagsByDigest.digest == digest,
        consistent_read=True,
        limit=limit,
        page_size=limit,
    )
    keys = [item.sort_key for item in query]
    return keys, query.last_evaluated_key is not None


def names(repository: str, after: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to `limit` live tags after `after`, in the spec's order; True when more remain.
    Cached for the bound (storage/cache.py): a page reads every listed item whole, inline
    manifest copies included, so a popular repository's listing is costly to repeat."""
    return cache.read(
        cache.dynamodb(TagModel.Meta.table_name, repository),
        ("names", after, limit),
        lambda: _names(repository, after, limit),
        size=lambda found: 256 + 64 * len(found[0]),
    )


def _names(repository: str, after: str | None, limit: int) -> tuple[list[str], bool]:
    items, more = page(repository, after, limit, attributes=["name"])
    return [item.name for item in items], more


def page(
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
