"""Live servers for the integration tests and the benchmarks: a moto server and the local
registry (`python -m chalicelib.local`, as `make run` starts it), each in a process of its
own, started on a free loopback port, waited for until it answers, and stopped with
whatever it started.

It lives under tests/ (which bench/ imports) rather than chalicelib/, so nothing of it
reaches the Lambda package.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from chalicelib.local.stack import free_port

ROOT = Path(__file__).resolve().parents[1]

# What a started registry must not inherit from the caller: another endpoint, another
# stage's switches, the test session's call recorder (the caller passes it on if wanted).
_NOT_INHERITED = ("AWS_ENDPOINT_URL", "STRATUS_USE_AWS", "MOTO_PORT", "AWS_CA_BUNDLE")


@dataclass
class Server:
    name: str
    host: str  # host:port, as clients name it
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        """End the server and its children (it leads its own process group)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
                return
            except subprocess.TimeoutExpired:
                continue


def answers(url: str, timeout: float = 1) -> int | None:
    """The HTTP status `url` answers with, or None when nothing listens there yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def spawn(
    name: str,
    command: list[str],
    env: dict[str, str],
    work: Path,
    ready_url: str,
    host: str,
    timeout: float = 120,
) -> Server:
    """Start `command`, logging to work/<name>.log, and wait until `ready_url` answers."""
    log = work / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so stop() ends its children too
        )
    server = Server(name, host, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{log.read_text()[-3000:]}")
        if answers(ready_url) is not None:
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not start in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def start_moto(work: Path, name: str = "moto") -> Server:
    """A moto server of its own (tests/moto_server.py): its URL is the AWS endpoint."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "tests.moto_server", str(port)]
    return spawn(name, command, dict(os.environ), work, f"http://{host}/moto-api/", host)


def start_stratus(work: Path, name: str = "stratus", env: dict[str, str] | None = None) -> Server:
    """The local registry, its data in work/<name>-data; `env` may point it at an
    AWS_ENDPOINT_URL (a moto server from start_moto) instead of its embedded moto."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    environment.update(
        {
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            "STRATUS_DATA_DIR": str(work / f"{name}-data"),
            # No background cleanup unless a test asks: a run landing mid-test (an expired
            # tag deleted) would change what the test reads.
            "STRATUS_LOCAL_CLEANUP_SECONDS": "0",
            **(env or {}),
        }
    )
    command = [sys.executable, "-m", "chalicelib.local", "--quiet"]
    return spawn(name, command, environment, work, f"http://{host}/v2/", host)
