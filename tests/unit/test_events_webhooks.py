"""Webhooks: Quay's notification API, signed deliveries through SQS with backoff and a
dead-letter queue, SSRF refusals, and a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from chalicelib.events import audit, deliveries, signing, subscriber, webhooks
from chalicelib.storage import aws
from chalicelib.storage.models import AuditModel
from tests.client import Client
from tests.events_fixtures import Streams
from tests.images import sha256

REPO = "acme/app"
SECRET = "a-webhook-secret-of-some-length"


class Receiver:
    """An HTTP server on loopback that answers with the statuses it is given (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def hooks(client: Client, settings) -> Iterator[Streams]:
    """Streams to drive the subscriber; queues made fresh in this moto account."""
    settings(webhook_backoff_seconds=0, event_bus="none")
    webhooks._queues.cache_clear()
    aws.sqs.cache_clear()
    aws.ssm.cache_clear()
    deliveries._secrets.clear()
    yield Streams()
    webhooks._queues.cache_clear()


def _create(
    client: Client,
    url: str,
    *,
    event: str = "repo_push",
    secret: str | None = SECRET,
    path: str = f"/api/v1/repository/{REPO}/notification/",
) -> dict:
    config = {"url": url} | ({"secret": secret} if secret else {})
    document = {
        "event": event,
        "method": "webhook",
        "config": config,
        "eventConfig": {},
        "title": "ci",
    }
    answer = client.post(path, body=json.dumps(document).encode())
    assert answer.status == 201, answer.body
    return answer.json()


def _push(client: Client, streams: Streams, seed: str, tag: str = "v1", repo: str = REPO) -> bytes:
    body = json.dumps(client.image_document(repo, seed=seed)).encode()
    client.must_push(repo, tag, body)
    subscriber.on_changes(streams.read())
    return body


def _deliveries(client: Client, uuid: str) -> list[dict]:
    answer = client.get(f"/api/v1/repository/{REPO}/notification/{uuid}/deliveries")
    assert answer.status == 200, answer.body
    return answer.json()["deliveries"]


def test_signature_verifies_and_refuses_tampering_and_replays() -> None:
    body, now = b'{"event":"repo_push"}', 1_700_000_000
    header = signing.signature(SECRET, now, body)
    assert header.startswith("v1=")
    assert signing.verify(SECRET, str(now), body, header, now + 10)
    assert not signing.verify(SECRET, str(now), body + b" ", header, now)
    assert not signing.verify("another-secret-entirely", str(now), body, header, now)
    assert not signing.verify(SECRET, str(now), body, header, now + signing.REPLAY_WINDOW + 1)


def test_quay_notification_api_never_returns_the_secret(client: Client, hooks, receiver) -> None:
    created = _create(client, receiver.url)
    assert created["event"] == "repo_push" and created["method"] == "webhook"
    assert created["config"] == {"url": receiver.url, "signed": True}
    assert created["number_of_failures"] == 0 and created["title"] == "ci"
    assert "loopback" in created["warning"]  # local mode says so
    uuid = created["uuid"]
    listed = client.get(f"/api/v1/repository/{REPO}/notification/").json()["notifications"]
    one = client.get(f"/api/v1/repository/{REPO}/notification/{uuid}").json()
    assert [n["uuid"] for n in listed] == [uuid] and one["uuid"] == uuid
    assert SECRET not in json.dumps([listed, one, created])
    stored = boto3.client("ssm").get_parameter(Name=webhooks.parameter_name(uuid))
    assert stored["Parameter"]["Type"] == "SecureString"
    assert client.delete(f"/api/v1/repository/{REPO}/notification/{uuid}").status == 204
    assert client.get(f"/api/v1/repository/{REPO}/notification/{uuid}").status == 404
    with pytest.raises(boto3.client("ssm").exceptions.ParameterNotFound):
        boto3.client("ssm").get_parameter(Name=webhooks.parameter_name(uuid))


def test_bad_notifications_are_refused(client: Client, hooks, receiver) -> None:
    path = f"/api/v1/repository/{REPO}/notification/"
    for document in (
        {"event": "build_failure", "method": "webhook", "config": {"url": receiver.url}},
        {"event": "repo_push", "method": "email", "config": {"url": receiver.url}},
        {"event": "repo_push", "method": "webhook", "config": {"url": "ftp://x"}},
        {"event": "repo_push", "config": {"url": receiver.url, "secret": "short"}},
        {"event": "repo_push", "config": {}},
    ):
        answer = client.post(path, body=json.dumps(document).encode())
        assert answer.status == 400, document
    assert client.post(path, body=b"not json").status == 400


def test_a_push_delivers_a_signed_webhook(client: Client, hooks, receiver) -> None:
    uuid = _create(client, receiver.url)["uuid"]
    body = _push(client, hooks, "signed")
    assert deliveries.poll() == 1
    ((headers, raw),) = receiver.requests
    assert signing.verify(
        SECRET, headers[signing.TIMESTAMP], raw, headers[signing.SIGNATURE], time.time()
    )
    event = json.loads(raw)
    assert (event["event"], event["repository"], event["tag"]) == ("repo_push", REPO, "v1")
    assert event["digest"] == sha256(body) and event["updated_tags"] == ["v1"]
    assert headers[signing.ID] == event["id"] and headers[signing.EVENT] == "repo_push"
    (delivery,) = _deliveries(client, uuid)
    assert (delivery["status"], delivery["attempts"], delivery["http_status"]) == (
        "delivered",
        1,
        200,
    )


def test_an_unsigned_webhook_has_no_signature(client: Client, hooks, receiver) -> None:
    _create(client, receiver.url, secret=None)
    _push(client, hooks, "unsigned")
    deliveries.poll()
    ((headers, _),) = receiver.requests
    assert signing.SIGNATURE not in headers and signing.ID in headers


def test_a_500_is_retried_with_backoff(client: Client, hooks, receiver, settings) -> None:
    uuid = _create(client, receiver.url)["uuid"]
    receiver.statuses = [500]
    _push(client, hooks, "retry")
    deliveries.poll()
    (delivery,) = _deliveries(client, uuid)
    assert (delivery["status"], delivery["http_status"]) == ("retrying", 500)
    deliveries.poll()  # backoff 0 here: due at once
    assert len(receiver.requests) == 2
    assert receiver.events()[0]["id"] == receiver.events()[1]["id"]  # the same event again
    (delivery,) = _deliveries(client, uuid)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)


def test_backoff_doubles_up_to_sqs_limit(settings) -> None:
    settings(webhook_backoff_seconds=30)
    assert [deliveries.delay(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert deliveries.delay(30) == webhooks.MAX_DELAY


def test_a_retried_message_waits_for_its_backoff(client: Client, hooks, receiver, settings) -> None:
    settings(webhook_backoff_seconds=60)
    _create(client, receiver.url)
    receiver.statuses = [503]
    _push(client, hooks, "waits")
    deliveries.poll()
    assert deliveries.poll() == 0  # invisible for a minute
    assert len(receiver.requests) == 1


def test_dead_letter_after_the_last_attempt(client: Client, hooks, receiver, settings) -> None:
    settings(webhook_attempts=2)
    uuid = _create(client, receiver.url)["uuid"]
    receiver.statuses = [500, 500, 500]
    _push(client, hooks, "dead")
    deliveries.poll()
    deliveries.poll()
    assert len(receiver.requests) == 2 and deliveries.poll() == 0
    (delivery,) = _deliveries(client, uuid)
    assert (delivery["status"], delivery["attempts"]) == ("dead", 2)
    sqs = boto3.client("sqs")
    dead = sqs.receive_message(QueueUrl=webhooks.dead_letter_url())["Messages"]
    assert json.loads(dead[0]["Body"])["event"]["event"] == "repo_push"
    one = client.get(f"/api/v1/repository/{REPO}/notification/{uuid}").json()
    assert one["number_of_failures"] == 1
    assert client.post(f"/api/v1/repository/{REPO}/notification/{uuid}").status == 204
    assert (
        client.get(f"/api/v1/repository/{REPO}/notification/{uuid}").json()["number_of_failures"]
        == 0
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fe80::1]/hook",
        "http://user:pass@example.com/hook",
    ],
)
def test_ssrf_refusals_on_aws_stages(client: Client, hooks, settings, url: str) -> None:
    settings(webhook_loopback=False)
    document = {"event": "repo_push", "method": "webhook", "config": {"url": url}}
    answer = client.post(
        f"/api/v1/repository/{REPO}/notification/", body=json.dumps(document).encode()
    )
    assert answer.status == 400, answer.body
    assert "refused" in answer.json()["errors"][0]["message"]


def test_private_addresses_are_refused_at_delivery_too(
    client: Client, hooks, receiver, settings
) -> None:
    uuid = _create(client, receiver.url)["uuid"]
    settings(webhook_loopback=False)  # as if DNS now answered with a loopback address
    _push(client, hooks, "rebound")
    deliveries.poll()
    assert receiver.requests == []
    (delivery,) = _deliveries(client, uuid)
    assert delivery["status"] == "dead" and "loopback" in delivery["error"]


def test_loopback_is_never_allowed_in_lambda() -> None:
    from chalicelib import config

    loaded = config.load(
        {"AWS_LAMBDA_FUNCTION_NAME": "stratus-dev", "STRATUS_WEBHOOK_LOOPBACK": "1"}
    )
    assert loaded.webhook_loopback is False
    assert config.load({}).webhook_loopback is True


def test_event_filter_and_namespace_webhooks(client: Client, hooks, receiver) -> None:
    _create(client, receiver.url, event="tag_deleted")
    _create(
        client, receiver.url, path="/api/v1/organization/acme/notification/", event="tag_created"
    )
    _push(client, hooks, "one", repo=REPO)
    _push(client, hooks, "two", repo="acme/other")
    client.delete(f"/v2/{REPO}/manifests/v1")
    subscriber.on_changes(hooks.read())
    while deliveries.poll():
        pass
    got = sorted((e["event"], e["repository"]) for e in receiver.events())
    assert got == [("tag_created", REPO), ("tag_created", "acme/other"), ("tag_deleted", REPO)]


def test_test_delivery_action(client: Client, hooks, receiver) -> None:
    uuid = _create(client, receiver.url)["uuid"]
    answer = client.post(f"/api/v1/repository/{REPO}/notification/{uuid}/test")
    assert answer.status == 200
    deliveries.poll()
    (event,) = receiver.events()
    assert (event["event"], event["for_event"], event["id"]) == (
        "test",
        "repo_push",
        answer.json()["event_id"],
    )
    assert _deliveries(client, uuid)[0]["status"] == "delivered"


def test_webhook_changes_are_audited_without_the_secret(client: Client, hooks, receiver) -> None:
    uuid = _create(client, receiver.url)["uuid"]
    client.delete(f"/api/v1/repository/{REPO}/notification/{uuid}")
    rows = [row for row in AuditModel.scan() if "notification" in row.kind]
    assert sorted(row.kind for row in rows) == ["add_repo_notification", "delete_repo_notification"]
    assert SECRET not in json.dumps([r.attribute_values for r in AuditModel.scan()], default=str)
    assert audit.KINDS["notifications.repository_notifications"] == "add_repo_notification"


@pytest.mark.usefixtures("auth")
@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 401), ("bob", 403), ("alice", 201), ("root", 201)]
)
def test_notification_permission_matrix(
    client: Client, hooks, receiver, who: str, status: int
) -> None:
    from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER

    root = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        root.post(
            "/api/v1/users",
            body=json.dumps({"username": name, "password": "password-1234"}).encode(),
        )
    root.post(
        "/api/v1/organizations", body=json.dumps({"name": "acme", "owners": ["alice"]}).encode()
    )
    root.put(f"/api/v1/repository/{REPO}/permissions/user/bob", body=b'{"role": "write"}')
    caller = {
        "anonymous": client,
        "bob": client.as_basic("bob", "password-1234"),
        "alice": client.as_basic("alice", "password-1234"),
        "root": root,
    }[who]
    document = json.dumps({"event": "repo_push", "config": {"url": receiver.url}}).encode()
    for path in (
        f"/api/v1/repository/{REPO}/notification/",
        "/api/v1/organization/acme/notification/",
    ):
        assert caller.post(path, body=document).status == status
        assert caller.get(path).status == (200 if status == 201 else status)


def test_the_queue_lambda_settles_or_leaves_each_message(client: Client, hooks, receiver) -> None:
    """As Chalice hands them: delivered messages are deleted, a failed one stays (raise)."""
    from types import SimpleNamespace

    _create(client, receiver.url)
    receiver.statuses = [502]
    _push(client, hooks, "lambda-a", tag="a")
    _push(client, hooks, "lambda-b", tag="b")
    sqs = boto3.client("sqs")
    answer = sqs.receive_message(
        QueueUrl=webhooks.queue_url(),
        MaxNumberOfMessages=10,
        AttributeNames=["ApproximateReceiveCount"],
    )
    records = [
        SimpleNamespace(
            body=m["Body"], receipt_handle=m["ReceiptHandle"], attributes=m["Attributes"]
        )
        for m in answer["Messages"]
    ]
    assert len(records) == 2
    with pytest.raises(deliveries.RetryLater):
        deliveries.handle_sqs_event(records)
    assert len(receiver.requests) == 2
    assert deliveries.poll() == 1  # only the failed one came back (backoff 0 here)
    assert len(receiver.requests) == 3
