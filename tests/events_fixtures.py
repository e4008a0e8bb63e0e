"""The tables' streams on moto, read as `Change` records, for the events and audit tests.

Until the shared stream consumer reads them itself, this turns moto's stream records into
objects of the consumer's `Change` shape (notes: chalicelib/changes.py), so the tests drive
the events subscriber with what the stream really carries after real requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from chalicelib import config


@dataclass(frozen=True)
class Change:
    table: str
    event: str
    keys: dict[str, Any]
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    event_id: str
    at: datetime
    by_ttl: bool = False


def _plain(image: dict[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in image.items()}


class Streams:
    """The tags and manifests tables' stream records, read from moto's in-process backend
    (moto's DescribeStream answers "Not yet implemented"); `read()` gives the changes since
    the last read, table by table in commit order, as the consumer would see them."""

    def __init__(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][config.settings.region]
        self.tables = {
            "tags": backend.get_table(config.settings.tags_table),
            "manifests": backend.get_table(config.settings.manifests_table),
        }
        for table in self.tables.values():
            if table.stream_shard is None:  # a checkout whose tables have no stream yet
                table.set_stream_specification(
                    {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
                )
        self.seen = {name: len(t.stream_shard.items) for name, t in self.tables.items()}

    def read(self) -> list[Change]:
        changes: list[Change] = []
        for logical, table in self.tables.items():
            records = table.stream_shard.items[self.seen[logical] :]
            self.seen[logical] += len(records)
            for stream_record in records:
                record = stream_record.record
                data = record["dynamodb"]
                at = data.get("ApproximateCreationDateTime") or datetime.now(UTC)
                if at.tzinfo is None:
                    at = at.replace(tzinfo=UTC)
                changes.append(
                    Change(
                        logical,
                        record["eventName"],
                        _plain(data["Keys"]) or {},
                        _plain(data.get("OldImage")),
                        _plain(data.get("NewImage")),
                        record["eventID"],
                        at,
                    )
                )
        return changes
