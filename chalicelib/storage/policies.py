"""Immutability and auto-prune policies, kept in the accounts table beside the permissions
they resemble: pk "policy <resource>" ("acme/" for a namespace, "acme/app" for a
repository), sk "<kind> <uuid>". All policies of one resource are one Query, and a push reads
at most two (its namespace's and its repository's), kept in the container's read cache
(storage/cache.py) for STRATUS_READ_CACHE_SECONDS; a write in the same container drops them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pynamodb.attributes import BooleanAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition

from chalicelib.storage import cache
from chalicelib.storage.models import AuthItem, utcnow

IMMUTABILITY, AUTOPRUNE = "immutability", "autoprune"
KINDS = (IMMUTABILITY, AUTOPRUNE)


class PolicyModel(AuthItem, discriminator="policy"):
    """One policy; `method`/`value` only for auto-prune."""

    policy_kind = UnicodeAttribute()
    tag_pattern = UnicodeAttribute(null=True)
    tag_pattern_matches = BooleanAttribute(default=True)
    method = UnicodeAttribute(null=True)
    value = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute(default=utcnow)


@dataclass(frozen=True)
class Policy:
    resource: str  # "acme/" or "acme/app"
    kind: str
    uuid: str
    tag_pattern: str | None
    tag_pattern_matches: bool = True
    method: str | None = None
    value: str | None = None


class PolicyMissing(Exception):
    pass


# The resources with auto-prune policies, for the scheduled run: one Query, no scan.
_INDEX = "policy-index autoprune"


def pruned_resources() -> list[str]:
    return [item.sk for item in AuthItem.query(_INDEX)]


def unindex_pruned(resource: str) -> None:
    """Drop a resource whose last auto-prune policy went (found by the scheduled run)."""
    PolicyModel(_INDEX, resource).delete()


def _pk(resource: str) -> str:
    return f"policy {resource}"


def _policy(item: PolicyModel) -> Policy:
    resource = item.pk.split(" ", 1)[1]
    return Policy(
        resource,
        item.policy_kind,
        item.sk.split(" ", 1)[1],
        item.tag_pattern,
        bool(item.tag_pattern_matches),
        item.method,
        item.value,
    )


def forget() -> None:
    """Drop every cached read (tests; writes made in this container drop theirs anyway)."""
    cache.clear()


def _query(resource: str, *, consistent: bool) -> tuple[Policy, ...]:
    return tuple(
        _policy(item)
        for item in AuthItem.query(_pk(resource), consistent_read=consistent)
        if isinstance(item, PolicyModel)
    )


def read(resource: str, *, fresh: bool = False) -> tuple[Policy, ...]:
    """Every policy on the resource: one Query, served from the container's read cache
    (storage/cache.py) within STRATUS_READ_CACHE_SECONDS; `fresh` reads strongly
    consistent, past the cache."""
    if fresh:
        return _query(resource, consistent=True)
    return cache.read(
        cache.dynamodb(AuthItem.Meta.table_name, _pk(resource)),
        "policies",
        lambda: _query(resource, consistent=False),
        size=lambda found: 256 + 256 * len(found),
    )


def of_kind(resource: str, kind: str, *, fresh: bool = False) -> list[Policy]:
    return [p for p in read(resource, fresh=fresh) if p.kind == kind]


def get(resource: str, kind: str, policy_id: str) -> Policy:
    try:
        item = AuthItem.get(_pk(resource), f"{kind} {policy_id}", consistent_read=True)
    except DoesNotExist:
        raise PolicyMissing(policy_id) from None
    if not isinstance(item, PolicyModel):
        raise PolicyMissing(policy_id)
    return _policy(item)


def create(
    resource: str,
    kind: str,
    tag_pattern: str | None,
    tag_pattern_matches: bool,
    method: str | None = None,
    value: str | None = None,
) -> Policy:
    policy_id = str(uuid.uuid4())
    PolicyModel(
        _pk(resource),
        f"{kind} {policy_id}",
        policy_kind=kind,
        tag_pattern=tag_pattern,
        tag_pattern_matches=tag_pattern_matches,
        method=method,
        value=value,
    ).save()
    if kind == AUTOPRUNE:
        PolicyModel(_INDEX, resource, policy_kind="index").save()
    return Policy(resource, kind, policy_id, tag_pattern, tag_pattern_matches, method, value)


def update(
    resource: str,
    kind: str,
    policy_id: str,
    tag_pattern: str | None,
    tag_pattern_matches: bool,
    method: str | None = None,
    value: str | None = None,
) -> Policy:
    item = PolicyModel(_pk(resource), f"{kind} {policy_id}")
    try:
        item.update(
            actions=[
                PolicyModel.tag_pattern.set(tag_pattern)
                if tag_pattern is not None
                else PolicyModel.tag_pattern.remove(),
                PolicyModel.tag_pattern_matches.set(tag_pattern_matches),
                PolicyModel.method.set(method) if method else PolicyModel.method.remove(),
                PolicyModel.value.set(value) if value else PolicyModel.value.remove(),
            ],
            condition=PolicyModel.policy_kind == kind,
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise PolicyMissing(policy_id) from None
        raise
    return Policy(resource, kind, policy_id, tag_pattern, tag_pattern_matches, method, value)


def delete(resource: str, kind: str, policy_id: str) -> None:
    try:
        PolicyModel(_pk(resource), f"{kind} {policy_id}").delete(
            condition=PolicyModel.policy_kind == kind
        )
    except DeleteError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise PolicyMissing(policy_id) from None
        raise


# -- what policies act on: a namespace's repositories and their tags ------------------------


def repositories_in(namespace: str) -> list[str]:
    """The namespace's repositories, from the catalog index (a prefix Query per partition).

    storage/repositories.py owns the index's layout; where it offers `in_namespace` (the
    sharded catalog) that is used, else the single partition is read."""
    from chalicelib.storage import repositories
    from chalicelib.storage.models import CATALOG_PARTITION, RepositoryModel

    finder = getattr(repositories, "in_namespace", None)
    if finder is not None:
        return list(finder(namespace))
    query = RepositoryModel.catalog.query(
        CATALOG_PARTITION, RepositoryModel.name.startswith(namespace + "/")
    )
    return [item.name for item in query]


@dataclass(frozen=True)
class TagRow:
    """What pruning and expiry release need of a tag."""

    name: str
    sort_key: str
    digest: str
    pushed_at: datetime
    expires_at: datetime | None


def tag_rows(repository: str, *, with_expiry_only: bool = False) -> list[TagRow]:
    """Every tag item of the repository (expired ones too), keys and times only."""
    from chalicelib.storage.models import TagModel

    query = TagModel.query(
        repository,
        filter_condition=TagModel.expires_at.exists() if with_expiry_only else None,
        attributes_to_get=["name", "sort_key", "digest", "pushed_at", "expires_at"],
    )
    return [
        TagRow(item.name, item.sort_key, item.digest, item.pushed_at, item.expires_at)
        for item in query
    ]


def clear_expiry(repository: str, row: TagRow) -> bool:
    """Make the tag live for ever, on condition that it is the version read (a re-push wins)."""
    from chalicelib.storage.models import TagModel

    try:
        TagModel(repository, row.sort_key).update(
            actions=[TagModel.expires_at.remove()],
            condition=(TagModel.digest == row.digest) & TagModel.expires_at.exists(),
        )
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def delete_if_unchanged(repository: str, row: TagRow, policy: str) -> bool:
    """Prune the tag as read: same digest, not pushed again since (a re-push wins)."""
    from chalicelib.storage.models import TagModel

    condition = (TagModel.digest == row.digest) & (TagModel.pushed_at == row.pushed_at)
    return prune_tag(repository, row.sort_key, condition, policy)


def prune_tag(repository: str, sort_key: str, condition: Condition, policy: str) -> bool:
    """Delete a tag an auto-prune policy prunes, if `condition` still holds; False if not.

    An UpdateItem first writes the `pruned_by` marker, on the same condition, then the
    DeleteItem removes the item: the stream's REMOVE carries the marker, so the tag's one
    event says pruned and names the policy (events/schema.py). A marker left by a delete
    that then lost its condition is taken off again."""
    from chalicelib.storage.models import TagModel

    item = TagModel(repository, sort_key)
    try:
        item.update(actions=[TagModel.pruned_by.set(policy)], condition=condition)
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    try:
        item.delete(condition=condition & (TagModel.pruned_by == policy))
    except DeleteError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        try:
            item.update(
                actions=[TagModel.pruned_by.remove()], condition=TagModel.pruned_by == policy
            )
        except UpdateError as again:
            if again.cause_response_code != "ConditionalCheckFailedException":
                raise
        return False
    return True
