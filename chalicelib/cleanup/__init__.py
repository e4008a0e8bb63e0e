"""Cleanup: expire tags, abort abandoned uploads, collect unreachable manifests and blobs.

Mark, then sweep, as Distribution's MarkAndSweep: each phase computes its candidates from
the rows it read (pure functions, plan.py), and one apply step (sweep.py) deletes them;
`dry_run` only skips that step. Where the work comes from (collector.py):
- the routine scheduled run collects what the tables' streams put on the work list
  (subscriber.py, queue.py), so its cost follows what changed;
- a periodic backstop marks everything, in parallel-scan segments fanned out over SQS
  (backstop.py), each resumable and within Lambda's 15 minutes.

Why it cannot take something a push is about to use (docs/gc.md has the whole argument):
- Nothing touched within `STRATUS_GC_GRACE_SECONDS` of the run's start is a candidate.
- A manifest push touches every blob link and child manifest it references, on condition
  that each still exists; collection deletes on condition that nothing changed since its
  read. Whichever writes first, the other's condition fails.
- A blob's S3 object is shared by every repository; its record's `deleting` marker and
  `last_linked_at` order its deletion against a concurrent link (objects.py).
"""

from __future__ import annotations

from typing import Any

from chalicelib.cleanup.collector import routine, run
from chalicelib.cleanup.report import METRICS, Report

__all__ = ["Report", "handle_schedule", "handle_segment", "main", "routine", "run"]


def _emit(report: Report, what: str) -> dict[str, Any]:
    """Log the report and emit its counters as CloudWatch metrics (EMF)."""
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    log = Logger(service="stratus-cleanup")
    metrics = Metrics(namespace="Stratus", service="cleanup")
    for attribute, metric in METRICS.items():
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=getattr(report, attribute))
    metrics.add_metric(name="BytesFreed", unit=MetricUnit.Bytes, value=report.bytes_freed)
    metrics.flush_metrics()
    summary = report.as_dict()
    log.info(what, extra={"report": summary})
    return summary


def handle_schedule(*, dry_run: bool = False) -> dict[str, Any]:
    """The scheduled Lambda: one routine run (which starts the backstop when it is due)."""
    return _emit(routine(dry_run=dry_run), "cleanup finished")


# A segment stops this long before Lambda's limit, to send where it stopped.
SEGMENT_MARGIN_MS = 120_000


def handle_segment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The SQS-driven Lambda: one backstop segment, resumed from its message; where it
    stopped goes back on the queue as the next message."""
    from chalicelib import clock, config
    from chalicelib.cleanup import backstop, collector
    from chalicelib.storage import aws

    report = Report(dry_run=False)
    for record in event.get("Records", []):
        segment = backstop.Segment.from_json(record["body"])
        report.dry_run = segment.dry_run

        def out_of_time() -> bool:
            return bool(context.get_remaining_time_in_millis() < SEGMENT_MARGIN_MS)

        rest = collector.run_segment(segment, clock.now(), report, out_of_time)
        if rest is not None:
            aws.sqs().send_message(
                QueueUrl=config.settings.gc_segment_queue, MessageBody=rest.to_json()
            )
    return _emit(report, "cleanup segment finished")


def main() -> None:
    """`python -m chalicelib.cleanup [--dry-run]`: a whole collection against the
    configured tables and bucket, in this process."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="stratus-cleanup", description=main.__doc__)
    parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    args = parser.parse_args()
    print(json.dumps(run(dry_run=args.dry_run).as_dict(), indent=2))
