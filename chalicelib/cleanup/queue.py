"""The collector's work list: the gc-candidates table, fed by the tables' streams.

A DynamoDB table rather than SQS, because what arrives is "look at this repository after
this time": changes to one repository collapse into one item (its earliest due time), a
due time may be a day away (SQS delays stop at 15 minutes), and redelivered stream records
change nothing (an enqueue is idempotent but for the `changes` count). The collector reads
the items that are due (a Scan of this table: its size is the backlog of changes, not the
registry), collects each repository, and settles its item on condition that no change
arrived meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib.cleanup.sweep import lost_race
from chalicelib.storage.models import GcCandidateModel

BLOB = "@blob "  # key prefix of shared-object candidates ('@' is in no repository name)
FORGET_AFTER = timedelta(days=30)  # TTL: a candidate nobody settles; the backstop covers it


@dataclass(frozen=True)
class Candidate:
    key: str
    due_at: int
    changes: int

    @property
    def blob(self) -> str | None:
        """The digest, for a shared-object candidate."""
        return self.key[len(BLOB) :] if self.key.startswith(BLOB) else None


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def enqueue(key: str, due: datetime) -> None:
    """Look at `key` no later than `due`: an earlier due time wins."""
    expires = datetime.fromtimestamp(_epoch(due), UTC) + FORGET_AFTER
    item = GcCandidateModel(key)
    try:
        item.update(
            actions=[
                GcCandidateModel.due_at.set(_epoch(due)),
                GcCandidateModel.changes.add(1),
                GcCandidateModel.expires_at.set(expires),
            ],
            condition=GcCandidateModel.due_at.does_not_exist()
            | (GcCandidateModel.due_at > _epoch(due)),
        )
    except PynamoDBException as exc:
        if not lost_race(exc):
            raise
        item.update(actions=[GcCandidateModel.changes.add(1)])  # already due earlier


def repository(name: str, due: datetime) -> None:
    enqueue(name, due)


def blob(digest: str, due: datetime) -> None:
    enqueue(BLOB + digest, due)


def due(now: datetime) -> Iterator[Candidate]:
    """Every candidate due by `now` (one Scan of the backlog, projected)."""
    for item in GcCandidateModel.scan(
        GcCandidateModel.due_at <= _epoch(now), attributes_to_get=["key", "due_at", "changes"]
    ):
        yield Candidate(item.key, int(item.due_at), int(item.changes or 0))


def settle(candidate: Candidate, next_due: datetime | None) -> bool:
    """Done with it: gone, or due again at `next_due`; unless a change arrived meanwhile
    (then it stays due, and the next run looks again). False: it stayed."""
    item = GcCandidateModel(candidate.key)
    unchanged = GcCandidateModel.changes == candidate.changes
    try:
        if next_due is None:
            item.delete(condition=unchanged)
        else:
            item.update(
                actions=[GcCandidateModel.due_at.set(_epoch(next_due))], condition=unchanged
            )
    except PynamoDBException as exc:
        if lost_race(exc):
            return False
        raise
    return True


def pending() -> int:
    """How many candidates wait, due or not (for reports and tests)."""
    return sum(1 for _ in GcCandidateModel.scan(attributes_to_get=["key"]))


def schedule_once(key: str, due: datetime) -> bool:
    """Create the candidate unless it exists (a recurring job's first due time)."""
    expires = datetime.fromtimestamp(_epoch(due), UTC) + FORGET_AFTER
    item = GcCandidateModel(key, due_at=_epoch(due), changes=1, expires_at=expires)
    try:
        item.save(condition=GcCandidateModel.key.does_not_exist())
    except PynamoDBException as exc:
        if lost_race(exc):
            return False
        raise
    return True
