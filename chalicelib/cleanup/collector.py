"""Runs of the collector: the routine one follows what changed, the backstop covers all.

- `routine` (the schedule, every STRATUS_CLEANUP_RATE_MINUTES): aborts abandoned uploads,
  then collects each repository and blob object the streams put on the work list (queue.py)
  whose due time has come. Its cost follows the changes, not the registry's size. When the
  backstop is due (every STRATUS_GC_BACKSTOP_HOURS) it starts it: one SQS message per
  segment (STRATUS_GC_SEGMENT_QUEUE), or, without a queue, the segments in this process.
- `segment` (the SQS-driven Lambda): one backstop segment, resumed from its message.
- `run`: everything, in this process (local mode's CLI, tests): the routine, then every
  backstop segment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib import clock, config
from chalicelib.cleanup import backstop, items, objects, phases, queue
from chalicelib.cleanup.report import Report
from chalicelib.cleanup.sweep import apply, lost_race
from chalicelib.storage import aws, uploads
from chalicelib.storage.models import UploadModel

logger = logging.getLogger("stratus.cleanup")

BACKSTOP = "@backstop"
UPLOAD_ATTRIBUTES = [
    "upload_id",
    "repository",
    "created_at",
    "multipart_id",
    "buffer_key",
    "version",
]


def _grace() -> timedelta:
    return timedelta(seconds=config.settings.gc_grace_seconds)


def collect_repository(
    repository: str, now: datetime, *, dry_run: bool
) -> phases.RepositoryOutcome:
    """Collect one repository whole; shared objects it unlinked go on the work list."""
    outcome = phases.collect(repository, now, _grace(), dry_run=dry_run)
    if not dry_run:
        for digest in outcome.unlinked:
            queue.blob(digest, now)
    return outcome


def _collect_blob(digest: str, now: datetime, report: Report) -> datetime | None:
    """Collect one shared object if it is garbage; when to look again if only the grace
    window keeps it."""
    record = items.object_record(digest)
    if record is None:
        return None
    cutoff = now - _grace()
    held = objects.held([record], cutoff)
    apply(objects.candidates([record], held, now, cutoff), report)
    if record.deleting is None and record.digest not in held and record.last_linked_at > cutoff:
        return record.last_linked_at + _grace()
    return None


@dataclass(frozen=True)
class UploadAbort:
    session: UploadModel
    counter: str = "uploads_aborted"

    def describe(self) -> str:
        return f"upload {self.session.repository} {self.session.upload_id}"

    def size(self) -> int:
        return 0

    def sweep(self) -> bool:
        try:
            uploads.cancel(self.session)
        except PynamoDBException as exc:
            if lost_race(exc):  # a chunk arrived meanwhile: keep it
                return False
            raise
        return True


def abandoned(sessions: Sequence[UploadModel], now: datetime) -> list[UploadAbort]:
    """Pure: sessions older than the upload TTL."""
    limit = now - timedelta(seconds=config.settings.upload_ttl_seconds)
    return [UploadAbort(s) for s in sessions if s.created_at < limit]


def abort_uploads(now: datetime, report: Report) -> None:
    """The uploads table holds only sessions in flight: a Scan of it is small."""
    sessions = list(UploadModel.scan(attributes_to_get=UPLOAD_ATTRIBUTES))
    apply(abandoned(sessions, now), report)


def drain(
    now: datetime,
    report: Report,
    *,
    start_backstop: bool,
    out_of_time: backstop.OutOfTime = lambda: False,
) -> None:
    """Collect what the work list holds that is due; what is left when time runs out
    stays due for the next run."""
    for candidate in list(queue.due(now)):
        if out_of_time():
            report.deferred += 1
            continue
        try:
            if candidate.key == BACKSTOP:
                if start_backstop:
                    _start_backstop(now, report)
                next_due: datetime | None = now + timedelta(hours=config.settings.gc_backstop_hours)
            elif candidate.blob is not None:
                next_due = _collect_blob(candidate.blob, now, report)
            else:
                outcome = collect_repository(candidate.key, now, dry_run=report.dry_run)
                report.add(outcome.report)
                next_due = outcome.next_due
            if not report.dry_run:
                queue.settle(candidate, next_due)
        except Exception:
            report.errors += 1
            logger.exception("cleanup: candidate %s failed", candidate.key)


def _start_backstop(now: datetime, report: Report) -> None:
    queue_url = config.settings.gc_segment_queue
    parts = backstop.segments(config.settings.gc_segments, dry_run=report.dry_run)
    if not queue_url:
        _segments_here(parts, now, report)
        return
    sqs = aws.sqs()
    for start in range(0, len(parts), 10):
        entries = [
            {"Id": str(p.index), "MessageBody": p.to_json()} for p in parts[start : start + 10]
        ]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


def _segments_here(parts: list[backstop.Segment], now: datetime, report: Report) -> None:
    """The backstop's segments one after the other, in this process (no queue)."""
    for part in parts:
        try:
            run_segment(part, now, report, lambda: False)
        except Exception:
            report.errors += 1
            logger.exception("cleanup: backstop segment %d of %d failed", part.index, part.total)


def run_segment(
    segment: backstop.Segment, now: datetime, report: Report, out_of_time: backstop.OutOfTime
) -> backstop.Segment | None:
    def collect(repository: str) -> Report:
        return collect_repository(repository, now, dry_run=segment.dry_run).report

    return backstop.run(segment, now, collect, report, out_of_time)


# The routine run stops taking work this long after it starts (Lambda stops it at 900 s).
ROUTINE_SECONDS = 780.0


def routine(
    *, dry_run: bool = False, now: datetime | None = None, seconds: float = ROUTINE_SECONDS
) -> Report:
    """The scheduled run: abandoned uploads, then the due work list, for `seconds` at most."""
    now = now or clock.now()
    stop_at = time.monotonic() + seconds
    report = Report(dry_run=dry_run)
    abort_uploads(now, report)
    if not dry_run:  # the first backstop comes one period after the first routine run
        queue.schedule_once(BACKSTOP, now + timedelta(hours=config.settings.gc_backstop_hours))
    drain(now, report, start_backstop=True, out_of_time=lambda: time.monotonic() > stop_at)
    return report


def run(*, dry_run: bool = False, now: datetime | None = None) -> Report:
    """Everything, in this process: the routine run, then every backstop segment."""
    now = now or clock.now()
    report = Report(dry_run=dry_run)
    abort_uploads(now, report)
    drain(now, report, start_backstop=False)
    _segments_here(backstop.segments(config.settings.gc_segments, dry_run=dry_run), now, report)
    drain(now, report, start_backstop=False)  # the objects the segments unlinked
    return report
