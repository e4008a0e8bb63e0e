"""The audit log: who did what, when, from where, and whether it worked (docs/events.md).

Where entries come from, and what each costs the request:
- a successful manifest push: nothing on the request. The push's own UpdateItem carries
  its tag, actor and source address (storage/manifests.py), and the tables' stream consumer
  turns the committed change into the entry (`from_events`): zero added calls per push;
- everything else (failed pushes, deletes, pulls, logins and token grants, account,
  permission, visibility, webhook and policy changes): one PutItem after the answer is
  computed (`after_request`), so a failure is recorded as well as a success.

Entries hold names, references, roles and error codes: never a request body, header,
password, token or webhook secret. They expire by TTL after the retention period.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib import clock, config
from chalicelib.events import actor as actors
from chalicelib.events.actor import Actor
from chalicelib.events.schema import PUSHED, TAG_PRUNED, Event

if TYPE_CHECKING:
    from chalicelib.endpoints.http import RegistryRequest
    from chalicelib.observability import RequestRecord

logger = logging.getLogger(__name__)

SUCCESS, FAILURE = "success", "failure"

# Handler ("module.function") -> entry kind; Quay's log kind names where Quay has one.
KINDS = {
    "manifests.put": "push_repo",
    "manifests.get": "pull_repo",
    "blobs.delete": "delete_blob",
    "token.get_token": "login",
    "token.post_token": "login",
    "accounts.create_user": "user_create",
    "accounts.change_user": "account_change_password",
    "accounts.delete_user": "user_delete",
    "accounts.create_organization": "org_create",
    "accounts.create_robot": "create_robot",
    "accounts.regenerate_robot": "regenerate_robot_token",
    "accounts.delete_robot": "delete_robot",
    "accounts.set_namespace_permission": "change_namespace_permission",
    "accounts.delete_namespace_permission": "delete_namespace_permission",
    "accounts.set_repository_permission": "change_repo_permission",
    "accounts.delete_repository_permission": "delete_repo_permission",
    "accounts.change_visibility": "change_repo_visibility",
    "management.change_tag": "change_tag",
    "management.delete_tag": "delete_tag",
    "notifications.repository_notifications": "add_repo_notification",
    "notifications.namespace_notifications": "add_repo_notification",
    "notifications.repository_notification": "change_repo_notification",
    "notifications.namespace_notification": "change_repo_notification",
    "notifications.repository_notification_test": "test_repo_notification",
    "notifications.namespace_notification_test": "test_repo_notification",
}
# Path parameters kept as metadata: names and roles, never a secret.
_METADATA_PARAMS = ("principal", "shortname", "username", "uuid", "policy_id", "grant", "scope")
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Entry:
    kind: str
    who: Actor
    result: str = SUCCESS
    reason: str | None = None
    repository: str | None = None
    namespace: str | None = None
    reference: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=clock.now)


def namespace_of(repository: str) -> str | None:
    head, slash, _ = repository.partition("/")
    return head if slash else None


def _shard() -> int:
    return secrets.randbelow(config.settings.audit_shards)


def item(entry: Entry) -> Any:
    """The entry as the table's item."""
    from chalicelib.storage.models import AuditModel

    shard = _shard()
    namespace = entry.namespace or (namespace_of(entry.repository) if entry.repository else None)
    scope = f"repo {entry.repository}" if entry.repository else f"ns {namespace or ''}"
    at = entry.at.astimezone(UTC)
    retention = timedelta(days=config.settings.audit_retention_days)
    return AuditModel(
        f"{scope}#{shard}",
        f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {secrets.token_hex(4)}",
        kind=entry.kind,
        result=entry.result,
        reason=entry.reason,
        performer=entry.who.name or None,
        performer_kind=entry.who.kind,
        ip=entry.who.ip,
        repository=entry.repository,
        namespace=namespace,
        reference=entry.reference,
        metadata=entry.metadata or None,
        at=at,
        expires_at=at + retention,
        namespace_key=f"{namespace}#{shard}" if namespace else None,
        performer_key=f"{entry.who.name}#{shard}" if entry.who.name else None,
    )


def write(entries: Sequence[Entry]) -> None:
    """One PutItem, or BatchWriteItem calls of 25 for several entries."""
    from chalicelib.storage.models import AuditModel

    if len(entries) == 1:
        item(entries[0]).save()
        return
    with AuditModel.batch_write() as batch:
        for entry in entries:
            batch.save(item(entry))


def from_events(events: Iterable[Event]) -> list[Entry]:
    """Entries for committed pushes, from the actor the push wrote on the manifest item, and
    for tags auto-prune deleted (Quay's `autoprune_tag_delete`: no performer, the policy)."""
    entries: list[Entry] = []
    for event in events:
        if event.kind == PUSHED:
            entries.append(
                Entry(
                    "push_repo",
                    event.actor or actors.NOBODY,
                    repository=event.repository,
                    reference=event.tag or event.digest,
                    metadata={"digest": event.digest, "event_id": event.id},
                    at=event.at,
                )
            )
        elif event.kind == TAG_PRUNED:
            entries.append(
                Entry(
                    "autoprune_tag_delete",
                    actors.NOBODY,
                    repository=event.repository,
                    reference=event.tag,
                    metadata={
                        "digest": event.digest,
                        "policy": event.policy or "",
                        "event_id": event.id,
                    },
                    at=event.at,
                )
            )
    return entries


def _kind(operation: str, method: str, params: Mapping[str, str], management: bool) -> str | None:
    if operation == "manifests.delete":
        return "delete_manifest" if ":" in params.get("reference", "") else "delete_tag"
    if management and method in _READS:
        return None  # reading settings or logs changes nothing
    kind = KINDS.get(operation)
    if kind == "change_repo_notification":
        return "delete_repo_notification" if method == "DELETE" else "reset_repo_notification"
    if kind is None and management:
        if operation.startswith("policies."):
            return "change_policy"
        return operation  # a change through the management API nobody named here yet
    if kind == "pull_repo" and (method != "GET" or not config.settings.audit_pulls):
        return None
    return kind


def _recorded(kind: str, status: int, who: Actor) -> bool:
    """Which outcomes make an entry: a successful push is recorded from the stream; the
    401 that starts every client's token dance is no event; anonymous token grants (each
    anonymous pull asks for one) are left to the pull's own entry."""
    if kind == "push_repo" and status < 400:
        return False
    if kind == "login":
        return bool(who.name) and status != 400
    if kind == "pull_repo":
        return status < 400 or status == 403
    return status != 401 or kind not in ("push_repo", "delete_tag", "delete_manifest")


def entry_for(
    operation: str,
    method: str,
    params: Mapping[str, str],
    status: int,
    error_code: str | None,
    *,
    management: bool,
    who: Actor | None = None,
) -> Entry | None:
    """The entry one finished request makes, if any."""
    who = who or actors.current()
    kind = _kind(operation, method, params, management)
    if kind is None or not _recorded(kind, status, who):
        return None
    if kind == "login" and status < 400 and params.get("grant") == "refresh_token":
        kind = "token_grant"
    repository = params.get("name")
    namespace = params.get("namespace") or params.get("username")
    if namespace is None and repository is None and who.name:
        namespace = who.name.split("+", 1)[0]
    reference = params.get("reference") or params.get("digest") or params.get("tag")
    return Entry(
        kind,
        who,
        result=SUCCESS if status < 400 else FAILURE,
        reason=error_code if status >= 400 else None,
        repository=repository,
        namespace=namespace,
        reference=reference,
        metadata={k: params[k] for k in _METADATA_PARAMS if params.get(k)},
    )


def _token_params(request: RegistryRequest) -> dict[str, str]:
    """The grant type and scopes of a token request: never its password or tokens."""
    from urllib.parse import parse_qs

    if request.method == "POST":
        try:
            form = parse_qs(request.body.decode("utf-8"))
        except UnicodeDecodeError:
            form = {}
        grant = (form.get("grant_type") or [""])[0]
        scope = " ".join(form.get("scope", []))
    else:
        grant, scope = "password", " ".join(request.query.get("scope", []))
    return {"grant": grant[:40], "scope": scope[:500]}


def after_request(request: RegistryRequest, record: RequestRecord, *, management: bool) -> None:
    """Record a finished request; an audit write that fails is logged, never the
    request's failure (its answer is already decided)."""
    params = dict(record.params)
    if record.operation.startswith("token."):
        params.update(_token_params(request))
    entry = entry_for(
        record.operation,
        record.method,
        params,
        record.status,
        record.error_code,
        management=management,
    )
    if entry is None:
        return
    operation = record.operation
    try:
        write([entry])
    except Exception:
        logger.exception("audit entry %s for %s not written", entry.kind, operation)


# -- reading ---------------------------------------------------------------------------------


REPOSITORY, NAMESPACE, PERFORMER = "repository", "namespace", "performer"


@dataclass(frozen=True)
class Page:
    entries: list[Any]
    next_page: str | None


def _encode(cursors: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursors).encode()).decode().rstrip("=")


def _decode(token: str | None) -> dict[str, str]:
    from chalicelib.errors import BadQuery

    if not token:
        return {}
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursors = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise BadQuery({"next_page": token[:40]}, message="invalid next_page") from error
    if not isinstance(cursors, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in cursors.items()
    ):
        raise BadQuery({"next_page": token[:40]}, message="invalid next_page")
    return cursors


def _key(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shard_query(by: str, value: str, shard: int, low: str, high: str, limit: int) -> list[Any]:
    from chalicelib.storage.models import AuditModel

    condition = AuditModel.sk.between(low, high)
    common: dict[str, Any] = {"scan_index_forward": False, "limit": limit, "page_size": limit}
    if by == REPOSITORY:
        query = AuditModel.query(f"repo {value}#{shard}", condition, **common)
    elif by == NAMESPACE:
        query = AuditModel.by_namespace.query(f"{value}#{shard}", condition, **common)
    else:
        query = AuditModel.by_performer.query(f"{value}#{shard}", condition, **common)
    return list(query)


def query(
    by: str, value: str, start: datetime, end: datetime, limit: int, token: str | None = None
) -> Page:
    """Entries of one repository, namespace or performer in [start, end), newest first.

    One Query per shard and page, merged by time. The page token holds each shard's
    position (the last entry taken from it; "" once it is exhausted).
    """
    cursors = _decode(token)
    low, end_key = _key(start), _key(end)
    found: list[tuple[int, Any]] = []
    exhausted: set[int] = set()
    for shard in range(config.settings.audit_shards):
        cursor = cursors.get(str(shard))
        if cursor == "":
            exhausted.add(shard)
            continue
        high = cursor or end_key
        rows = [r for r in _shard_query(by, value, shard, low, high, limit + 1) if r.sk != cursor]
        if cursor is None:
            rows = [r for r in rows if r.sk < end_key]
        if len(rows) <= limit:
            exhausted.add(shard)
        found += [(shard, row) for row in rows[:limit]]
    found.sort(key=lambda pair: pair[1].sk, reverse=True)
    taken, rest = found[:limit], found[limit:]
    next_cursors = dict(cursors)
    for shard, row in taken:
        next_cursors[str(shard)] = row.sk
    left = {shard for shard, _ in rest}
    for shard in exhausted - left:
        next_cursors[str(shard)] = ""
    done = all(next_cursors.get(str(s)) == "" for s in range(config.settings.audit_shards))
    return Page([row for _, row in taken], None if done else _encode(next_cursors))


def view(row: Any) -> dict[str, Any]:
    """An entry as Quay's logs API shows one (`kind`, `metadata`, `ip`, `datetime`,
    `performer`), with the repository, reference, result and reason beside it."""
    from email.utils import format_datetime

    metadata: dict[str, Any] = dict(row.metadata.attribute_values) if row.metadata else {}
    if row.repository:
        metadata["repo"] = row.repository.split("/", 1)[-1]
        metadata["namespace"] = row.namespace
    if row.reference:
        metadata["tag" if ":" not in row.reference else "digest"] = row.reference
    shown: dict[str, Any] = {
        "kind": row.kind,
        "metadata": metadata,
        "ip": row.ip,
        "datetime": format_datetime(row.at, usegmt=True),
        "repository": row.repository,
        "reference": row.reference,
        "result": row.result,
    }
    if row.reason:
        shown["reason"] = row.reason
    if row.performer:
        shown["performer"] = {
            "kind": row.performer_kind,
            "name": row.performer,
            "is_robot": row.performer_kind == actors.ROBOT,
        }
    return shown
