"""Registry events from the tables' committed changes, and their EventBridge delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib.events import bridge, schema, subscriber
from tests.client import Client
from tests.events_fixtures import Change, Streams
from tests.images import sha256
from tests.referrers_fixtures import referrer_manifest, subject_manifest

REPO = "acme/app"


@pytest.fixture
def streams(client: Client) -> Streams:
    return Streams()


def _image(client: Client, seed: str) -> bytes:
    return json.dumps(client.image_document(REPO, seed=seed)).encode()


def _events(streams: Streams) -> list[schema.Event]:
    return schema.from_changes(streams.read())


def test_push_by_tag_makes_a_push_and_a_tag_created_event(client: Client, streams) -> None:
    body = _image(client, "one")
    client.must_push(REPO, "v1", body)
    events = _events(streams)
    assert sorted(e.kind for e in events) == [schema.PUSHED, schema.TAG_CREATED]
    push = next(e for e in events if e.kind == schema.PUSHED)
    document = push.document()
    assert document["repository"] == REPO and document["namespace"] == "acme"
    assert document["digest"] == sha256(body) and document["tag"] == "v1"
    assert document["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    assert document["size"] == len(body)
    assert "subject" not in document
    assert datetime.strptime(document["time"], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_push_by_digest_has_no_tag_and_no_tag_event(client: Client, streams) -> None:
    body = _image(client, "two")
    client.must_push(REPO, sha256(body), body)
    (push,) = _events(streams)
    assert push.kind == schema.PUSHED and push.tag is None


def test_event_ids_are_the_stream_record_ids(client: Client, streams) -> None:
    client.must_push(REPO, "v1", _image(client, "ids"))
    changes = streams.read()
    events = schema.from_changes(changes)
    assert {e.id for e in events} <= {c.event_id for c in changes}
    assert len({e.id for e in events}) == len(events)


def test_push_to_a_tag_elsewhere_moves_it(client: Client, streams) -> None:
    first, second = _image(client, "a"), _image(client, "b")
    client.must_push(REPO, "v1", first)
    streams.read()
    client.must_push(REPO, "v1", second)
    moved = [e for e in _events(streams) if e.kind == schema.TAG_MOVED]
    assert [(e.tag, e.previous_digest, e.digest) for e in moved] == [
        ("v1", sha256(first), sha256(second))
    ]


def test_same_manifest_pushed_again_is_a_push_but_no_tag_event(client: Client, streams) -> None:
    body = _image(client, "again")
    client.must_push(REPO, "v1", body)
    streams.read()
    client.must_push(REPO, "v1", body)
    assert [e.kind for e in _events(streams)] == [schema.PUSHED]


def test_tag_delete_is_a_tag_deleted_event(client: Client, streams) -> None:
    body = _image(client, "del")
    client.must_push(REPO, "v1", body)
    streams.read()
    assert client.delete(f"/v2/{REPO}/manifests/v1").status == 202
    (deleted,) = _events(streams)
    assert (deleted.kind, deleted.tag, deleted.digest) == (schema.TAG_DELETED, "v1", sha256(body))
    assert deleted.ecr_detail()["action-type"] == "DELETE"


def test_manifest_delete_is_a_manifest_deleted_event_with_its_tags(client: Client, streams) -> None:
    body = _image(client, "gone")
    client.must_push(REPO, "v1", body)
    streams.read()
    assert client.delete(f"/v2/{REPO}/manifests/{sha256(body)}").status == 202
    kinds = sorted(e.kind for e in _events(streams))
    assert kinds == [schema.MANIFEST_DELETED, schema.TAG_DELETED]


def test_referrer_push_attaches_a_referrer(client: Client, streams) -> None:
    subject = subject_manifest("events")
    client.must_push(REPO, sha256(subject), subject)
    streams.read()
    referrer = referrer_manifest(subject, "application/vnd.example.sbom")
    client.must_push(REPO, sha256(referrer), referrer)
    events = _events(streams)
    attached = [e for e in events if e.kind == schema.REFERRER_ATTACHED]
    assert [(e.digest, e.subject, e.artifact_type) for e in attached] == [
        (sha256(referrer), sha256(subject), "application/vnd.example.sbom")
    ]
    push = next(e for e in events if e.kind == schema.PUSHED)
    assert push.document()["subject"] == sha256(subject)
    assert attached[0].id != push.id


def test_failed_push_makes_no_event(client: Client, streams) -> None:
    doc = client.image_document(REPO, seed="fails")
    doc["layers"] = [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": sha256(b"never"),
            "size": 5,
        }
    ]
    answer = client.push_manifest(REPO, "v1", doc)
    assert answer.status == 400 and answer.error_codes == ["MANIFEST_BLOB_UNKNOWN"]
    assert streams.read() == []


def test_index_push_touching_children_is_no_event_for_them(client: Client, streams) -> None:
    from tests.images import oci_index

    child = _image(client, "child")
    client.must_push(REPO, sha256(child), child)
    streams.read()
    index = oci_index([child])
    client.must_push(REPO, "multi", index, "application/vnd.oci.image.index.v1+json")
    events = _events(streams)
    assert {e.digest for e in events} == {sha256(index)}


def _tag_removal(*, by_ttl: bool, expires: datetime | None) -> Change:
    now = datetime.now(UTC)
    old = {"repository": REPO, "name": "nightly", "digest": "sha256:" + "a" * 64}
    if expires is not None:
        old["expires_at"] = int(expires.timestamp())
    return Change(
        "tags", "REMOVE", {"repository": REPO, "sort_key": "x"}, old, None, "e1", now, by_ttl
    )


def test_ttl_removal_is_a_tag_expired_event() -> None:
    (event,) = schema.from_changes([_tag_removal(by_ttl=True, expires=datetime.now(UTC))])
    assert event.kind == schema.TAG_EXPIRED and event.document()["by_ttl"] is True
    assert event.ecr_detail()["action-type"] == "EXPIRE"


def test_cleanup_removal_past_expiry_is_a_tag_expired_event() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    (event,) = schema.from_changes([_tag_removal(by_ttl=False, expires=past)])
    assert event.kind == schema.TAG_EXPIRED and event.by_ttl is False


def test_unreadable_change_is_skipped_not_raised() -> None:
    broken = Change("manifests", "REMOVE", {}, None, None, "e2", datetime.now(UTC), False)
    other = Change(
        "uploads", "INSERT", {"upload_id": "u"}, None, {}, "e3", datetime.now(UTC), False
    )
    assert schema.from_changes([broken, other]) == []


# -- EventBridge ----------------------------------------------------------------------------


def _rule_to_queue(bus: str, pattern: dict) -> str:
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="events-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events = boto3.client("events", region_name="us-east-1")
    if bus != "default":
        events.create_event_bus(Name=bus)
    events.put_rule(Name="stratus-pushes", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="stratus-pushes", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}]
    )
    return queue


def _delivered(queue: str) -> list[dict]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_an_ecr_rule_with_source_stratus_receives_pushes(client: Client, streams, settings) -> None:
    settings(event_bus="stratus-dev-events")
    bridge.client.cache_clear()
    queue = _rule_to_queue(
        "stratus-dev-events",
        {
            "source": ["stratus"],
            "detail-type": ["ECR Image Action"],
            "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
        },
    )
    body = _image(client, "bridge")
    client.must_push(REPO, "v1", body)
    subscriber.on_changes(streams.read())
    (delivered,) = _delivered(queue)
    assert delivered["source"] == "stratus"
    assert delivered["detail-type"] == "ECR Image Action"
    detail = delivered["detail"]
    assert detail["repository-name"] == REPO
    assert detail["image-digest"] == sha256(body)
    assert detail["image-tag"] == "v1"
    assert detail["manifest-media-type"] == "application/vnd.oci.image.manifest.v1+json"
    assert detail["event-id"]


def test_put_events_go_in_batches_of_ten(aws: None, monkeypatch) -> None:
    calls: list[int] = []

    class Recorder:
        def put_events(self, Entries: list) -> dict:
            calls.append(len(Entries))
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"}] * len(Entries)}

    monkeypatch.setattr(bridge, "client", lambda: Recorder())
    now = datetime.now(UTC)
    events = [schema.Event(f"e{i}", schema.PUSHED, REPO, now, "sha256:x") for i in range(23)]
    assert bridge.publish(events) == 3
    assert calls == [10, 10, 3]


def test_refused_entries_are_sent_again_then_fail_the_batch(aws: None, monkeypatch) -> None:
    class Refusing:
        def put_events(self, Entries: list) -> dict:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}

    monkeypatch.setattr(bridge, "client", lambda: Refusing())
    event = schema.Event("e", schema.PUSHED, REPO, datetime.now(UTC), "sha256:x")
    with pytest.raises(bridge.PublishFailed):
        bridge.publish([event])


def test_no_eventbridge_when_the_bus_is_none(aws: None, settings, monkeypatch) -> None:
    settings(event_bus="none")
    monkeypatch.setattr(bridge, "client", lambda: pytest.fail("no call expected"))
    event = schema.Event("e", schema.PUSHED, REPO, datetime.now(UTC), "sha256:x")
    assert bridge.publish([event]) == 0
