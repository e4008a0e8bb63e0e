"""An interrupted `stratus push` resumes without resending finished parts.

The registry runs with API Gateway's body limit (`STRATUS_MAX_REQUEST_BYTES=4500000`) on an
S3 stand-in (moto) in this process, whose every UploadPart request is counted as it arrives:
the server's own record of what the client sent, not the client's word. A push of a
multi-layer image is killed (SIGKILL) once some parts are in, then run again.

At 40 MB (small parts, slowed, so the kill lands early) and at 1 GB (about 30 s). And the
same for the standard chunked upload (a registry without the extension), counted in its
access log.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from moto.server import ThreadedMotoServer

from chalicelib.local.stack import free_port
from tests.images import generated_layout
from tests.integration.conftest import ROOT, Registry, _start, _stop
from tests.integration.push_helpers import pull_layout, stratus_push

pytestmark = pytest.mark.integration

MB = 1000 * 1000
MIB = 1024 * 1024


@dataclass
class PartLog:
    """UploadPart requests seen by the S3 stand-in, by (registry upload id, part number)."""

    started: Counter[tuple[str, int]] = field(default_factory=Counter)
    finished: Counter[tuple[str, int]] = field(default_factory=Counter)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if environ["REQUEST_METHOD"] != "PUT" or "partNumber" not in query:
                return app(environ, start_response)
            # The object key is uploads/<the registry's upload id>/data.
            upload_id = environ["PATH_INFO"].rstrip("/").split("/")[-2]
            key = (upload_id, int(query["partNumber"][0]))
            with self.lock:
                self.started[key] += 1
            time.sleep(self.delay)  # a slow link, so the kill lands mid-upload
            answer = list(app(environ, start_response))
            with self.lock:
                self.finished[key] += 1
            return answer

        return counting


class CountingMoto(ThreadedMotoServer):
    """moto's server with every UploadPart counted (and slowed) on its way in."""

    def __init__(self, port: int, log: PartLog) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.log = log

    def _server_entry(self) -> None:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        app = self.log.wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, threaded=True)
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, PartLog]]:
    """A registry with the stage's 4.5 MB body limit, on an S3 that counts parts."""
    from chalicelib.local import moto_patches

    moto_patches.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    log = PartLog()
    port = free_port()
    moto = CountingMoto(port, log)
    moto.start()
    started = _start(
        tmp_path_factory.mktemp("counted"),
        "counted",
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "STRATUS_MAX_REQUEST_BYTES": "4500000",
        },
    )
    yield started, log
    _stop(started)
    moto.stop()


def kept_uploads(state: Path) -> list[dict[str, Any]]:
    """The client's records of uploads in progress."""
    found = []
    for kept in state.glob("*.json"):
        try:
            found.append(json.loads(kept.read_text()))
        except (OSError, ValueError):
            continue  # removed (its blob is done) since the listing
    return found


def finished_parts(state: Path) -> set[tuple[str, int]]:
    """(upload id, part) of every part the client had recorded as sent."""
    return {
        (doc["location"].rstrip("/").rsplit("/", 1)[1], int(number))
        for doc in kept_uploads(state)
        for number in doc["etags"]
    }


def midway(state: Path, at_least: int) -> bool:
    """Whether some blob has `at_least` parts sent and more to go: the moment to kill."""
    return any(at_least <= len(doc["etags"]) < doc["part_count"] for doc in kept_uploads(state))


def s3_upload_ids(log: PartLog) -> set[str]:
    return {upload for upload, _ in log.started}


CASES = [
    pytest.param([20 * MB, 12 * MB, 8 * MB], 5 * MIB, 2, 0.15, id="40MB"),
    pytest.param([600 * MB, 300 * MB, 100 * MB], 16 * MIB, 10, 0.0, id="1GB"),
]


@pytest.mark.parametrize(("layers", "part_size", "kill_after", "delay"), CASES)
def test_push_resumes_without_resending_finished_parts(
    counted: tuple[Registry, PartLog],
    tmp_path: Path,
    layers: list[int],
    part_size: int,
    kill_after: int,
    delay: float,
) -> None:
    registry, log = counted
    log.delay = delay
    layout, manifest = generated_layout(tmp_path / "layout", layers)
    state = tmp_path / "state"
    destination = f"{registry.host}/resume/app{len(layers)}x{part_size}:v1"
    command = [str(ROOT / "bin" / "stratus"), "push", "--plain-http", "--quiet"]
    command += ["--jobs", "2", "--part-size", str(part_size), f"oci:{layout}:v1", destination]
    env = {**os.environ, "STRATUS_PUSH_STATE": str(state)}
    before = set(log.started)

    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not midway(state, kill_after) and first.poll() is None:
        assert time.monotonic() < deadline, "the push never got going"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the push finished before it could be killed"
    sent_before_kill = finished_parts(state)
    counts_at_kill = Counter(log.started)
    assert len(sent_before_kill) >= kill_after
    resumed = {upload for upload, _ in sent_before_kill}

    second = stratus_push(
        f"oci:{layout}:v1",
        destination,
        "--jobs",
        "2",
        "--part-size",
        str(part_size),
        env={"STRATUS_PUSH_STATE": str(state)},
    )
    assert second.returncode == 0, second.stderr
    assert "already sent" in second.stderr or not second.stderr

    ours = {key: count for key, count in log.started.items() if key not in before}
    for part in sent_before_kill:
        assert ours[part] == 1, f"part {part} was sent again"
    total_parts = 1 + sum(-(-size // part_size) for size in layers)  # the config: 1 part
    assert len(ours) == total_parts  # every part of every blob, in the uploads resumed
    sent_after_kill = {key for key, count in ours.items() if count > counts_at_kill[key]}
    assert {upload for upload, _ in sent_after_kill} & resumed  # a blob finished midway
    assert sum(ours.values()) - total_parts <= 2  # at most the 2 in flight at the kill
    assert list(state.glob("*.json")) == []  # the state of finished uploads is dropped
    repository = destination.split("/", 1)[1].split(":")[0]
    served = requests.get(f"{registry.url}/v2/{repository}/manifests/v1", timeout=30)
    assert served.content == manifest
    pull_layout(registry.host, f"{repository}:v1", tmp_path / "back")  # checks every digest


@pytest.fixture(scope="module")
def logged_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A registry without the extension, with the stage's body limit and its access log on:
    (host, log)."""
    work = tmp_path_factory.mktemp("logged")
    port, log = free_port(), work / "access.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(
        {
            "PORT": str(port),
            "STRATUS_DATA_DIR": str(work / "data"),
            "STRATUS_MAX_REQUEST_BYTES": "4500000",
            "STRATUS_DIRECT_UPLOADS": "0",
        }
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except requests.ConnectionError:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    yield f"127.0.0.1:{port}", log
    process.terminate()
    process.wait(timeout=10)


def test_chunked_push_resumes_at_the_registrys_offset_without_resending_chunks(
    logged_registry: tuple[str, Path], tmp_path: Path
) -> None:
    host, log = logged_registry
    chunk, size = 1024 * 1024, 40 * 1024 * 1024
    layout, manifest = generated_layout(tmp_path / "layout", [size])
    state = tmp_path / "state"
    destination = f"{host}/chunked/resumed:v1"
    options = ["--chunk-size", str(chunk), "--jobs", "1"]
    command = [str(ROOT / "bin" / "stratus"), "push", "--plain-http", "--quiet", *options]
    env = {**os.environ, "STRATUS_PUSH_STATE": str(state)}
    first = subprocess.Popen([*command, f"oci:{layout}:v1", destination], env=env)
    location = ""
    deadline = time.monotonic() + 120
    while first.poll() is None:
        assert time.monotonic() < deadline
        kept = [u for u in kept_uploads(state) if u["kind"] == "chunked"]
        if kept and 4 * chunk <= kept[0]["offset"] < size // 2:
            location = kept[0]["location"]
            first.kill()
        time.sleep(0.01)
    assert first.returncode == -signal.SIGKILL, "the push finished before it could be killed"

    second = stratus_push(
        f"oci:{layout}:v1", destination, *options, env={"STRATUS_PUSH_STATE": str(state)}
    )
    assert second.returncode == 0, second.stderr
    upload_path = location.split("?")[0]
    patches = [
        line
        for line in log.read_text().splitlines()
        if f'"PATCH {upload_path}' in line and '" 202 ' in line
    ]
    chunks = -(-size // chunk)
    assert len(patches) == chunks  # every chunk accepted once, in the one session
    served = requests.get(f"http://{host}/v2/chunked/resumed/manifests/v1", timeout=30)
    assert served.content == manifest
