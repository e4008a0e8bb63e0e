"""Registry events, derived from the committed changes of the tags and manifests tables.

The source is the tables' DynamoDB streams (chalicelib/changes.py), not the request: a
stream carries only writes that committed, so a failed or refused request (a transaction
cancelled, a condition that failed) never produces an event. Each event's id is the stream
record's eventID (with a suffix for a second event of one record), stable across the
at-least-once redeliveries of a batch, so receivers deduplicate on it. Events keep the
order the stream gives, which DynamoDB guarantees per item; records of one repository share
a partition key and so a shard.

What each change means:
- manifests INSERT, or MODIFY with a new `pushed_at`: a manifest pushed (`repo_push`),
  with the tag the push named (`pushed_tag`) and, when it has a `subject` and is new, a
  referrer attached; a MODIFY that only touches or marks it is no event;
- manifests REMOVE: a manifest deleted;
- tags INSERT: a tag created; MODIFY to another digest: a tag moved; REMOVE: a tag
  deleted, or expired when DynamoDB's TTL removed it or it was past its expiry (cleanup),
  or pruned when the item carried the `pruned_by` marker an auto-prune writes just before
  its conditional delete (storage/policies.py `prune_tag`), naming the policy.

A quota warning is not a change of these tables: policies/quotas.py makes it (`warning`)
and publishes it itself after the link that crossed the threshold committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from chalicelib.events.actor import Actor

logger = logging.getLogger(__name__)

PUSHED = "repo_push"
TAG_CREATED = "tag_created"
TAG_MOVED = "tag_moved"
TAG_DELETED = "tag_deleted"
TAG_EXPIRED = "tag_expired"
MANIFEST_DELETED = "manifest_deleted"
REFERRER_ATTACHED = "referrer_attached"
TAG_PRUNED = "tag_pruned"
QUOTA_WARNING = "quota_warning"
KINDS = (
    PUSHED,
    TAG_CREATED,
    TAG_MOVED,
    TAG_DELETED,
    TAG_EXPIRED,
    MANIFEST_DELETED,
    REFERRER_ATTACHED,
    TAG_PRUNED,
    QUOTA_WARNING,
)

# ECR's "ECR Image Action" action-type for each kind: PUSH and DELETE as ECR sends them,
# the others Stratus's own.
ACTION_TYPES = {
    PUSHED: "PUSH",
    TAG_CREATED: "TAG",
    TAG_MOVED: "RETAG",
    TAG_DELETED: "DELETE",
    MANIFEST_DELETED: "DELETE",
    TAG_EXPIRED: "EXPIRE",
    REFERRER_ATTACHED: "REFERRER",
    TAG_PRUNED: "PRUNE",
    QUOTA_WARNING: "QUOTA_WARNING",
}


class ChangeLike(Protocol):
    """What `chalicelib.changes.Change` holds (owned by the stream consumer)."""

    @property
    def table(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def keys(self) -> dict[str, Any]: ...
    @property
    def old(self) -> dict[str, Any] | None: ...
    @property
    def new(self) -> dict[str, Any] | None: ...
    @property
    def event_id(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def by_ttl(self) -> bool: ...


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    repository: str
    at: datetime
    digest: str
    tag: str | None = None
    previous_digest: str | None = None
    media_type: str | None = None
    artifact_type: str | None = None
    size: int | None = None
    subject: str | None = None
    by_ttl: bool = False
    policy: str | None = None  # tag_pruned: the auto-prune policy's uuid
    usage: int | None = None  # quota_warning: the namespace's bytes after the link
    limit: int | None = None  # quota_warning: the Warning threshold crossed, in bytes
    # Who pushed (from the item the push wrote); for the audit log, not sent to receivers.
    actor: Actor | None = None

    @property
    def namespace(self) -> str:
        head, slash, _ = self.repository.partition("/")
        return head if slash else ""

    def document(self) -> dict[str, Any]:
        """The event as receivers get it (webhook body; EventBridge's detail builds on it)."""
        body: dict[str, Any] = {
            "id": self.id,
            "event": self.kind,
            "time": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "repository": self.repository,
            "namespace": self.namespace,
            "digest": self.digest,
        }
        optional = {
            "tag": self.tag,
            "previous_digest": self.previous_digest,
            "media_type": self.media_type,
            "artifact_type": self.artifact_type,
            "size": self.size,
            "subject": self.subject,
            "policy": self.policy,
            "usage": self.usage,
            "limit": self.limit,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.kind == TAG_EXPIRED:
            body["by_ttl"] = self.by_ttl
        return body

    def ecr_detail(self) -> dict[str, Any]:
        """ECR's "ECR Image Action" detail, plus the fields ECR lacks."""
        detail: dict[str, Any] = {
            "result": "SUCCESS",  # a stream carries only committed writes
            "action-type": ACTION_TYPES[self.kind],
            "repository-name": self.repository,
            "image-digest": self.digest,
            "event": self.kind,
            "event-id": self.id,
        }
        extra = {
            "image-tag": self.tag,
            "manifest-media-type": self.media_type,
            "artifact-media-type": self.artifact_type,
            "previous-digest": self.previous_digest,
            "size": self.size,
            "subject": self.subject,
            "policy-id": self.policy,
            "namespace": self.namespace if self.kind == QUOTA_WARNING else None,
            "usage": self.usage,
            "limit": self.limit,
        }
        detail.update({k: v for k, v in extra.items() if v is not None})
        if self.kind == TAG_EXPIRED:
            detail["by-ttl"] = self.by_ttl
        return detail


def _text(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    return value if isinstance(value, str) else None


def _number(image: Mapping[str, Any], name: str) -> int | None:
    value = image.get(name)
    return int(value) if isinstance(value, Decimal | int) else None


def _timestamp(image: Mapping[str, Any], name: str) -> datetime | None:
    """pynamodb's UTCDateTimeAttribute text, or a TTL's epoch seconds."""
    value = image.get(name)
    if isinstance(value, Decimal | int):
        return datetime.fromtimestamp(int(value), UTC)
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            return None
    return None


def _manifest_events(change: ChangeLike) -> list[Event]:
    if change.event == "REMOVE":
        old = change.old or {}
        return [
            Event(
                change.event_id,
                MANIFEST_DELETED,
                str(change.keys["repository"]),
                change.at,
                str(change.keys["digest"]),
                media_type=_text(old, "media_type"),
                artifact_type=_text(old, "artifact_type"),
                size=_number(old, "size"),
                subject=_text(old, "subject"),
            )
        ]
    new, previous = change.new or {}, change.old
    if "media_type" not in new:
        return []  # not a stored manifest (never the case for committed pushes)
    if previous is not None and previous.get("pushed_at") == new.get("pushed_at"):
        return []  # touched by an index push, or marked for deletion: no push
    pushed = Event(
        change.event_id,
        PUSHED,
        str(change.keys["repository"]),
        change.at,
        str(change.keys["digest"]),
        tag=_text(new, "pushed_tag"),
        media_type=_text(new, "media_type"),
        artifact_type=_text(new, "artifact_type"),
        size=_number(new, "size"),
        subject=_text(new, "subject"),
        actor=Actor.from_stamp(_text(new, "pushed_by"), _text(new, "pushed_from")),
    )
    events = [pushed]
    if pushed.subject is not None and (
        previous is None or previous.get("subject") != pushed.subject
    ):
        events.append(
            Event(
                change.event_id + "/referrer",
                REFERRER_ATTACHED,
                pushed.repository,
                change.at,
                pushed.digest,
                media_type=pushed.media_type,
                artifact_type=pushed.artifact_type,
                size=pushed.size,
                subject=pushed.subject,
            )
        )
    return events


def _tag_event(change: ChangeLike) -> Event | None:
    repository = str(change.keys["repository"])
    if change.event == "REMOVE":
        old = change.old or {}
        expires = _timestamp(old, "expires_at")
        expired = change.by_ttl or (expires is not None and expires <= change.at)
        policy = None if expired else _text(old, "pruned_by")
        return Event(
            change.event_id,
            TAG_EXPIRED if expired else TAG_PRUNED if policy else TAG_DELETED,
            repository,
            change.at,
            str(old.get("digest", "")),
            tag=_text(old, "name"),
            media_type=_text(old, "media_type"),
            size=_number(old, "size"),
            by_ttl=change.by_ttl,
            policy=policy,
        )
    new, previous = change.new or {}, change.old
    if previous is not None and previous.get("digest") == new.get("digest"):
        return None  # the same manifest pushed again under the tag
    return Event(
        change.event_id,
        TAG_CREATED if previous is None else TAG_MOVED,
        repository,
        change.at,
        str(new.get("digest", "")),
        tag=_text(new, "name"),
        previous_digest=_text(previous, "digest") if previous is not None else None,
        media_type=_text(new, "media_type"),
        size=_number(new, "size"),
    )


def from_change(change: ChangeLike) -> list[Event]:
    """The events one committed change means; none for tables and changes we ignore."""
    if change.table == "manifests":
        return _manifest_events(change)
    if change.table == "tags":
        event = _tag_event(change)
        return [event] if event is not None else []
    return []


def from_changes(changes: Iterable[ChangeLike]) -> list[Event]:
    """Events in stream order; a record we cannot read is logged and skipped, never raised
    (a raise would make Lambda retry the batch forever)."""
    events: list[Event] = []
    for change in changes:
        try:
            events += from_change(change)
        except (KeyError, TypeError, ValueError):
            logger.warning("unreadable %s change %s skipped", change.table, change.event_id)
    return events


Sink = Callable[[Sequence[Event]], None]
