"""The operator CLI (`bin/stratus admin`) fails in one readable line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def admin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.admin", "--registry", "http://127.0.0.1:9", *args],
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "STRATUS_PASSWORD"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "advice"),
    [
        (("create-user", "bob"), "--password-stdin"),
        (("passwd", "bob"), "--password-stdin"),
        (("--user", "root", "users"), "STRATUS_PASSWORD"),
    ],
)
def test_admin_without_a_terminal_refuses_in_one_line(args: tuple[str, ...], advice: str) -> None:
    result = admin(*args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert advice in result.stderr


def test_admin_help_states_its_whole_description_and_examples() -> None:
    result = admin("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "a client of the management API" in text
    assert "create-robot acme ci" in text
    assert "regenerate-robot" in text
