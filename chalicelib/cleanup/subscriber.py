"""The collector's subscriber to the tables' streams: changes become work-list candidates.

What can make garbage, and when it can first be collected:
- a tag deleted, moved to another manifest, or removed by DynamoDB's TTL: its repository,
  now (the manifest it left may be unreachable);
- a tag written with an expiry: its repository, at the expiry (the collector expires tags
  on time; TTL lags by days);
- a manifest deleted: its repository, now (its blobs and children may be unused);
- a manifest pushed untagged (by digest): its repository, when its grace window ends.
A push by tag, a touch or a re-push adds nothing: the tag keeps the manifest, and a touch
only extends a grace window the collector already reckons with. Enqueueing is idempotent,
so a redelivered record changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import config
from chalicelib.changes import Change
from chalicelib.cleanup import queue

Due = tuple[str, datetime]  # (work-list key, when)


def _time(value: Any) -> datetime | None:
    """A stored time: epoch seconds (TTL attributes) or pynamodb's UTC datetime text."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%f%z")


def _tag(change: Change) -> list[Due]:
    old, new = change.old or {}, change.new or {}
    repository = str(change.keys.get("repository") or new.get("repository") or "")
    due: list[Due] = []
    if change.event == "REMOVE" or (old and old.get("digest") != new.get("digest")):
        due.append((repository, change.at))
    expires = _time(new.get("expires_at"))
    if expires is not None and expires != _time(old.get("expires_at")):
        due.append((repository, expires))
    return due


def _manifest(change: Change, grace: timedelta) -> list[Due]:
    repository = str(change.keys.get("repository") or "")
    if change.event == "REMOVE":
        return [(repository, change.at)]
    new = change.new or {}
    # An image without `pushed_at` is no push (moto streams the key-only item an update
    # creates before the update itself).
    if change.event == "INSERT" and "pushed_at" in new and not new.get("pushed_tag"):
        pushed = _time(new.get("pushed_at")) or change.at
        return [(repository, pushed + grace)]
    return []


def wanted(change: Change, grace: timedelta) -> list[Due]:
    """Pure: the candidates one change makes (none for tables and changes it ignores)."""
    if change.table == "tags":
        return _tag(change)
    if change.table == "manifests":
        return _manifest(change, grace)
    return []


def on_changes(changes: Sequence[Change]) -> None:
    grace = timedelta(seconds=config.settings.gc_grace_seconds)
    earliest: dict[str, datetime] = {}
    for change in changes:
        for key, when in wanted(change, grace):
            if key and (key not in earliest or when < earliest[key]):
                earliest[key] = when
    for key, when in earliest.items():
        queue.repository(key, when)
