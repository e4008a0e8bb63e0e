"""The local server answers every request in JSON, as API Gateway would, and takes bursts."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.local.server import make_server

Serve = Callable[..., tuple[str, int]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers = []

    def start(app: Any, *, serving: bool = True) -> tuple[str, int]:
        server = make_server(app, "127.0.0.1", 0, quiet=True)
        servers.append(server)
        if serving:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library tidying them) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return status, headers, body[:length]


def _ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


@pytest.fixture
def registry(aws: None, serve: Serve) -> int:
    from app import app

    return serve(app)[1]


def test_options_is_answered_in_json_by_the_registry(registry: int) -> None:
    status, headers, body = _raw(
        registry, b"OPTIONS /v2/library/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status != 501
    assert headers["content-type"] == "application/json"
    assert json.loads(body)


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "MKCOL"])
def test_method_without_a_route_gets_api_gateways_json_403(registry: int, method: str) -> None:
    status, headers, body = _raw(
        registry, f"{method} /v2/library/a/manifests/latest HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    assert status == 403
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1e3"])
def test_malformed_content_length_gets_an_oci_json_400(registry: int, length: str) -> None:
    request = f"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}"
    status, headers, body = _raw(registry, request.encode())
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"


def test_malformed_chunk_size_gets_an_oci_json_400(registry: int) -> None:
    request = (
        b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    )
    status, headers, body = _raw(registry, request)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["errors"][0]["code"] == "SIZE_INVALID"


def test_malformed_request_line_gets_json_not_html(registry: int) -> None:
    status, headers, body = _raw(registry, b"GARBAGE\r\n\r\n")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert "message" in json.loads(body)


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": 200, "headers": {}, "body": b"raw bytes"},
        {"headers": {}, "body": "no status"},
        {"statusCode": 200, "headers": {"X-Bad": "a\r\nInjected: 1"}, "body": ""},
        None,
    ],
    ids=["bytes-body", "missing-status", "header-with-newline", "none"],
)
def test_answer_api_gateway_cannot_send_becomes_a_json_502(serve: Serve, result: Any) -> None:
    _, port = serve(lambda event, context: result)
    status, headers, body = _raw(port, b"GET /v2/a/tags/list HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 502
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Internal server error"}


def test_handler_exception_becomes_a_json_502_and_the_connection_lives(serve: Serve) -> None:
    def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event["path"].endswith("/boom"):
            raise RuntimeError("handler failed")
        return _ok(event, context)

    _, port = serve(fail)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /v2/a/boom HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock)[0] == 502
        sock.sendall(b"GET /v2/a/fine HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock)[0] == 200


def test_connections_are_kept_alive_between_requests(serve: Serve) -> None:
    _, port = serve(_ok)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"GET /v2/a/tags/list HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = _read_response(sock)
            assert status == 200
            assert headers.get("connection") != "close"


def test_fifty_simultaneous_clients_are_queued_not_refused(serve: Serve) -> None:
    """Connect all fifty while the server is not yet accepting: the backlog must hold them."""
    server, port = serve(_ok, serving=False)
    with ThreadPoolExecutor(50) as pool:
        sockets = list(
            pool.map(lambda _: socket.create_connection(("127.0.0.1", port), timeout=2), range(50))
        )
        try:
            threading.Thread(target=server.serve_forever, daemon=True).start()

            def ask(sock: socket.socket) -> int:
                sock.sendall(b"GET /v2/a/tags/list HTTP/1.1\r\nHost: x\r\n\r\n")
                return _read_response(sock)[0]

            assert list(pool.map(ask, sockets)) == [200] * 50
        finally:
            for sock in sockets:
                sock.close()
