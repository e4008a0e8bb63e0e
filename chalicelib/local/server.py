"""A threaded HTTP server that hands every request to the Chalice app as a Lambda event.

Not `chalice local`: that server cannot match `{proxy+}`, reads chunked bodies as empty,
keeps one line of a repeated header and doubles Content-Length on HEAD. This one is thin:
it reads the body (plain or chunked), builds the proxy event, and writes back the answer.
Limits that AWS enforces before our code runs are enforced here the same way.
"""

from __future__ import annotations

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


class _TooLarge(Exception):
    pass


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
            self.close_connection = True
            self._write(events.HttpResponse(400, [("Content-Length", "0")], b""))
            return
        self._write(self._invoke(body))

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
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
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

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            sys.stderr.write("stratus %s\n" % (format % args))


def make_server(app: Any, host: str, port: int, *, quiet: bool = False) -> ThreadingHTTPServer:
    handler = type("Handler", (RegistryHandler,), {"app": app, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
