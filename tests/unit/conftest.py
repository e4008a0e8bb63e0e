from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from moto import mock_aws

from chalicelib import config
from tests.client import Client


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
