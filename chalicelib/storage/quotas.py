"""Namespace quotas and storage usage, in the accounts table.

Keys:
- a quota: ("quota <namespace>", "quota"), its Warning/Reject limits inside (one per
  namespace, as in Quay);
- usage, all under "usage <namespace>": "blob <digest>" names the namespace's repositories
  that link the digest, and its size; "repository <name>" sums that repository's links;
  "total <shard>" are SHARDS counters whose sum is the namespace's usage.

Usage is the deduplicated sum of the blob sizes linked in the namespace: a digest counts
once however many of its repositories link it, and fully in every namespace that links it
(each namespace is charged for what it holds, as in Quay; the one S3 object is shared). It
changes only in the transaction that writes or deletes a link (`transact`), planned from
one strongly consistent read of the digest's membership item and conditional on that item
being as read, so concurrent links and unlinks of one digest serialise and never count
twice. The total is sharded so parallel pushes into one namespace do not all contend for
one item.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError
from pynamodb.expressions.condition import size as size_of
from pynamodb.transactions import TransactWrite

from chalicelib.auth.permissions import namespace_of
from chalicelib.errors import RegistryError
from chalicelib.storage import cache, transactions
from chalicelib.storage.models import AuthItem

SHARDS = 4
WARNING, REJECT = "Warning", "Reject"


class LimitAttribute(MapAttribute[str, Any]):
    limit_id = UnicodeAttribute()
    limit_type = UnicodeAttribute()
    percent = NumberAttribute()


class QuotaModel(AuthItem, discriminator="quota"):
    quota_id = UnicodeAttribute()
    limit_bytes = NumberAttribute()
    limits = ListAttribute(of=LimitAttribute, default=list)


class UsageModel(AuthItem, discriminator="usage"):
    bytes_used = NumberAttribute(null=True)  # totals and repositories
    repositories = UnicodeSetAttribute(null=True)  # a blob's membership
    blob_size = NumberAttribute(null=True)


@dataclass(frozen=True)
class Limit:
    limit_id: str
    limit_type: str  # Warning | Reject
    percent: int


@dataclass(frozen=True)
class Quota:
    namespace: str
    quota_id: str
    limit_bytes: int
    limits: tuple[Limit, ...] = ()

    def threshold(self, limit: Limit) -> int:
        return self.limit_bytes * limit.percent // 100


class QuotaExists(Exception):
    pass


class QuotaMissing(Exception):
    pass


def _quota_key(namespace: str) -> tuple[str, str]:
    return f"quota {namespace}", "quota"


def _quota(item: QuotaModel, namespace: str) -> Quota:
    limits = tuple(
        Limit(str(x.limit_id), str(x.limit_type), int(x.percent)) for x in item.limits or []
    )
    return Quota(namespace, item.quota_id, int(item.limit_bytes), limits)


def forget() -> None:
    """Drop every cached read (tests; writes made in this container drop theirs anyway)."""
    cache.clear()


def _read_quota(namespace: str, *, consistent: bool) -> Quota | None:
    try:
        item = AuthItem.get(*_quota_key(namespace), consistent_read=consistent)
    except DoesNotExist:
        return None
    return _quota(item, namespace) if isinstance(item, QuotaModel) else None


def get_quota(namespace: str, *, fresh: bool = False) -> Quota | None:
    """The namespace's quota: one GetItem, kept in the container's read cache
    (storage/cache.py) within STRATUS_READ_CACHE_SECONDS; `fresh` reads past it."""
    if fresh:
        return _read_quota(namespace, consistent=True)
    return cache.read(
        cache.dynamodb(AuthItem.Meta.table_name, _quota_key(namespace)[0]),
        "quota",
        lambda: _read_quota(namespace, consistent=False),
    )


def create_quota(namespace: str, limit_bytes: int) -> Quota:
    quota_id = str(uuid.uuid4())
    try:
        QuotaModel(*_quota_key(namespace), quota_id=quota_id, limit_bytes=limit_bytes).save(
            condition=AuthItem.pk.does_not_exist()
        )
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise QuotaExists(namespace) from None
        raise
    return Quota(namespace, quota_id, limit_bytes)


def save_quota(quota: Quota) -> Quota:
    """Write the quota's limit and limits, on condition that it is still the same quota."""
    item = QuotaModel(
        *_quota_key(quota.namespace),
        quota_id=quota.quota_id,
        limit_bytes=quota.limit_bytes,
        limits=[
            LimitAttribute(limit_id=x.limit_id, limit_type=x.limit_type, percent=x.percent)  # type: ignore[no-untyped-call]
            for x in quota.limits
        ],
    )
    try:
        item.save(condition=QuotaModel.quota_id == quota.quota_id)
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise QuotaMissing(quota.quota_id) from None
        raise
    return quota


def delete_quota(namespace: str, quota_id: str) -> None:
    try:
        QuotaModel(*_quota_key(namespace)).delete(condition=QuotaModel.quota_id == quota_id)
    except DeleteError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise QuotaMissing(quota_id) from None
        raise


def new_limit_id() -> str:
    return str(uuid.uuid4())


# -- usage ---------------------------------------------------------------------------------


def _usage_pk(namespace: str) -> str:
    return f"usage {namespace}"


def namespace_usage(namespace: str) -> int:
    """The namespace's usage in bytes: one strongly consistent Query of its SHARDS counters."""
    query = AuthItem.query(
        _usage_pk(namespace),
        AuthItem.sk.startswith("total "),
        consistent_read=True,
    )
    return sum(int(getattr(item, "bytes_used", 0) or 0) for item in query)


def counted_repositories(namespace: str) -> set[str]:
    """The repositories the namespace's counters name (links may exist in repositories the
    catalog does not list yet: blobs pushed before any manifest)."""
    query = AuthItem.query(_usage_pk(namespace), AuthItem.sk.startswith("repository "))
    return {item.sk.split(" ", 1)[1] for item in query}


def repository_usage(repository: str) -> int:
    namespace = namespace_of(repository)
    if not namespace:
        return 0
    try:
        item = AuthItem.get(_usage_pk(namespace), f"repository {repository}")
    except DoesNotExist:
        return 0
    return int(getattr(item, "bytes_used", 0) or 0)


@dataclass
class Change:
    """How one link write or delete changes usage, planned from the membership as read."""

    namespace: str
    repository: str
    digest: str
    size: int
    members: frozenset[str] | None  # None: the namespace held no link to the digest
    linking: bool

    @property
    def namespace_delta(self) -> int:
        """Bytes the namespace's usage changes by."""
        if self.linking:
            return self.size if self.members is None else 0
        if self.members is not None and self.members == frozenset({self.repository}):
            return -self.size
        return 0

    @property
    def repository_delta(self) -> int:
        held = self.members is not None and self.repository in self.members
        if self.linking:
            return 0 if held else self.size
        return -self.size if held else 0

    def write(self, t: TransactWrite) -> None:
        """Add this change's items to the link's transaction."""
        member = UsageModel(_usage_pk(self.namespace), f"blob {self.digest}")
        held = self.members is not None and self.repository in self.members
        kind = UsageModel.kind.set(UsageModel)
        if self.linking and self.members is None:
            t.update(
                member,
                actions=[
                    UsageModel.repositories.add({self.repository}),
                    UsageModel.blob_size.set(self.size),
                    kind,
                ],
                condition=UsageModel.sk.does_not_exist(),
            )
        elif self.linking and not held:
            t.update(
                member,
                actions=[UsageModel.repositories.add({self.repository})],
                condition=UsageModel.sk.exists()
                & ~UsageModel.repositories.contains(self.repository),
            )
        elif self.linking:
            t.condition_check(
                UsageModel,
                member.pk,
                member.sk,
                condition=UsageModel.repositories.contains(self.repository),
            )
        elif held and self.members == frozenset({self.repository}):
            t.delete(
                member,
                condition=UsageModel.repositories.contains(self.repository)
                & (size_of(UsageModel.repositories) == 1),
            )
        elif held:
            t.update(
                member,
                actions=[UsageModel.repositories.delete({self.repository})],
                condition=UsageModel.repositories.contains(self.repository)
                & (size_of(UsageModel.repositories) > 1),
            )
        else:
            return  # a link the usage never counted (made before it was kept): the repair's
        self._add(t, f"repository {self.repository}", self.repository_delta)
        self._add(t, f"total {random.randrange(SHARDS)}", self.namespace_delta)

    def _add(self, t: TransactWrite, sk: str, delta: int) -> None:
        if delta:
            t.update(
                UsageModel(_usage_pk(self.namespace), sk),
                actions=[
                    UsageModel.bytes_used.add(delta),
                    UsageModel.kind.set(UsageModel),
                ],
            )


def plan(repository: str, digest: str, size: int, *, linking: bool) -> Change | None:
    """One strongly consistent GetItem of the digest's membership; None outside namespaces."""
    namespace = namespace_of(repository)
    if not namespace:
        return None
    try:
        item = AuthItem.get(_usage_pk(namespace), f"blob {digest}", consistent_read=True)
    except DoesNotExist:
        return Change(namespace, repository, digest, size, None, linking)
    members = frozenset(getattr(item, "repositories", None) or ())
    known = int(getattr(item, "blob_size", 0) or 0)
    return Change(namespace, repository, digest, known or size, members, linking)


ATTEMPTS = 6


def _guess(repository: str, digest: str, size: int) -> Change | None:
    """A link's plan without reading: the digest is new to the namespace, the common case
    of an upload. Its transaction's condition (no membership item yet) checks the guess."""
    namespace = namespace_of(repository)
    if not namespace:
        return None
    return Change(namespace, repository, digest, size, None, linking=True)


def _checked(change: Change, check: Callable[[Change], None], guessed: bool) -> Change:
    """Run the quota check; a guess it would refuse is read first (the namespace may
    already hold the blob, which is free)."""
    try:
        check(change)
    except RegistryError:
        if not guessed:
            raise
        read = plan(change.repository, change.digest, change.size, linking=True)
        assert read is not None
        check(read)
        return read
    return change


def transact(
    repository: str,
    digest: str,
    size: int,
    body: Callable[[TransactWrite], None],
    *,
    linking: bool,
    check: Callable[[Change], None] | None = None,
) -> None:
    """Run `body` (the link write or delete) in one transaction with its usage change.

    A link first guesses that the digest is new to the namespace (no read); an unlink reads
    the membership (one strongly consistent GetItem). `check` sees the planned change first
    (the quota's limits). A transaction that fails because the membership is not as planned,
    or because another transaction held a counter, is planned again from a fresh read; a
    failed condition of the body itself is the caller's to read (TransactWriteError)."""
    guessed = linking
    change = (
        _guess(repository, digest, size)
        if linking
        else plan(repository, digest, size, linking=False)
    )
    for _ in range(ATTEMPTS):
        if change is not None and check is not None:
            change = _checked(change, check, guessed)
        try:
            with transactions.transaction() as t:
                body(t)
                if change is not None:
                    change.write(t)
        except TransactWriteError as exc:
            if change is None or not transactions.lost_race(exc):
                raise
            fresh = plan(repository, digest, size, linking=linking)
            conflict_only = not transactions.failed_conditions(exc)
            if not conflict_only and fresh is not None and fresh.members == change.members:
                raise  # the membership was as planned: the body's own condition failed
            change, guessed = fresh, False
            continue
        return
    from chalicelib.errors import TooManyRequests

    raise TooManyRequests({"digest": digest, "reason": "concurrent links of this blob; retry"})


# -- repair --------------------------------------------------------------------------------


@dataclass
class Recount:
    namespace: str
    before: int
    after: int
    repositories: dict[str, int] = field(default_factory=dict)


def recount(namespace: str, repositories: Iterable[str], *, dry_run: bool = False) -> Recount:
    """Recompute the namespace's usage from its links (a Query per repository) and write
    it over the counters. A link written while this runs may be counted twice or not at
    all until the next repair: run it when the namespace is quiet, or twice."""
    from chalicelib.storage.models import BlobLinkModel

    members: dict[str, tuple[set[str], int]] = {}
    per_repository: dict[str, int] = {}
    for repository in repositories:
        for link in BlobLinkModel.query(repository, attributes_to_get=["digest", "size"]):
            held, size = members.setdefault(link.digest, (set(), int(link.size)))
            held.add(repository)
            per_repository[repository] = per_repository.get(repository, 0) + int(link.size)
    before = namespace_usage(namespace)
    after = sum(size for _held, size in members.values())
    if dry_run:
        return Recount(namespace, before, after, per_repository)
    pk = _usage_pk(namespace)
    existing = list(AuthItem.query(pk))
    with UsageModel.batch_write() as batch:
        for item in existing:
            batch.delete(item)
    with UsageModel.batch_write() as batch:
        for digest, (held, size) in members.items():
            batch.save(UsageModel(pk, f"blob {digest}", repositories=held, blob_size=size))
        for repository, total in per_repository.items():
            batch.save(UsageModel(pk, f"repository {repository}", bytes_used=total))
        batch.save(UsageModel(pk, "total 0", bytes_used=after))
    return Recount(namespace, before, after, per_repository)
