"""Local mode delivers webhooks: `make run` consumes the tables' streams and the webhook
queue in-process, so a receiver on the developer's machine sees a push within seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import oras.client
import pytest
import requests

from chalicelib.events import signing
from tests.integration.conftest import Registry
from tests.unit.test_events_webhooks import Receiver

pytestmark = pytest.mark.integration
SECRET = "a-local-webhook-secret-1234"


def test_a_local_push_fires_a_signed_webhook_within_seconds(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    try:
        created = requests.post(
            f"{registry.url}/api/v1/repository/events/local/notification/",
            json={
                "event": "repo_push",
                "method": "webhook",
                "config": {"url": receiver.url, "secret": SECRET},
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        assert "loopback" in created.json()["warning"]
        monkeypatch.chdir(tmp_path)
        Path("notes.txt").write_text("pushed")
        pushed_at = time.monotonic()
        client = oras.client.OrasClient(hostname=registry.host, insecure=True)
        client.push(target=f"{registry.host}/events/local:v1", files=["notes.txt:text/plain"])
        while not receiver.requests and time.monotonic() - pushed_at < 20:
            time.sleep(0.2)
        waited = time.monotonic() - pushed_at
        assert receiver.requests, "no delivery within 20 s"
        headers, body = receiver.requests[0]
        event = json.loads(body)
        assert (event["event"], event["repository"], event["tag"]) == (
            "repo_push",
            "events/local",
            "v1",
        )
        assert signing.verify(
            SECRET, headers[signing.TIMESTAMP], body, headers[signing.SIGNATURE], time.time()
        )
        assert waited < 10
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
