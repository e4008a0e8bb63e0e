"""DynamoDB transactions (pynamodb's TransactWrite) and how to read their failures."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import config
from chalicelib.storage.errors import Contention

T = TypeVar("T")
ATTEMPTS = 4


class LostRace(Exception):
    """A conditional write found the item changed since it was read: read again, retry."""


def retried(operation: Callable[[], T], *, what: str, attempts: int = ATTEMPTS) -> T:
    """Run a read-then-conditional-write until it does not lose a race; Contention (a 429)
    after `attempts` losses, so a hot item never turns into an endless loop."""
    for _ in range(attempts):
        try:
            return operation()
        except LostRace:
            continue
    raise Contention({"reason": f"concurrent updates to this {what}; retry"})


@cache
def _connection() -> Connection:
    """One per container: a new Connection builds a new botocore client (~0.2 s each)."""
    return Connection(region=config.settings.region)


def transaction() -> TransactWrite:
    return TransactWrite(connection=_connection())


def failed_conditions(exc: TransactWriteError) -> list[int]:
    """Positions of the items whose condition failed (in the order they were added)."""
    reasons = exc.cancellation_reasons or []
    return [
        i for i, r in enumerate(reasons) if r is not None and r.code == "ConditionalCheckFailed"
    ]


def lost_race(exc: TransactWriteError) -> bool:
    """A condition failed or another transaction held an item: re-read and retry."""
    return (
        bool(failed_conditions(exc))
        or exc.cause_response_code
        in {
            "TransactionConflictException",
        }
        or any(
            r is not None and r.code == "TransactionConflict"
            for r in (exc.cancellation_reasons or [])
        )
    )
