"""Local mode's stand-ins for what AWS runs beside the API: the stream Lambda and the
scheduled cleanup, as threads of the local registry's process.

- The tables' streams are polled (moto keeps them as DynamoDB does) and every batch goes
  through `chalicelib.changes.handle_stream_event`, as the stream Lambda's would; a failed
  batch is read again from its first failed record.
- With STRATUS_AUDIT_EXPORT on, the audit table's stream is polled too and exported
  (chalicelib/events/audit_export.py), as the `audit_export` Lambda would.
- The webhook queue is drained every second (chalicelib/events/deliveries.py), deliveries
  to loopback allowed (STRATUS_WEBHOOK_LOOPBACK), so a local receiver sees a push at once.
- The scheduled cleanup's routine run comes every STRATUS_LOCAL_CLEANUP_SECONDS (60 by
  default; 0: never), with its backstop segments in-process (no SQS queue locally).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("stratus.local")

STREAM_POLL_SECONDS = 1.0
Event = threading.Event
WEBHOOK_POLL_SECONDS = 1.0


@dataclass
class StreamPoller:
    """Reads the tags and manifests tables' streams from where it last stopped."""

    client: Any = None
    # (stream, shard) -> the iterator to read next
    iterators: dict[tuple[str, str], str] = field(default_factory=dict)

    def _streams(self) -> list[tuple[str, Any]]:
        """(stream, its consumer): the tables' streams, and the audit table's with the
        export on (its stream switched on here the first time, as the stack has it)."""
        import boto3

        from chalicelib import changes, config
        from chalicelib.events import audit_export

        dynamodb = boto3.client("dynamodb", region_name=config.settings.region)
        arns = []
        for table in (config.settings.tags_table, config.settings.manifests_table):
            arn = dynamodb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
            if arn:
                arns.append((arn, changes.handle_stream_event))
        if config.settings.audit_export:
            table = config.settings.audit_table
            described = dynamodb.describe_table(TableName=table)["Table"]
            if not described.get("StreamSpecification", {}).get("StreamEnabled"):
                spec = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
                described = dynamodb.update_table(TableName=table, StreamSpecification=spec)
                described = described["TableDescription"]
            arns.append((described["LatestStreamArn"], audit_export.handle_stream_event))
        return arns

    def poll(self) -> int:
        """Hand every new record to the consumer; how many there were."""
        import boto3
        from botocore.config import Config

        from chalicelib import config

        # Not the account's own endpoint (<account>.streams-ddb...): moto answers only the
        # regional one.
        self.client = self.client or boto3.client(
            "dynamodbstreams",
            region_name=config.settings.region,
            config=Config(account_id_endpoint_mode="disabled"),
        )
        handled = 0
        for arn, handle in self._streams():
            shards = self.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            for shard in shards:
                handled += self._read_shard(arn, shard["ShardId"], handle)
        return handled

    def _read_shard(self, arn: str, shard: str, handle: Any) -> int:
        iterator = (
            self.iterators.get((arn, shard))
            or self.client.get_shard_iterator(
                StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )
        page = self.client.get_records(ShardIterator=iterator)
        records = [{**r, "eventSourceARN": arn} for r in page.get("Records", [])]
        if records:
            failures = handle({"Records": records})["batchItemFailures"]
            if failures:  # read again from the first failed record
                self.iterators[arn, shard] = self.client.get_shard_iterator(
                    StreamArn=arn,
                    ShardId=shard,
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=failures[0]["itemIdentifier"],
                )["ShardIterator"]
                return len(records)
        self.iterators[arn, shard] = page["NextShardIterator"]
        return len(records)


def _every(seconds: float, work: Any, stop: threading.Event, what: str) -> None:
    while not stop.wait(seconds):
        try:
            work()
        except Exception:
            logger.exception("local %s failed", what)


def start() -> threading.Event:
    """Start the stream poller and the cleanup timer; set the returned event to stop them."""
    from chalicelib import cleanup
    from chalicelib.events import deliveries  # webhooks within seconds of the push

    stop = threading.Event()
    poller = StreamPoller()
    cleanup_seconds = float(os.environ.get("STRATUS_LOCAL_CLEANUP_SECONDS", "60"))
    jobs: list[tuple[float, Any, str]] = [(STREAM_POLL_SECONDS, poller.poll, "stream poll")]
    jobs.append((WEBHOOK_POLL_SECONDS, deliveries.poll, "webhooks"))
    if cleanup_seconds > 0:
        jobs.append((cleanup_seconds, cleanup.routine, "cleanup"))
    for seconds, work, what in jobs:
        threading.Thread(
            target=_every, args=(seconds, work, stop, what), name=f"local-{what}", daemon=True
        ).start()
    return stop
