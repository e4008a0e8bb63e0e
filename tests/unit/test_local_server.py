"""The local server keeps AWS's limits when a stage sets them (request time, body size)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chalicelib.local.server import make_server


class SlowApp:
    """Stands in for the Chalice app: answers after `delay` seconds, records completion."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.finished = threading.Event()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(self.delay)
        self.finished.set()
        return {"statusCode": 200, "headers": {}, "body": "{}"}


@pytest.fixture
def serve() -> Iterator[Any]:
    servers = []

    def start(app: Any) -> str:
        server = make_server(app, "127.0.0.1", 0, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_request_past_the_timeout_gets_api_gateways_504(serve, settings) -> None:
    settings(request_timeout_seconds=0.5)
    app = SlowApp(delay=1.5)
    answer = requests.get(serve(app) + "/v2/", timeout=10)
    assert answer.status_code == 504
    assert answer.json() == {"message": "Endpoint request timed out"}
    assert not app.finished.is_set()
    assert app.finished.wait(5)  # the handler runs on, as a Lambda function does


def test_without_a_timeout_slow_requests_complete(serve, settings) -> None:
    settings(request_timeout_seconds=0)
    answer = requests.get(serve(SlowApp(delay=0.6)) + "/v2/", timeout=10)
    assert answer.status_code == 200
