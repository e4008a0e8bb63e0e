"""The tables' DynamoDB streams, read once and handed to every subscriber.

The tags and manifests tables stream NEW_AND_OLD_IMAGES. Each record becomes a Change of
plain values; every subscriber gets each batch in order. Subscribers are the modules in
SUBSCRIBERS (imported on the first batch, so the stream Lambda loads only what it runs)
plus any passed to `subscribe`. Delivery is at least once: a subscriber must be idempotent,
and must not raise for a record it does not care about. One that raises makes the batch
fail from the first record it failed on (Lambda's partial batch response), which comes
again; the records before it are not redelivered.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

logger = logging.getLogger("stratus.changes")

# "module:function" of each subscriber.
SUBSCRIBERS: tuple[str, ...] = (
    "chalicelib.cleanup.subscriber:on_changes",
    "chalicelib.events.subscriber:on_changes",
)
# Stream view of both tables: subscribers compare what a write replaced with what it wrote.
STREAM_VIEW = "NEW_AND_OLD_IMAGES"
# DynamoDB's TTL deletes carry this identity.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True)
class Change:
    table: str  # logical name: "tags" or "manifests"
    event: str  # "INSERT" | "MODIFY" | "REMOVE"
    keys: dict[str, Any]
    old: dict[str, Any] | None  # deserialized plain values, None on INSERT
    new: dict[str, Any] | None  # None on REMOVE
    event_id: str  # the stream record's eventID: the deduplication id
    at: datetime  # ApproximateCreationDateTime (UTC)
    by_ttl: bool  # REMOVE made by DynamoDB TTL


Subscriber = Callable[[Sequence[Change]], None]
_subscribers: list[Subscriber] = []
_loaded = False


def subscribe(subscriber: Subscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def subscribers() -> list[Subscriber]:
    global _loaded
    if not _loaded:
        for spec in SUBSCRIBERS:
            module, name = spec.split(":")
            subscribe(getattr(importlib.import_module(module), name))
        _loaded = True
    return list(_subscribers)


def _plain(value: Any) -> Any:
    """Numbers as int or float rather than Decimal; binary as bytes; sets as sets."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    if hasattr(value, "value") and type(value).__name__ == "Binary":
        return bytes(value.value)
    return value


def _image(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: _plain(deserializer.deserialize(v)) for k, v in raw.items()}


def table_of(source_arn: str) -> str:
    """The logical table name of a stream ARN ("...:table/<name>/stream/<label>")."""
    from chalicelib import config

    name = source_arn.split(":table/", 1)[-1].split("/", 1)[0]
    logical = {
        config.settings.tags_table: "tags",
        config.settings.manifests_table: "manifests",
    }
    return logical.get(name, name)


def change_of(record: dict[str, Any]) -> Change:
    stream = record["dynamodb"]
    identity = record.get("userIdentity") or {}
    at = stream.get("ApproximateCreationDateTime")
    if isinstance(at, datetime):
        when = at.astimezone(UTC)
    else:
        when = datetime.fromtimestamp(float(at), UTC) if at is not None else datetime.now(UTC)
    return Change(
        table=table_of(record.get("eventSourceARN", "")),
        event=record["eventName"],
        keys=_image(stream.get("Keys")) or {},
        old=_image(stream.get("OldImage")),
        new=_image(stream.get("NewImage")),
        event_id=record["eventID"],
        at=when,
        by_ttl=identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL,
    )


def _first_failure(records: list[dict[str, Any]], changes: list[Change]) -> int | None:
    """Deliver the batch to every subscriber; the index of the first record a subscriber
    failed on, or None. A batch that fails is delivered record by record to find it."""
    failed: int | None = None
    for subscriber in subscribers():
        try:
            subscriber(changes)
            continue
        except Exception:
            logger.exception("changes: %s failed on a batch; retrying record by record", subscriber)
        for index, change in enumerate(changes):
            if failed is not None and index >= failed:
                break
            try:
                subscriber([change])
            except Exception:
                logger.exception("changes: %s failed on %s", subscriber, change.event_id)
                failed = index
                break
    return failed


def handle_stream_event(event: dict[str, Any]) -> dict[str, Any]:
    """The Lambda entry point for a batch of stream records: a partial batch response
    naming the first record that failed (Lambda retries from there)."""
    records = list(event.get("Records") or [])
    changes = [change_of(r) for r in records]
    failed = _first_failure(records, changes) if changes else None
    if failed is None:
        return {"batchItemFailures": []}
    sequence = records[failed]["dynamodb"].get("SequenceNumber", records[failed]["eventID"])
    return {"batchItemFailures": [{"itemIdentifier": sequence}]}
