"""The audit log's export to S3, for Athena: gzip'd JSON lines under Hive-style partitions.

Off by default (STRATUS_AUDIT_EXPORT): then no function reads the audit table's stream and
nothing is written. On, the `audit_export` function (app.py) gets the stream's new entries
in batches and writes one object per batch and hour, at
`<prefix>dt=YYYY-MM-DD/hour=HH/<batch id>.json.gz`: a cost proportional to new entries,
nothing on any request path. The batch id is the stream sequence number of the first
record the object holds, so a batch delivered again (streams are at least once) writes the
same keys with the same lines: no duplicate object. Each line carries the entry's `id`
(its table key), which stays the same wherever a line is written.

Lines hold the entry's named fields only (never the table's index keys, never anything the
entry does not hold: the entries hold no secret, docs/events.md).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("stratus.audit_export")

# The entry's attributes a line carries, in order; anything else on the item stays out.
FIELDS = (
    "kind",
    "result",
    "reason",
    "performer",
    "performer_kind",
    "ip",
    "repository",
    "namespace",
    "reference",
    "metadata",
)


@dataclass(frozen=True)
class Line:
    sequence: str  # the stream record's sequence number: orders and names the batch
    at: datetime
    record: dict[str, Any]


def _value(raw: Any) -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    value = TypeDeserializer().deserialize(raw)
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return value if isinstance(value, str) else str(value)


def _at(image: dict[str, Any]) -> datetime:
    """When the entry happened: its `at` (pynamodb's UTC datetime format)."""
    raw = image["at"]["S"]
    return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)


def line_of(record: dict[str, Any]) -> Line | None:
    """One stream record as an export line; None for what is no new entry (a TTL expiry,
    a change to an existing item)."""
    if record.get("eventName") != "INSERT":
        return None
    stream = record["dynamodb"]
    image = stream.get("NewImage") or {}
    if "at" not in image or "pk" not in image or "sk" not in image:
        return None
    at = _at(image)
    line: dict[str, Any] = {
        "id": f"{_value(image['pk'])}|{_value(image['sk'])}",
        "time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    for name in FIELDS:
        if name in image and "NULL" not in image[name]:
            line[name] = _value(image[name])
    return Line(str(stream.get("SequenceNumber", record.get("eventID", ""))), at, line)


def partition(at: datetime) -> str:
    return f"dt={at:%Y-%m-%d}/hour={at:%H}"


def objects(lines: Sequence[Line], prefix: str) -> dict[str, bytes]:
    """The batch's objects by key: one per hour its entries fall in, named after the first
    record in it; lines in stream order. The same batch gives the same keys and bodies."""
    by_partition: dict[str, list[Line]] = {}
    for line in lines:
        by_partition.setdefault(partition(line.at), []).append(line)
    out: dict[str, bytes] = {}
    for where, group in by_partition.items():
        text = "".join(json.dumps(g.record, sort_keys=True) + "\n" for g in group)
        # mtime=0: the same lines give the same bytes, whenever they are written again.
        out[f"{prefix}{where}/{group[0].sequence}.json.gz"] = gzip.compress(
            text.encode("utf-8"), mtime=0
        )
    return out


def export(records: Sequence[dict[str, Any]]) -> int:
    """Write the records' new entries; how many lines were written."""
    from chalicelib import config

    settings = config.settings
    if not settings.audit_export:
        return 0
    lines = [line for line in (line_of(r) for r in records) if line is not None]
    if not lines:
        return 0
    from chalicelib.storage import aws

    s3 = aws.s3()
    bucket = settings.audit_export_bucket or settings.bucket
    for key, body in objects(lines, settings.audit_export_prefix).items():
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/gzip",  # no Content-Encoding: Athena reads the .gz
        )
    return len(lines)


def handle_stream_event(event: dict[str, Any]) -> dict[str, Any]:
    """A batch of the audit table's stream records (Lambda's event, or local mode's
    poller); a failure names the batch's first record, so the whole batch comes again and
    rewrites the same objects."""
    records = list(event.get("Records") or [])
    try:
        export(records)
    except Exception:
        logger.exception("audit export of %d records failed; the batch comes again", len(records))
        first = records[0]
        sequence = first["dynamodb"].get("SequenceNumber", first.get("eventID"))
        return {"batchItemFailures": [{"itemIdentifier": sequence}]}
    return {"batchItemFailures": []}
