"""The audit log's export to S3 as gzip'd JSON lines (chalicelib/events/audit_export.py),
read from the audit table's stream as local mode's poller reads it."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib import config
from chalicelib.events import audit, audit_export
from chalicelib.events.actor import Actor
from chalicelib.local.background import StreamPoller
from infra import policies

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/app"
KEY = re.compile(r"^audit/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/(\d+)\.json\.gz$")
NINE = datetime(2026, 11, 3, 9, 15, 1, tzinfo=UTC)
TEN = datetime(2026, 11, 3, 10, 2, 0, tzinfo=UTC)


def _objects() -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name=config.settings.region)
    listed = s3.list_objects_v2(Bucket=config.settings.bucket, Prefix="audit/")
    return {
        o["Key"]: s3.get_object(Bucket=config.settings.bucket, Key=o["Key"])["Body"].read()
        for o in listed.get("Contents", [])
    }


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(body).decode().splitlines()]


def _entries() -> list[audit.Entry]:
    who = Actor("bob", "user", ip="198.51.100.7")
    return [
        audit.Entry("pull_repo", who, repository=REPO, reference="v1", at=NINE),
        audit.Entry(
            "change_repo_permission",
            who,
            repository=REPO,
            metadata={"principal": "carol"},
            at=NINE,
        ),
        audit.Entry("delete_tag", who, repository=REPO, reference="old", at=TEN),
    ]


def _stream_records() -> list[dict[str, Any]]:
    """Every record of the audit table's stream, as Lambda's event carries them."""
    from botocore.config import Config

    region = config.settings.region
    table = boto3.client("dynamodb", region_name=region).describe_table(
        TableName=config.settings.audit_table
    )["Table"]
    streams = boto3.client(
        "dynamodbstreams", region_name=region, config=Config(account_id_endpoint_mode="disabled")
    )
    arn = table["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    return [{**r, "eventSourceARN": arn} for r in records]


@pytest.fixture
def exporting(aws: None, settings: Any) -> StreamPoller:
    """The export on, and local mode's poller past its first poll (which switches the audit
    table's stream on)."""
    settings(audit_export=True)
    poller = StreamPoller()
    poller.poll()
    return poller


def test_entries_appear_as_json_lines_in_their_hour_partition(exporting: StreamPoller) -> None:
    audit.write(_entries())
    exporting.poll()
    objects = _objects()
    partitions = {KEY.match(key).group(1, 2) for key in objects}  # type: ignore[union-attr]
    assert partitions == {("2026-11-03", "09"), ("2026-11-03", "10")}
    by_hour = {KEY.match(k).group(2): _lines(body) for k, body in objects.items()}  # type: ignore[union-attr]
    assert sorted(line["kind"] for line in by_hour["09"]) == ["change_repo_permission", "pull_repo"]
    (deleted,) = by_hour["10"]
    assert deleted["time"] == "2026-11-03T10:02:00.000000Z"
    assert deleted["reference"] == "old" and deleted["repository"] == REPO
    assert deleted["performer"] == "bob" and deleted["ip"] == "198.51.100.7"
    permission = next(x for x in by_hour["09"] if x["kind"] == "change_repo_permission")
    assert permission["metadata"] == {"principal": "carol"}
    # The entry's fields and its id only: no index key, no expiry, nothing else on the item.
    allowed = {"id", "time", *audit_export.FIELDS}
    assert all(set(line) <= allowed for lines in by_hour.values() for line in lines)
    assert all(
        line["id"].startswith(f"repo {REPO}#") for lines in by_hour.values() for line in lines
    )


def test_redelivered_batch_writes_no_duplicate_object(exporting: StreamPoller) -> None:
    audit.write(_entries())
    records = _stream_records()
    assert audit_export.handle_stream_event({"Records": records}) == {"batchItemFailures": []}
    first = _objects()
    assert audit_export.handle_stream_event({"Records": records}) == {"batchItemFailures": []}
    again = _objects()
    assert again == first and len(first) == 2
    # Named after the first record of each hour in the batch.
    sequences = {KEY.match(key).group(3) for key in first}  # type: ignore[union-attr]
    assert sequences == {
        records[0]["dynamodb"]["SequenceNumber"],
        records[2]["dynamodb"]["SequenceNumber"],
    }


def test_a_failed_export_asks_for_the_whole_batch_again(
    exporting: StreamPoller, settings: Any
) -> None:
    audit.write(_entries()[:1])
    records = _stream_records()
    settings(audit_export_bucket="no-such-bucket-for-the-export")
    answer = audit_export.handle_stream_event({"Records": records})
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    }


def test_ttl_expiries_and_changes_are_not_exported(exporting: StreamPoller) -> None:
    audit.write(_entries()[:1])
    (record,) = _stream_records()
    removed = {**record, "eventName": "REMOVE"}
    assert audit_export.export([removed]) == 0
    assert _objects() == {}


def test_export_is_off_by_default_and_writes_nothing(aws: None) -> None:
    assert config.load({}).audit_export is False
    assert config.settings.audit_export is False
    StreamPoller().poll()  # the poller leaves the audit table's stream alone
    table = boto3.client("dynamodb", region_name=config.settings.region).describe_table(
        TableName=config.settings.audit_table
    )["Table"]
    assert "LatestStreamArn" not in table
    audit.write(_entries())
    boto3.client("dynamodb", region_name=config.settings.region).update_table(
        TableName=config.settings.audit_table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    audit.write(_entries())
    records = _stream_records()
    assert records
    assert audit_export.handle_stream_event({"Records": records}) == {"batchItemFailures": []}
    assert _objects() == {}


def _functions(export: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_AUDIT_EXPORT")}
    env["STRATUS_AUDIT_EXPORT"] = export
    names = subprocess.run(
        [sys.executable, "-c", "import app; print(' '.join(app.app.handler_map))"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return set(names)


def test_the_export_function_exists_only_with_the_export_on() -> None:
    assert "audit_export" not in _functions("0")
    assert "audit_export" in _functions("1")


def test_audit_export_role_may_only_put_objects_under_the_export_prefix() -> None:
    policy = policies.audit_export_policy("dev")
    actions = {a: s["Resource"] for s in policy["Statement"] for a in s["Action"]}
    assert {a for a in actions if a.startswith("s3:")} == {"s3:PutObject"}
    assert actions["s3:PutObject"] == "arn:aws:s3:::stratus-dev-blobs-*/audit/*"
    dynamodb = {a for a in actions if a.startswith("dynamodb:")}
    assert dynamodb == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    assert actions["dynamodb:GetRecords"] == "arn:aws:dynamodb:*:*:table/stratus-dev-audit/stream/*"
    chalice = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage in policies.STAGES:
        function = chalice["stages"][stage]["lambda_functions"]["audit_export"]
        assert function["iam_policy_file"] == f"policy-{stage}-audit-export.json"


def test_deploy_keeps_the_export_settings_and_gives_them_to_chalice_deploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra import deploy

    outputs = {
        name: f"value-of-{name}"
        for name in (
            "TablePrefix",
            "Bucket",
            "SigningKeyParameter",
            "AdminPasswordParameter",
            "GcSegmentQueueUrl",
            "WebhookQueueUrl",
            "WebhookDeadLetterQueueUrl",
            "WebhookSecretPrefix",
        )
    }
    path = tmp_path / "config.json"
    path.write_text((ROOT / ".chalice" / "config.json").read_text())
    deploy.configure_stage("dev", outputs, path)
    assert deploy.audit_export_environment("dev", path) == {}  # off unless asked for
    monkeypatch.setenv("STRATUS_AUDIT_EXPORT", "1")
    monkeypatch.setenv("STRATUS_AUDIT_EXPORT_PREFIX", "logs/audit/")
    deploy.configure_stage("dev", outputs, path)
    monkeypatch.delenv("STRATUS_AUDIT_EXPORT")
    monkeypatch.delenv("STRATUS_AUDIT_EXPORT_PREFIX")
    deploy.configure_stage("dev", outputs, path)  # a later `up` keeps what the stage has
    assert deploy.audit_export_environment("dev", path) == {
        "STRATUS_AUDIT_EXPORT": "1",
        "STRATUS_AUDIT_EXPORT_PREFIX": "logs/audit/",
    }


def _counted(work: Any) -> dict[tuple[str, str], int]:
    from chalicelib.storage import calls

    before = dict(calls.counter)
    work()
    return {k: v - before.get(k, 0) for k, v in calls.counter.items() if v - before.get(k, 0)}


def test_the_export_adds_no_call_to_the_request_and_one_put_per_batch_and_hour(
    exporting: StreamPoller,
) -> None:
    who = Actor("bob", "user")
    entry = audit.Entry("pull_repo", who, repository=REPO, at=NINE)
    assert _counted(lambda: audit.write([entry])) == {("dynamodb", "PutItem"): 1}
    audit.write([audit.Entry("pull_repo", who, repository=REPO, at=NINE) for _ in range(30)])
    records = _stream_records()
    assert len(records) == 31
    used = _counted(lambda: audit_export.handle_stream_event({"Records": records}))
    assert used == {("s3", "PutObject"): 1}
    (body,) = _objects().values()
    assert len(_lines(body)) == 31
