"""The tables' stream consumer (chalicelib/changes.py) and local mode's poller of moto's
streams (chalicelib/local/background.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

import pytest

from chalicelib import changes
from chalicelib.local.background import StreamPoller
from tests.client import Client

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/{}/stream/2026-01-01T00:00:00.000"


def record(table: str, event: str, seq: str, **images: dict) -> dict:
    from chalicelib import config

    name = {"tags": config.settings.tags_table, "manifests": config.settings.manifests_table}
    return {
        "eventID": f"id-{seq}",
        "eventName": event,
        "eventSourceARN": ARN.format(name[table]),
        "dynamodb": {
            "Keys": {"repository": {"S": "org/app"}, "sort_key": {"S": "v1"}},
            "SequenceNumber": seq,
            "ApproximateCreationDateTime": 1_800_000_000,
            **images,
        },
    }


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[changes.Change]]:
    """Only a recording subscriber, for the test."""
    got: list[changes.Change] = []
    monkeypatch.setattr(changes, "_subscribers", [lambda batch: got.extend(batch)])
    monkeypatch.setattr(changes, "_loaded", True)
    yield got


def test_stream_records_become_changes_of_plain_values(seen) -> None:
    image = {"digest": {"S": "sha256:a"}, "expires_at": {"N": "1800000000"}}
    ttl = record("tags", "REMOVE", "1", OldImage=image)
    ttl["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    answer = changes.handle_stream_event(
        {"Records": [record("manifests", "INSERT", "0", NewImage=image), ttl]}
    )
    assert answer == {"batchItemFailures": []}
    inserted, removed = seen
    assert (inserted.table, inserted.event, inserted.old) == ("manifests", "INSERT", None)
    assert inserted.new == {"digest": "sha256:a", "expires_at": 1_800_000_000}
    assert not isinstance(inserted.new["expires_at"], Decimal)
    assert (removed.table, removed.event, removed.by_ttl, removed.new) == (
        "tags",
        "REMOVE",
        True,
        None,
    )
    assert removed.keys == {"repository": "org/app", "sort_key": "v1"}
    assert removed.event_id == "id-1" and removed.at.timestamp() == 1_800_000_000
    assert not inserted.by_ttl


def test_a_subscriber_failing_fails_the_batch_from_its_first_failed_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def fails_on_second(batch: Sequence[changes.Change]) -> None:
        calls.append([c.event_id for c in batch])
        if any(c.event_id == "id-2" for c in batch):
            raise RuntimeError("boom")

    monkeypatch.setattr(changes, "_subscribers", [fails_on_second])
    monkeypatch.setattr(changes, "_loaded", True)
    records = [record("tags", "INSERT", str(i), NewImage={}) for i in (1, 2, 3)]
    answer = changes.handle_stream_event({"Records": records})
    assert answer == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert calls == [["id-1", "id-2", "id-3"], ["id-1"], ["id-2"]]


def test_every_listed_subscriber_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "_subscribers", [])
    monkeypatch.setattr(changes, "_loaded", False)
    loaded = changes.subscribers()
    assert len(loaded) == len(changes.SUBSCRIBERS)
    from chalicelib.cleanup import subscriber

    assert subscriber.on_changes in loaded


def test_tables_stream_old_and_new_images(aws: None) -> None:
    import boto3

    from chalicelib import config

    dynamodb = boto3.client("dynamodb")
    for table in (config.settings.tags_table, config.settings.manifests_table):
        spec = dynamodb.describe_table(TableName=table)["Table"]["StreamSpecification"]
        assert spec == {"StreamEnabled": True, "StreamViewType": changes.STREAM_VIEW}


def test_local_poller_hands_committed_writes_to_subscribers_once(client: Client, seen) -> None:
    poller = StreamPoller()
    body = client.image_document("org/app", seed="s", layers=(b"layer",))
    import json

    client.must_push("org/app", "v1", json.dumps(body).encode())
    assert poller.poll() >= 2
    tables = {(c.table, c.event) for c in seen}
    assert {("manifests", "INSERT"), ("tags", "INSERT")} <= tables
    tag = next(c for c in seen if c.table == "tags")
    assert tag.new is not None and tag.new["name"] == "v1"
    before = len(seen)
    assert poller.poll() == 0  # read from where it stopped
    assert len(seen) == before
