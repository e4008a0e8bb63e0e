"""The registry's notion of now: one function, so tests move time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
