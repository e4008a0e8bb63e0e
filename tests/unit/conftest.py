from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from moto import mock_aws

from chalicelib import config
from chalicelib.local import moto_patches
from tests.client import Client

# moto as local mode runs it: atomic under threads, transactions that copy no table.
moto_patches.install()


@pytest.fixture
def aws() -> Iterator[None]:
    """A fresh moto account with the bucket and tables, for one test."""
    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        yield


@pytest.fixture
def client(aws: None) -> Client:
    from app import app

    return Client(app)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch):
    """Change stage settings for one test: `settings(max_request_bytes=1000)`."""

    def change(**values: object) -> None:
        monkeypatch.setattr(config, "settings", dataclasses.replace(config.settings, **values))

    return change


class FakeClock:
    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.current = datetime.now(UTC).replace(microsecond=0)

    def now(self):
        return self.current

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.current += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The registry's clock, moved by the test: expiry without sleeping."""
    from chalicelib import clock as registry_clock

    fake = FakeClock()
    monkeypatch.setattr(registry_clock, "now", fake.now)
    return fake


ADMIN_USER, ADMIN_PASSWORD = "root", "root-password-1"


@pytest.fixture
def auth(settings, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Auth switched on, with a fresh signing key and the bootstrap admin root.

    scrypt runs at a sixteenth of its cost here (the stored hash records its parameters);
    the fixture yields the production cost for the test that checks it.
    """
    from chalicelib.auth import keys, passwords

    production_cost = passwords.SCRYPT_N
    monkeypatch.setattr(passwords, "SCRYPT_N", 2**10)

    settings(
        auth=True,
        signing_key_file=str(tmp_path / "signing-key.pem"),
        signing_key_parameter="",
        admin_user=ADMIN_USER,
        admin_password=ADMIN_PASSWORD,
    )
    keys.forget()
    yield {"scrypt_n": production_cost}
    keys.forget()
