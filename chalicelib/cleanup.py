"""Cleanup: expire tags, abort abandoned uploads, collect unreachable manifests and blobs.

Runs on a schedule (`app.py`), idempotently; `dry_run` reports what it would delete.

Why it cannot take something a push is about to use (mark-and-sweep with a grace window,
closed by conditional writes; docs/gc.md has the whole argument):
- Nothing touched within `STRATUS_GC_GRACE_SECONDS` of the run's start is a candidate:
  a manifest's `pushed_at`/`touched_at`, a link's `linked_at`/`touched_at`, a blob object's
  `last_linked_at`.
- A manifest push touches every blob link and child manifest it references, on condition
  that each still exists. Collection deletes on condition that `touched_at` is unchanged.
  Whichever writes first, the other's condition fails: either the push sees the reference
  gone (`MANIFEST_BLOB_UNKNOWN`, the client uploads again) or the collector skips it.
- A blob's S3 object is shared by every repository. Linking it sets the object record's
  `last_linked_at` on condition that no `deleting` marker is set; collection sets the marker
  on condition that `last_linked_at` is unchanged and old, and only then deletes the object.
  An upload that meets the marker waits, writes the object again and links it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError

from chalicelib import clock, config
from chalicelib.storage import aws, blobs, referrers, transactions, uploads
from chalicelib.storage.models import (
    BlobLinkModel,
    BlobObjectModel,
    ManifestModel,
    ReferrerModel,
    TagModel,
    UploadModel,
)

logger = logging.getLogger(__name__)


@dataclass
class Report:
    dry_run: bool
    tags_expired: int = 0
    uploads_aborted: int = 0
    manifests_deleted: int = 0
    links_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    errors: int = 0
    # With dry_run, what would go (capped, for a readable report).
    would_delete: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if self.dry_run and len(self.would_delete) < 200:
            self.would_delete.append(what)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _conditional_failure(exc: Exception) -> bool:
    if isinstance(exc, TransactWriteError):
        return transactions.lost_race(exc)
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def run(*, dry_run: bool = False, now: datetime | None = None) -> Report:
    now = now or clock.now()
    cutoff = now - timedelta(seconds=config.settings.gc_grace_seconds)
    report = Report(dry_run=dry_run)
    live_tags = _expire_tags(now, report)
    _abort_uploads(now, report)
    used_blobs = _collect_manifests(cutoff, live_tags, report)
    _collect_links(cutoff, used_blobs, report)
    _collect_objects(now, cutoff, report)
    return report


# --- tags ------------------------------------------------------------------------------


def _expire_tags(now: datetime, report: Report) -> set[tuple[str, str]]:
    """Delete expired tags (DynamoDB's TTL lags); return (repository, digest) of live ones."""
    live: set[tuple[str, str]] = set()
    for tag in TagModel.scan(
        attributes_to_get=["repository", "sort_key", "name", "digest", "expires_at"]
    ):
        if tag.expires_at is None or tag.expires_at > now:
            live.add((tag.repository, tag.digest))
            continue
        report.note(f"tag {tag.repository}:{tag.name}")
        if report.dry_run:
            report.tags_expired += 1
            continue
        try:
            # Only the expired version: a re-push meanwhile changed digest or expiry.
            TagModel(tag.repository, tag.sort_key).delete(
                condition=(TagModel.digest == tag.digest) & (TagModel.expires_at == tag.expires_at)
            )
            report.tags_expired += 1
        except DeleteError as exc:
            if not _conditional_failure(exc):
                report.errors += 1
                logger.exception("expiring tag %s:%s", tag.repository, tag.name)
    return live


# --- uploads ---------------------------------------------------------------------------


def _abort_uploads(now: datetime, report: Report) -> None:
    limit = now - timedelta(seconds=config.settings.upload_ttl_seconds)
    for session in UploadModel.scan():
        if session.created_at >= limit:
            continue
        report.note(f"upload {session.repository} {session.upload_id}")
        report.uploads_aborted += 1
        if report.dry_run:
            continue
        try:
            uploads.cancel(session)
        except Exception as exc:
            report.uploads_aborted -= 1
            if not _conditional_failure(exc):  # a chunk arrived meanwhile: keep it
                report.errors += 1
                logger.exception("aborting upload %s", session.upload_id)


# --- manifests -------------------------------------------------------------------------


def _last_used(item: Any, *fields: str) -> datetime:
    latest: datetime = max(getattr(item, f) for f in fields if getattr(item, f) is not None)
    return latest


def _collect_manifests(
    cutoff: datetime, live_tags: set[tuple[str, str]], report: Report
) -> dict[str, set[str]]:
    """Delete manifests nothing keeps alive; return the blobs each repository still uses.

    Alive: tagged, or pushed/touched within the grace window, or a child of an alive index,
    or a referrer whose subject is alive (referrers outlive a deleted subject only until
    this collection).
    """
    by_repository: dict[str, dict[str, ManifestModel]] = defaultdict(dict)
    for item in ManifestModel.scan():
        by_repository[item.repository][item.digest] = item
    used_blobs: dict[str, set[str]] = defaultdict(set)
    for repository, items in by_repository.items():
        referrers_of: dict[str, list[str]] = defaultdict(list)
        for item in items.values():
            if item.subject:
                referrers_of[item.subject].append(item.digest)
        pending = [
            d
            for d, item in items.items()
            if (repository, d) in live_tags or _last_used(item, "pushed_at", "touched_at") > cutoff
        ]
        alive: set[str] = set()
        while pending:
            digest = pending.pop()
            if digest in alive or digest not in items:
                continue
            alive.add(digest)
            pending.extend(items[digest].children or ())
            pending.extend(referrers_of.get(digest, ()))
        for digest, item in items.items():
            if digest in alive or not _delete_manifest(item, report):
                used_blobs[repository] |= set(item.blobs or ())
    return used_blobs


def _delete_manifest(item: ManifestModel, report: Report) -> bool:
    report.note(f"manifest {item.repository}@{item.digest}")
    if report.dry_run:
        report.manifests_deleted += 1
        return True
    # Unchanged since the scan: a push that tags or references it rewrites pushed_at or
    # touched_at. Its expired tags went in the tag phase; TTL removes any it missed.
    condition = (ManifestModel.pushed_at == item.pushed_at) & (
        ManifestModel.touched_at == item.touched_at
        if item.touched_at
        else ManifestModel.touched_at.does_not_exist()
    )
    try:
        with transactions.transaction() as t:
            t.delete(ManifestModel(item.repository, item.digest), condition=condition)
            if item.subject:
                key = referrers.subject_key(item.repository, item.subject)
                t.delete(ReferrerModel(key, item.digest))
    except TransactWriteError as exc:
        if not _conditional_failure(exc):
            report.errors += 1
            logger.exception("collecting manifest %s@%s", item.repository, item.digest)
        return False
    report.manifests_deleted += 1
    return True


# --- blobs -----------------------------------------------------------------------------


def _collect_links(cutoff: datetime, used: dict[str, set[str]], report: Report) -> None:
    for link in BlobLinkModel.scan():
        if link.digest in used.get(link.repository, ()):
            continue
        if _last_used(link, "linked_at", "touched_at") > cutoff:
            continue
        report.note(f"link {link.repository}@{link.digest}")
        report.links_deleted += 1
        if report.dry_run:
            continue
        condition = BlobLinkModel.linked_at == link.linked_at
        condition &= (
            BlobLinkModel.touched_at == link.touched_at
            if link.touched_at
            else BlobLinkModel.touched_at.does_not_exist()
        )
        try:
            link.delete(condition=condition)
        except DeleteError as exc:
            report.links_deleted -= 1
            if not _conditional_failure(exc):
                report.errors += 1
                logger.exception("collecting link %s@%s", link.repository, link.digest)


def _stored_objects() -> dict[str, tuple[int, datetime]]:
    """Every blob object in S3: digest -> (size, last modified)."""
    found = {}
    paginator = aws.s3().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=config.settings.bucket, Prefix="blobs/"):
        for obj in page.get("Contents", []):
            _, algorithm, _, encoded = obj["Key"].split("/", 3)
            found[f"{algorithm}:{encoded}"] = (int(obj["Size"]), obj["LastModified"])
    return found


def _collect_objects(now: datetime, cutoff: datetime, report: Report) -> None:
    stored = _stored_objects()
    records = {r.digest: r for r in BlobObjectModel.scan()}
    for digest, record in records.items():
        deleting: datetime | None = record.deleting
        if deleting is not None:
            _finish_delete(record, deleting, report)  # a run that died half-way
        elif record.last_linked_at <= cutoff and not blobs.repositories_holding(digest, 1):
            marker = now
            report.note(f"blob {digest}")
            if report.dry_run:
                report.blobs_deleted += 1
                report.bytes_freed += int(record.size)
                continue
            if _mark(record, marker, report):
                _finish_delete(record, marker, report)
    # Objects with no record: written by an upload that died before linking. Claim them
    # with a marked record first, so a concurrent upload of the digest waits for us.
    for digest, (size, modified) in stored.items():
        if digest in records or modified > cutoff:
            continue
        report.note(f"orphan blob {digest}")
        if report.dry_run:
            report.blobs_deleted += 1
            report.bytes_freed += size
            continue
        record = BlobObjectModel(digest, size=size, last_linked_at=modified, deleting=now)
        try:
            record.save(condition=BlobObjectModel.digest.does_not_exist())
        except Exception as exc:
            if not _conditional_failure(exc):
                report.errors += 1
            continue
        _finish_delete(record, now, report)


def _mark(record: BlobObjectModel, marker: datetime, report: Report) -> bool:
    """Claim the object for deletion, if nobody linked it since we looked."""
    try:
        record.update(
            actions=[BlobObjectModel.deleting.set(marker)],
            condition=(BlobObjectModel.last_linked_at == record.last_linked_at)
            & BlobObjectModel.deleting.does_not_exist(),
        )
    except UpdateError as exc:
        if not _conditional_failure(exc):
            report.errors += 1
        return False
    return True


def _finish_delete(record: BlobObjectModel, marker: datetime, report: Report) -> None:
    if report.dry_run:
        return
    try:
        aws.s3().delete_object(Bucket=config.settings.bucket, Key=blobs.object_key(record.digest))
        record.delete(condition=BlobObjectModel.deleting == marker)
    except Exception as exc:
        if not _conditional_failure(exc):
            report.errors += 1
            logger.exception("deleting blob %s", record.digest)
        return
    report.blobs_deleted += 1
    report.bytes_freed += int(record.size)


# --- entry points ----------------------------------------------------------------------

_METRICS = {
    "tags_expired": "TagsExpired",
    "uploads_aborted": "UploadsAborted",
    "manifests_deleted": "ManifestsDeleted",
    "links_deleted": "BlobLinksDeleted",
    "blobs_deleted": "BlobsDeleted",
    "errors": "CleanupErrors",
}


def handle_schedule(*, dry_run: bool = False) -> dict[str, Any]:
    """The scheduled Lambda: one run, logged and emitted as CloudWatch metrics (EMF)."""
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    log = Logger(service="stratus-cleanup")
    metrics = Metrics(namespace="Stratus", service="cleanup")
    report = run(dry_run=dry_run)
    for attribute, metric in _METRICS.items():
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=getattr(report, attribute))
    metrics.add_metric(name="BytesFreed", unit=MetricUnit.Bytes, value=report.bytes_freed)
    metrics.flush_metrics()
    summary = report.as_dict()
    log.info("cleanup finished", extra={"report": summary})
    return summary


def main() -> None:
    """`python -m chalicelib.cleanup [--dry-run]` against the configured tables and bucket."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="stratus-cleanup", description=main.__doc__)
    parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    args = parser.parse_args()
    print(json.dumps(run(dry_run=args.dry_run).as_dict(), indent=2))


if __name__ == "__main__":
    main()
