"""A threaded HTTP server that hands every request to the Chalice app as a Lambda event.

Not `chalice local`: that server cannot match `{proxy+}`, reads chunked bodies as empty,
keeps one line of a repeated header and doubles Content-Length on HEAD. This one is thin:
it reads the body (plain or chunked), builds the proxy event, and writes back the answer.
Limits that AWS enforces before our code runs are enforced here the same way, and what
API Gateway would answer in JSON (a method with no route, a failed function) is answered in
the same JSON here: no answer from this server is HTML, and no request goes unanswered.
"""

from __future__ import annotations

import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib import config
from chalicelib.local import events

logger = logging.getLogger("stratus.local")

# Where handlers run when a request timeout is set: like Lambda, a handler outlives the
# gateway's answer.
_LAMBDAS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="lambda")


# Connections queued before accept(): bursts of clients must not be reset (the default is 5).
LISTEN_BACKLOG = 1024
# An idle keep-alive connection is closed after this long, freeing its thread.
KEEP_ALIVE_SECONDS = 120


class _TooLarge(Exception):
    pass


def oci_error(status: int, code: str, message: str) -> events.HttpResponse:
    """A distribution-spec error body, for requests refused before the app sees them."""
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
    return events.HttpResponse(status, [("Content-Type", "application/json")], body.encode())


def _sendable(response: events.HttpResponse) -> bool:
    """Whether the app's answer can go on the wire as it is (API Gateway checks too)."""
    if not 100 <= response.status <= 599:
        return False
    return all(
        name and not any(c in name + value for c in "\r\n\0") for name, value in response.headers
    )


def _read_chunked(stream: Any, limit: int) -> bytes:
    """Decode a chunked body; past `limit` keep reading but drop the bytes."""
    body = bytearray()
    over = False
    while True:
        size = int(stream.readline(1024).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            if over:
                raise _TooLarge
            return bytes(body)
        over = over or bool(limit and len(body) + size > limit)
        if over:
            _discard(stream, size)
        else:
            body += stream.read(size)
        stream.readline(1024)  # CRLF after each chunk


def _discard(stream: Any, length: int) -> None:
    while length > 0:
        read = stream.read(min(length, 1 << 16))
        if not read:
            return
        length -= len(read)


class RegistryHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stratus-local"
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK holds
    # the body back ~40 ms on every response that has one.
    disable_nagle_algorithm = True
    timeout = KEEP_ALIVE_SECONDS
    app: Any = None
    quiet = False

    def _handle(self) -> None:
        limit = config.settings.max_request_bytes
        try:
            body = self._read_body(limit)
        except _TooLarge:
            # Like API Gateway, read the whole request, then refuse it; answering early
            # would show clients a broken pipe instead of the 413.
            self._write(self._too_large(limit))
            return
        except ValueError:
            # The body's end is unknown, so the connection cannot carry another request.
            self.close_connection = True
            self._write(oci_error(400, "SIZE_INVALID", "malformed Content-Length or chunk size"))
            return
        self._write(self._answer(body))

    def _answer(self, body: bytes) -> events.HttpResponse:
        """The app's answer, or API Gateway's 502 when the app fails or answers something
        that cannot be sent: never a dropped connection."""
        try:
            response = self._invoke(body)
        except Exception:
            logger.exception("%s %s failed", self.command, self.path)
            return events.bad_gateway()
        if not _sendable(response):
            logger.error("%s %s: unsendable response %r", self.command, self.path, response)
            return events.bad_gateway()
        return response

    def _invoke(self, body: bytes) -> events.HttpResponse:
        """Run the app; past the stage's timeout answer as API Gateway does (504), while
        the handler runs on to its end, as the Lambda function would."""
        headers = list(self.headers.items())
        call = (self.app, self.command, self.path, headers, body, self.client_address[0])
        timeout = config.settings.request_timeout_seconds
        if not timeout:
            return events.invoke(*call)
        future = _LAMBDAS.submit(events.invoke, *call)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            return events.gateway_timeout()

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return _read_chunked(self.rfile, limit)
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():  # also refuses "-1", "+5" and "1e3", which int() takes
            raise ValueError(f"malformed Content-Length {declared!r}")
        length = int(declared)
        if limit and length > limit:
            _discard(self.rfile, length)
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _too_large(self, limit: int) -> events.HttpResponse:
        from chalicelib.endpoints.routes import body_too_large

        rendered = body_too_large(None, limit)
        return events.HttpResponse(
            rendered.status_code,
            [(k, str(v)) for k, v in rendered.headers.items()],
            rendered.body.encode("utf-8"),
        )

    def _write(self, response: events.HttpResponse) -> None:
        self.send_response(response.status)
        has_length = False
        for name, value in response.headers:
            if name.lower() == "content-length":
                if has_length:
                    continue
                has_length = True
                if self.command != "HEAD":
                    value = str(len(response.body))
            self.send_header(name, value)
        if not has_length:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def __getattr__(self, name: str) -> Any:
        """Every method goes to the app's routes (`do_OPTIONS`, `do_PROPFIND`, ...): where
        it has none, the answer is API Gateway's JSON 403, not http.server's HTML 501."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, oversized headers), in JSON."""
        self.close_connection = True
        # An unparsable request line leaves http.server assuming HTTP/0.9 (no status line).
        self.request_version = "HTTP/1.1"
        reason = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"message": reason}).encode()
        self.send_response(code, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            sys.stderr.write("stratus %s\n" % (format % args))


class RegistryServer(ThreadingHTTPServer):
    """A thread per connection (keep-alive connections each hold one, so a fixed pool would
    starve the next client) and a deep accept queue, so a burst waits instead of being reset."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def make_server(app: Any, host: str, port: int, *, quiet: bool = False) -> RegistryServer:
    handler = type("Handler", (RegistryHandler,), {"app": staticmethod(app), "quiet": quiet})
    return RegistryServer((host, port), handler)
