"""Pull-through cache configurations (accounts table) and their upstream passwords (SSM).

An organization's configuration is one item beside its account ("account <org>",
"proxycache"). The upstream password is an SSM SecureString named after the organization,
never an attribute: DynamoDB holds only the parameter's name (docs/proxycache.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import (
    DeleteError,
    DoesNotExist,
    PutError,
    TransactWriteError,
    UpdateError,
)

from chalicelib import clock, config
from chalicelib.registry.manifests import ParsedManifest
from chalicelib.registry.names import tag_sort_key
from chalicelib.storage import aws, bodies, cache, manifests, referrers, tags, transactions
from chalicelib.storage.models import ManifestModel, ProxyCacheModel, ProxyCopyModel, TagModel

CONFIG_SK, COPY_SK = "proxycache", "copy"


class ConfigExists(Exception):
    pass


@dataclass(frozen=True)
class CacheConfig:
    organization: str
    upstream_registry: str  # host[:port][/path prefix]
    expiration_s: int
    insecure: bool
    username: str | None
    password_parameter: str | None
    updated_at: datetime


def _key(organization: str) -> tuple[str, str]:
    return f"account {organization}", CONFIG_SK


def parameter_name(organization: str) -> str:
    return f"{config.settings.proxycache_parameter_prefix.rstrip('/')}/{organization}"


def get(organization: str) -> CacheConfig | None:
    """The organization's configuration: one GetItem, or none within the read cache's bound
    (a miss too: every blob and manifest miss of an ordinary namespace asks); None for an
    ordinary namespace."""
    pk, sk = _key(organization)
    return cache.read(
        cache.dynamodb(ProxyCacheModel.Meta.table_name, pk),
        ("proxycache", sk),
        lambda: _get(organization),
    )


def _get(organization: str) -> CacheConfig | None:
    try:
        item = ProxyCacheModel.get(*_key(organization))
    except DoesNotExist:
        return None
    return CacheConfig(
        organization,
        item.upstream_registry,
        int(item.expiration_s),
        bool(item.insecure),
        item.username,
        item.password_parameter,
        item.updated_at,
    )


def create(
    organization: str,
    upstream_registry: str,
    expiration_s: int,
    insecure: bool,
    username: str | None,
    password: str | None,
) -> None:
    """Store the configuration; the password first, so the item never names a missing one."""
    parameter = None
    if password is not None:
        parameter = parameter_name(organization)
        aws.ssm().put_parameter(Name=parameter, Value=password, Type="SecureString", Overwrite=True)
    pk, sk = _key(organization)
    item = ProxyCacheModel(
        pk,
        sk,
        upstream_registry=upstream_registry,
        expiration_s=expiration_s,
        insecure=insecure,
        username=username,
        password_parameter=parameter,
        updated_at=clock.now(),
    )
    try:
        item.save(condition=ProxyCacheModel.pk.does_not_exist())
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise ConfigExists(organization) from error
        raise


def delete(organization: str) -> bool:
    """Remove the configuration and its password; False if there was none."""
    current = get(organization)
    if current is None:
        return False
    try:
        ProxyCacheModel(*_key(organization)).delete(condition=ProxyCacheModel.pk.exists())
    except DeleteError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    if current.password_parameter:
        ssm = aws.ssm()
        with contextlib.suppress(ssm.exceptions.ParameterNotFound):
            ssm.delete_parameter(Name=current.password_parameter)
    return True


_passwords: dict[tuple[str, datetime], str] = {}


def password(cache: CacheConfig) -> str | None:
    """The upstream password, read from SSM once per configuration version per container."""
    if not cache.password_parameter:
        return None
    key = (cache.password_parameter, cache.updated_at)
    if key not in _passwords:
        answer = aws.ssm().get_parameter(Name=cache.password_parameter, WithDecryption=True)
        _passwords.clear()  # one version per container is plenty; never a growing store
        _passwords[key] = answer["Parameter"]["Value"]
    return _passwords[key]


# -- blob copies in flight ------------------------------------------------------------------


def _copy_key(repository: str, digest: str) -> tuple[str, str]:
    return f"proxycache_copy {repository}@{digest}", COPY_SK


def claim_copy(repository: str, digest: str, seconds: int) -> bool:
    """Record that a copy starts; False if one is already running (or failed recently)."""
    pk, sk = _copy_key(repository, digest)
    now = clock.now()
    item = ProxyCopyModel(pk, sk, state="copying", expires_at=now + timedelta(seconds=seconds))
    stale = ProxyCopyModel.expires_at < now
    try:
        item.save(condition=ProxyCopyModel.pk.does_not_exist() | stale)
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def copy_state(repository: str, digest: str) -> tuple[str, str | None] | None:
    """("copying" | "failed", reason) of a recent copy, or None."""
    try:
        item = ProxyCopyModel.get(*_copy_key(repository, digest), consistent_read=True)
    except DoesNotExist:
        return None
    if item.expires_at is not None and item.expires_at < clock.now():
        return None
    return item.state, item.reason


def finish_copy(repository: str, digest: str, failure: str | None, retry_seconds: int) -> None:
    """Done: forget the claim; failed: keep the reason a short while (no retry storm)."""
    pk, sk = _copy_key(repository, digest)
    if failure is None:
        ProxyCopyModel(pk, sk).delete()
        return
    until = clock.now() + timedelta(seconds=retry_seconds)
    ProxyCopyModel(pk, sk, state="failed", reason=failure, expires_at=until).save()


# -- cached manifests and tags --------------------------------------------------------------


def cached_tag(repository: str, tag: str) -> TagModel | None:
    """The tag item with its `revalidate_at`: one GetItem, as an ordinary pull by tag."""
    try:
        return TagModel.get(repository, tag_sort_key(tag))
    except DoesNotExist:
        return None


def store_manifest(
    repository: str,
    parsed: ParsedManifest,
    tag: str | None,
    revalidate_at: datetime,
    expires_at: datetime,
) -> None:
    """Store a manifest pulled from the upstream, byte-identical, and point the tag at it.

    Like a push (storage/manifests.py) in one transaction, except that the blobs it names
    need not be here yet: they are copied when first pulled, so nothing is touched or
    checked. The tag carries when to ask the upstream again and when it is evicted.
    """
    bodies.store_large(parsed.digest, parsed.body)
    transactions.retried(
        lambda: _commit(repository, parsed, tag, revalidate_at, expires_at), what="tag"
    )


def _commit(
    repository: str,
    parsed: ParsedManifest,
    tag: str | None,
    revalidate_at: datetime,
    expires_at: datetime,
) -> None:
    previous = tags.current_digest(repository, tag) if tag is not None else None
    try:
        with transactions.transaction() as t:
            actions = manifests._manifest_actions(parsed, None)
            actions.append(ManifestModel.deleting.remove())
            t.update(ManifestModel(repository, parsed.digest), actions=actions)
            manifests._ensure_repository(t, repository)
            if parsed.subject is not None:
                t.save(referrers.entry_for(repository, parsed))
            if tag is not None:
                tags.save(t, repository, tag, parsed, previous, expires_at, revalidate_at)
    except TransactWriteError as exc:
        if transactions.lost_race(exc):
            raise transactions.LostRace from exc
        raise


def extend_tag(
    repository: str, tag: str, digest: str, revalidate_at: datetime, expires_at: datetime
) -> None:
    """The upstream still has `digest` under the tag: trust it until `revalidate_at`."""
    try:
        TagModel(repository, tag_sort_key(tag)).update(
            actions=[
                TagModel.revalidate_at.set(revalidate_at),
                TagModel.expires_at.set(expires_at),
            ],
            condition=TagModel.digest == digest,
        )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        # Moved meanwhile by another pull: that pull's answer stands.
