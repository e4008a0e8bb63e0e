"""The Docker Engine API, just enough for `docker-daemon:` sources: `GET /images/{name}/get`
streams a `docker save` tar. Spoken over the unix socket (or tcp://) that DOCKER_HOST names,
with the standard library only, so the CLI needs no docker SDK."""

from __future__ import annotations

import http.client
import os
import socket
from typing import BinaryIO, cast
from urllib.parse import quote, urlsplit

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the engine's default transport)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def connection(docker_host: str | None = None, timeout: float = 300) -> http.client.HTTPConnection:
    """A connection to the engine DOCKER_HOST names (unix:// or tcp://), else the socket."""
    host = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    parts = urlsplit(host)
    if parts.scheme == "unix":
        return _UnixConnection(parts.path, timeout)
    if parts.scheme in ("tcp", "http"):
        return http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 2375)
    raise ValueError(f"DOCKER_HOST {host!r}: only unix:// and tcp:// (without TLS) are spoken")


def export(image: str, docker_host: str | None = None) -> BinaryIO:
    """The engine's `docker save` tar of `image`, as a stream (closing it ends the request)."""
    from .sources import SourceError

    try:
        conn = connection(docker_host)
        conn.request("GET", f"/images/{quote(image, safe='')}/get")
        answer = conn.getresponse()
    except (OSError, ValueError) as error:
        raise SourceError(f"docker-daemon: cannot reach the Docker engine: {error}") from error
    if answer.status != 200:
        detail = answer.read().decode(errors="replace").strip()
        conn.close()
        raise SourceError(f"docker-daemon:{image}: engine answered {answer.status}: {detail}")
    return cast(BinaryIO, answer)
