"""Accounts, permissions and login-failure counters in the accounts table (docs/auth.md).

Keys: an account is ("account <name>", "account"); a permission ("permission <resource>",
principal) where the resource is "org/app" or "org/" for a whole namespace; a failure counter
("login_failure <user|source> <value>[ #<shard>]", "count").

A failure counter is FAILURE_SHARDS items: each container counts into its own shard (an
item takes 1,000 writes a second; credential stuffing against one user must not throttle
it), and a login reads and sums them all. The reads a login makes are cached for the read
cache's bound (storage/cache.py), so a hot robot's logins read its items once per container
per bound; a container's own failure drops that cache, so within one container the count is
exact, and failures counted in other containers are seen within the bound.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from chalicelib import clock
from chalicelib.storage import cache
from chalicelib.storage.models import (
    AccountModel,
    AuthItem,
    LoginFailureModel,
    PermissionModel,
)

ACCOUNT_SK, COUNT_SK = "account", "count"
USER_DIRECTORY, ORG_DIRECTORY = "user", "organization"


def _condition_failed(error: PutError | UpdateError | DeleteError) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


class AccountExists(Exception):
    pass


class AccountMissing(Exception):
    pass


def account_key(name: str) -> tuple[str, str]:
    return f"account {name}", ACCOUNT_SK


def permission_key(resource: str, principal: str) -> tuple[str, str]:
    return f"permission {resource}", principal


FAILURE_SHARDS = 4
# This container's shard of every failure counter, fixed for its life.
_FAILURE_SHARD = random.randrange(FAILURE_SHARDS)


def failure_key(kind: str, value: str, shard: int = 0) -> tuple[str, str]:
    """A counter's shard, each its own partition key; shard 0 is the key stages had before
    counters were sharded, and the key LoginRecords.failures sums all shards under."""
    pk = f"login_failure {kind} {value}"
    return (pk if shard == 0 else f"{pk} #{shard}"), COUNT_SK


def _failure_shards(kind: str, value: str) -> list[tuple[str, str]]:
    return [failure_key(kind, value, shard) for shard in range(FAILURE_SHARDS)]


def robot_directory(namespace: str) -> str:
    return f"robot {namespace}"


@dataclass
class LoginRecords:
    """What a token request needs, read in one BatchGetItem."""

    account: AccountModel | None = None
    failures: dict[tuple[str, str], tuple[int, datetime]] = field(default_factory=dict)
    roles: dict[tuple[str, str], str] = field(default_factory=dict)  # (resource, principal)


def read_for_login(
    name: str | None, source: str | None, permission_keys: list[tuple[str, str]]
) -> LoginRecords:
    keys = [permission_key(resource, principal) for resource, principal in permission_keys]
    if name is not None:
        keys += [account_key(name), *_failure_shards("user", name)]
    if source is not None:
        keys += _failure_shards("source", source)
    records = LoginRecords()
    if not keys:
        return records
    now = clock.now()
    totals = {
        failure_key(kind, value, shard)[0]: failure_key(kind, value)
        for kind, value in (("user", name), ("source", source))
        if value is not None
        for shard in range(FAILURE_SHARDS)
    }
    for item in _items(list(dict.fromkeys(keys))):
        if isinstance(item, AccountModel):
            records.account = item
        elif isinstance(item, PermissionModel):
            records.roles[(item.resource, item.principal)] = item.role
        elif isinstance(item, LoginFailureModel) and item.expires_at and item.expires_at > now:
            # All shards under shard 0's key: the sum, locked until the first shard ends.
            total = totals[item.pk]
            count, until = records.failures.get(total, (0, item.expires_at))
            records.failures[total] = (count + int(item.failures), min(until, item.expires_at))
    return records


def _items(keys: list[tuple[str, str]]) -> list[AuthItem]:
    """The items that exist among `keys`: one BatchGetItem for those not cached."""
    table = AuthItem.Meta.table_name
    entries = [(cache.dynamodb(table, pk), sk) for pk, sk in keys]

    def load(missing: list[Any]) -> dict[Any, Any]:
        found = AuthItem.batch_get([(partition[2], sk) for partition, sk in missing])
        return {(cache.dynamodb(table, item.pk), item.sk): item for item in found}

    return [item for item in cache.read_many(entries, load).values() if item is not None]


def record_failure(kind: str, value: str, window_seconds: int) -> None:
    """Count one failed login in the current window, or open a new window if it has ended.

    TTL deletes counters up to days late, so an ended window is reset here, not trusted.
    """
    pk, sk = failure_key(kind, value, _FAILURE_SHARD)
    now = clock.now()
    counter = LoginFailureModel(pk, sk)
    try:
        counter.update(
            actions=[LoginFailureModel.failures.add(1)],
            condition=LoginFailureModel.expires_at > now,
        )
    except UpdateError as error:
        if not _condition_failed(error):
            raise
        LoginFailureModel(
            pk, sk, failures=1, expires_at=now + timedelta(seconds=window_seconds)
        ).save()


def get_account(name: str) -> AccountModel | None:
    try:
        item = AccountModel.get(*account_key(name))
    except DoesNotExist:
        return None
    return item if isinstance(item, AccountModel) else None


def create_account(
    name: str,
    account_type: str,
    directory: str,
    secret: str | None = None,
    superuser: bool = False,
) -> AccountModel:
    pk, sk = account_key(name)
    account = AccountModel(
        pk,
        sk,
        name=name,
        directory=directory,
        account_type=account_type,
        secret=secret,
        superuser=superuser,
    )
    try:
        account.save(condition=AuthItem.pk.does_not_exist())
    except PutError as error:
        if _condition_failed(error):
            raise AccountExists(name) from error
        raise
    return account


def set_secret(name: str, secret: str) -> None:
    try:
        AccountModel(*account_key(name)).update(
            actions=[AccountModel.secret.set(secret)], condition=AuthItem.pk.exists()
        )
    except UpdateError as error:
        if _condition_failed(error):
            raise AccountMissing(name) from error
        raise


def delete_account(name: str) -> None:
    try:
        AccountModel(*account_key(name)).delete(condition=AuthItem.pk.exists())
    except DeleteError as error:
        if _condition_failed(error):
            raise AccountMissing(name) from error
        raise


def list_accounts(directory: str) -> list[AccountModel]:
    return [
        item for item in AuthItem.directory_index.query(directory) if isinstance(item, AccountModel)
    ]


def put_permission(resource: str, principal: str, role: str) -> None:
    pk, sk = permission_key(resource, principal)
    PermissionModel(pk, sk, resource=resource, principal=principal, role=role).save()


def delete_permission(resource: str, principal: str) -> bool:
    pk, sk = permission_key(resource, principal)
    try:
        PermissionModel(pk, sk).delete(condition=AuthItem.pk.exists())
    except DeleteError as error:
        if _condition_failed(error):
            return False
        raise
    return True


def permissions_on(resource: str) -> dict[str, str]:
    """principal -> role on one repository or namespace."""
    return {
        item.principal: item.role
        for item in AuthItem.query(f"permission {resource}")
        if isinstance(item, PermissionModel)
    }


def permissions_of(principal: str) -> dict[str, str]:
    """resource -> role for one principal ("*" gives the public repositories). Every
    `_catalog` reads "*": cached for the bound (storage/cache.py)."""
    return cache.read(
        cache.listing(AuthItem.Meta.table_name),
        ("permissions_of", principal),
        lambda: _read_permissions_of(principal),
        size=lambda found: 256 + 128 * len(found),
    )


def _read_permissions_of(principal: str) -> dict[str, str]:
    return {
        item.resource: item.role
        for item in AuthItem.by_principal.query(principal)
        if isinstance(item, PermissionModel)
    }
