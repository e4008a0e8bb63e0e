"""Test environment: never real AWS. Unit tests use moto in-process; integration tests
start the local server (with its own embedded moto) as a subprocess."""

from __future__ import annotations

import os

# Set before chalicelib is imported: settings and models read these once.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

# Every AWS call the registry's code makes is recorded, here and in the local servers the
# integration tests start, and checked against the stages' IAM policies at the end.
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

_CALLS = Path(tempfile.mkdtemp(prefix="stratus-calls-")) / "calls.txt"
os.environ["STRATUS_RECORD_AWS_CALLS"] = str(_CALLS)


def pytest_sessionstart(session) -> None:
    from chalicelib.storage import calls

    calls.install()


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run if the code made a call its IAM policy would refuse in AWS."""
    from chalicelib.storage import calls
    from infra import policies

    recorded = calls.recorded | calls.read(_CALLS)
    gaps = policies.missing(recorded)
    summary = Path(tempfile.gettempdir()) / "stratus-aws-calls.txt"
    summary.write_text("\n".join(" ".join(c) for c in sorted(recorded)) + "\n")
    if gaps:
        import sys

        print(
            "\nIAM policy check: the code made calls the stage policies do not allow:",
            file=sys.stderr,
        )
        for gap in gaps:
            print("  " + gap, file=sys.stderr)
        session.exitstatus = 1
