"""`stratus push` in pieces: retries, credentials, progress output, names, compression."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from chalicelib.local.stack import free_port
from chalicelib.push import credentials, sources
from chalicelib.push.cli import split_destination
from chalicelib.push.progress import Progress
from chalicelib.push.streams import Gzipped
from chalicelib.push.transport import Backoff, NetworkError, send

FAST = Backoff(attempts=4, first=0.01)


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[int]]]:
    """A server that answers 503 twice, then 200; and the statuses it gave."""
    given: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status = 503 if len(given) < 2 else 200
            given.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/part", given
    server.shutdown()


def test_transient_errors_are_retried_with_backoff(flaky: tuple[str, list[int]]) -> None:
    url, given = flaky
    answer = send(requests.Session(), FAST, "PUT", url, data=b"part", timeout=5)
    assert answer.status_code == 200
    assert given == [503, 503, 200]


def test_an_unreachable_registry_fails_after_the_last_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/v2/"
    with pytest.raises(NetworkError, match="/v2/"):
        send(requests.Session(), FAST, "GET", url, timeout=5)


def test_the_last_503_is_returned_once_retries_are_spent(flaky: tuple[str, list[int]]) -> None:
    url, given = flaky
    answer = send(requests.Session(), Backoff(attempts=2, first=0.01), "PUT", url, data=b"x")
    assert answer.status_code == 503 and given == [503, 503]


@pytest.fixture
def no_logins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("STRATUS_USER", "STRATUS_PASSWORD", "REGISTRY_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    (tmp_path / "docker").mkdir()
    return tmp_path


def _docker_login(home: Path, key: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (home / "docker" / "config.json").write_text(json.dumps({"auths": {key: {"auth": auth}}}))


def test_docker_logins_are_found_under_any_spelling_of_the_host(no_logins: Path) -> None:
    _docker_login(no_logins, "https://registry.example.com", "ci", "s3cret")
    found = credentials.find("registry.example.com")
    assert found is not None and (found.username, found.password) == ("ci", "s3cret")


def test_creds_win_over_the_environment_and_auth_files(
    no_logins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _docker_login(no_logins, "r.example", "file", "x")
    monkeypatch.setenv("STRATUS_USER", "env")
    assert credentials.find("r.example", "flag:pw").username == "flag"  # type: ignore[union-attr]
    assert credentials.find("r.example").username == "env"  # type: ignore[union-attr]


def test_no_login_for_the_host_means_anonymous(no_logins: Path) -> None:
    _docker_login(no_logins, "other.example", "u", "p")
    assert credentials.find("r.example") is None


def test_a_missing_credential_helper_is_named(no_logins: Path) -> None:
    config = {"credsStore": "no-such-helper-here"}
    (no_logins / "docker" / "config.json").write_text(json.dumps(config))
    with pytest.raises(credentials.CredentialError, match="docker-credential-no-such-helper"):
        credentials.find("r.example")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_ci_is_plain_lines_without_carriage_returns() -> None:
    log = io.StringIO()
    progress = Progress.choose(False, log)
    progress.interval = 0
    progress.add("sha256:" + "a" * 64, 10)
    progress.advance("sha256:" + "a" * 64, 5)
    progress.finish("sha256:" + "a" * 64, "pushed")
    text = log.getvalue()
    assert progress.mode == "plain"
    assert "\r" not in text and "\x1b" not in text
    assert "aaaaaaaaaaaa: pushed" in text and "0.0 of 0.0 MB done" in text


def test_progress_on_a_terminal_draws_a_bar_per_layer_and_a_total() -> None:
    screen = _Terminal()
    progress = Progress.choose(False, screen)
    for digest in ("sha256:" + "a" * 64, "sha256:" + "b" * 64):
        progress.add(digest, 100)
    progress.finish("sha256:" + "a" * 64, "pushed")
    last = screen.getvalue().split("\x1b[2K")[-3:]
    assert [line.split()[0] for line in last] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "total"]
    assert "100.0%" in last[0] and " 50.0%" in last[2]


def test_quiet_progress_writes_nothing() -> None:
    log = _Terminal()
    progress = Progress.choose(True, log)
    progress.add("sha256:" + "a" * 64, 10)
    progress.finish("sha256:" + "a" * 64, "pushed")
    progress.note("hello")
    assert log.getvalue() == ""


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("r.example/app", ("https://r.example", "app", "latest")),
        ("127.0.0.1:5000/acme/app:v1", ("http://127.0.0.1:5000", "acme/app", "v1")),
        ("docker://r.example:443/a/b:1.2", ("https://r.example:443", "a/b", "1.2")),
    ],
)
def test_destinations_are_named_as_docker_names_them(
    destination: str, expected: tuple[str, str, str]
) -> None:
    plain = destination.startswith("127.")
    assert split_destination(destination, plain) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("oci:/tmp/x:v1", ("oci", "/tmp/x:v1")),
        ("docker-daemon:alpine:3", ("docker-daemon", "alpine:3")),
        ("./layout", ("path", "./layout")),
        ("c:/odd:path", ("path", "c:/odd:path")),
    ],
)
def test_sources_are_named_as_skopeo_names_them(name: str, expected: tuple[str, str]) -> None:
    assert sources.split_reference(name) == expected


def test_on_the_fly_gzip_is_reproducible_and_lossless() -> None:
    data = b"layer bytes " * 300_000
    first = Gzipped(io.BytesIO(data)).read()
    second = Gzipped(io.BytesIO(data)).read()
    assert first == second and gzip.decompress(first) == data and len(first) < len(data)


class _GatewayLosesAnswers(BaseHTTPRequestHandler):
    """A registry behind a gateway that answers 504 to every first PATCH of a chunk, after
    the registry took it (as API Gateway does when the function outlives 29 s)."""

    received = bytearray()
    patches: list[int] = []
    done: list[str] = []

    def _answer(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": "0"}.items():
            self.send_header(name, value)
        self.end_headers()

    def do_HEAD(self) -> None:
        self._answer(404, {})

    def do_POST(self) -> None:
        self._answer(202, {"Location": "/v2/app/blobs/uploads/1"})

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        start = int(self.headers["Content-Range"].split("-")[0])
        self.patches.append(start)
        if start != len(self.received):
            self._answer(416, {})
            return
        self.received += body
        self._answer(504, {})  # taken, but the answer is lost

    def do_GET(self) -> None:
        self._answer(204, {"Range": f"0-{len(self.received) - 1}", "Location": self.path})

    def do_PUT(self) -> None:
        self.done.append(self.path)
        self._answer(201, {})

    def log_message(self, *args: object) -> None:
        pass


def test_a_chunk_whose_answer_was_lost_is_not_sent_twice(tmp_path: Path) -> None:
    from chalicelib.push.sources import Blob
    from chalicelib.push.state import Store
    from chalicelib.push.transport import Client
    from chalicelib.push.upload import Pusher

    server = ThreadingHTTPServer(("127.0.0.1", 0), _GatewayLosesAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = bytes(range(256)) * 40
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client = Client(f"http://127.0.0.1:{server.server_address[1]}", "app", None, FAST)
    pusher = Pusher(
        client, Progress("quiet"), Store(tmp_path), direct=False, chunk_size=4096, jobs=1
    )
    pusher.progress.add(digest, len(data))
    try:
        pusher.push_standard(Blob(digest, len(data), lambda: io.BytesIO(data)))
    finally:
        server.shutdown()
    assert bytes(_GatewayLosesAnswers.received) == data
    # Each chunk: sent, 504, retried at the same offset, 416, then the registry's Range.
    assert _GatewayLosesAnswers.patches == [0, 0, 4096, 4096, 8192, 8192]
    assert _GatewayLosesAnswers.done == [f"/v2/app/blobs/uploads/1?digest={digest}"]


def test_progress_rate_counts_only_what_this_run_sent() -> None:
    log = io.StringIO()
    progress = Progress.choose(False, log)
    progress.interval = 0
    progress.add("sha256:" + "a" * 64, 3_000_000)
    progress.add("sha256:" + "b" * 64, 5_000_000)
    progress.advance("sha256:" + "a" * 64, 2_000_000, sent=False)  # sent before a restart
    progress.advance("sha256:" + "a" * 64, 1_000_000)
    progress.finish("sha256:" + "b" * 64, "mounted")
    assert progress.sent == 1_000_000
    assert log.getvalue().splitlines()[-1].startswith("8.0 of 8.0 MB done")


def test_an_unreadable_source_exits_3_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.push.cli import main

    (tmp_path / "oci-layout").write_text("{}")
    (tmp_path / "index.json").write_text('{"manifests": 5}')
    unreachable = f"127.0.0.1:{free_port()}/x/y:v1"
    assert main(["--plain-http", f"oci:{tmp_path}", unreachable]) == 3
    assert "unreadable" in capsys.readouterr().err


def test_an_s3_request_timeout_on_a_part_is_retried(tmp_path: Path) -> None:
    from chalicelib.push.state import Store
    from chalicelib.push.transport import Client
    from chalicelib.push.upload import Pusher

    statuses: list[int] = []

    class SlowS3(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            statuses.append(400 if not statuses else 200)
            body = b"<Error><Code>RequestTimeout</Code></Error>" if statuses[-1] == 400 else b""
            self.send_response(statuses[-1])
            self.send_header("ETag", '"abc"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pusher = Pusher(Client("http://unused", "app", None, FAST), Progress("quiet"), Store(tmp_path))
    try:
        answer = pusher._put_part(f"http://127.0.0.1:{server.server_address[1]}/p", b"x" * 10)
    finally:
        server.shutdown()
    assert (answer.status_code, statuses) == (200, [400, 200])


def test_a_rerun_after_a_kill_during_verification_waits_instead_of_resending(
    tmp_path: Path,
) -> None:
    from chalicelib.push.sources import Blob
    from chalicelib.push.state import Store, Upload
    from chalicelib.push.transport import Client
    from chalicelib.push.upload import Pusher

    seen: list[str] = []

    class Verifying(BaseHTTPRequestHandler):
        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            self._answer(202 if len(seen) < 3 else 201)  # verifying, verifying, done

        def do_POST(self) -> None:
            seen.append("POST")
            self._answer(500)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Verifying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    data = b"a blob whose completion the killed run had sent"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    store = Store(tmp_path)
    location = "/v2/app/_stratus/direct/uploads/1"
    store.save(base, "app", digest, Upload(location, 5 * 2**20, 1, len(data), {1: '"e"'}))
    pusher = Pusher(Client(base, "app", None, FAST), Progress("quiet"), store, direct=True)
    pusher.progress.add(digest, len(data))
    try:
        pusher.push_direct(Blob(digest, len(data), lambda: io.BytesIO(data)))
    finally:
        server.shutdown()
    assert seen == [f"GET {location}?parts=1-1", f"GET {location}", f"GET {location}"]
    assert store.load(base, "app", digest) is None
