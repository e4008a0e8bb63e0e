"""The backstop: a full mark of the registry, split into parallel-scan segments.

What the streams cannot see (a blob deleted through the API, an upload that died before
linking, a candidate lost to a failed run) is found here. Segment i of n:
1. repositories: Scan segment i of the blob-links table (keys only); every repository met
   is collected whole (collector.collect_repository: Queries of its tags, manifests and
   links, so a repository met by two segments is still judged on all of its items);
2. objects: Scan segment i of the blob-objects table, in pages of 100 records;
3. orphans: the S3 listings of the blob prefixes `blobs/sha256/<x>` with int(x, 16)
   % n == i (16 prefixes: segments past the 16th list none);
4. quotas (segment 0 only): every namespace's storage usage recomputed from its links
   (policies/quotas.py `repair`), so drift in the usage counters lasts a backstop period
   at most; a namespace whose usage changed counts in `quotas_corrected`.
A segment stops when its time is nearly up and returns where it was (the scan's
LastEvaluatedKey, the listing's token), which its SQS message carries to the next Lambda.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chalicelib import config
from chalicelib.cleanup import objects
from chalicelib.cleanup.items import OBJECT_ATTRIBUTES, blob_object
from chalicelib.cleanup.report import Report
from chalicelib.cleanup.sweep import apply
from chalicelib.storage.models import BlobLinkModel, BlobObjectModel

logger = logging.getLogger("stratus.cleanup")

STAGES = ("repositories", "objects", "orphans", "quotas")
OBJECT_PAGE = 100
PREFIXES = 16  # blobs/sha256/<x>: the first hex digit (S3 scales request rates by prefix)

Collect = Callable[[str], Report]  # collect one repository
OutOfTime = Callable[[], bool]


@dataclass
class Segment:
    index: int
    total: int
    stage: str = STAGES[0]
    key: dict[str, Any] | None = None  # the stage's LastEvaluatedKey
    prefix: int = 0  # orphans: position among this segment's prefixes
    token: str | None = None  # orphans: the listing's continuation token
    last_repository: str | None = None  # collected just before `key`; quotas: the last namespace
    dry_run: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Segment:
        return cls(**json.loads(text))

    def prefixes(self) -> list[str]:
        return [f"{p:x}" for p in range(PREFIXES) if p % self.total == self.index]


def segments(total: int, *, dry_run: bool = False) -> list[Segment]:
    return [Segment(i, total, dry_run=dry_run) for i in range(total)]


def run(
    segment: Segment, now: datetime, collect: Collect, report: Report, out_of_time: OutOfTime
) -> Segment | None:
    """Work through the segment from where it stands; None when done, else where it
    stopped (`out_of_time` is asked between units of work)."""
    stages = {
        "repositories": _repositories,
        "objects": _objects,
        "orphans": _orphans,
        "quotas": _quotas,
    }
    while True:
        stopped = stages[segment.stage](segment, now, collect, report, out_of_time)
        if stopped:
            return segment
        following = STAGES.index(segment.stage) + 1
        if following == len(STAGES):
            return None
        segment.stage, segment.key, segment.last_repository = STAGES[following], None, None


def _repositories(
    segment: Segment, now: datetime, collect: Collect, report: Report, out_of_time: OutOfTime
) -> bool:
    scan = BlobLinkModel.scan(
        segment=segment.index,
        total_segments=segment.total,
        attributes_to_get=["repository", "digest"],
        last_evaluated_key=segment.key,
        page_size=1000,
    )
    for link in scan:
        if link.repository == segment.last_repository:
            continue  # a repository's links are contiguous in a scan
        if out_of_time():
            return True
        report.add(collect(link.repository))
        segment.last_repository = link.repository
        segment.key = scan.last_evaluated_key
    return False


def _objects(
    segment: Segment, now: datetime, collect: Collect, report: Report, out_of_time: OutOfTime
) -> bool:
    cutoff = now - _grace()
    scan = BlobObjectModel.scan(
        segment=segment.index,
        total_segments=segment.total,
        attributes_to_get=OBJECT_ATTRIBUTES,
        last_evaluated_key=segment.key,
        page_size=OBJECT_PAGE,
    )
    batch = []
    for item in scan:
        batch.append(blob_object(item))
        if len(batch) == OBJECT_PAGE:
            _sweep_objects(batch, now, cutoff, report)
            batch, segment.key = [], scan.last_evaluated_key
            if out_of_time():
                return True
    _sweep_objects(batch, now, cutoff, report)
    return False


def _sweep_objects(batch: list[Any], now: datetime, cutoff: datetime, report: Report) -> None:
    if batch:
        apply(objects.candidates(batch, objects.held(batch, cutoff), now, cutoff), report)


def _orphans(
    segment: Segment, now: datetime, collect: Collect, report: Report, out_of_time: OutOfTime
) -> bool:
    cutoff = now - _grace()
    prefixes = segment.prefixes()
    while segment.prefix < len(prefixes):
        if out_of_time():
            return True
        listed, token = objects.listing_page(
            f"blobs/sha256/{prefixes[segment.prefix]}", segment.token
        )
        old = {d: v for d, v in listed.items() if v[1] <= cutoff}
        if old:
            apply(objects.orphans(old, objects.recorded(old), now, cutoff), report)
        if token:
            segment.token = token
        else:
            segment.prefix, segment.token = segment.prefix + 1, None
    return False


def _quotas(
    segment: Segment, now: datetime, collect: Collect, report: Report, out_of_time: OutOfTime
) -> bool:
    """Segment 0 repairs every namespace's usage, one namespace at a time (resumable after
    the last one done). Costs a Query per repository and a rewrite of the namespace's
    usage items; a link committed while its namespace is recounted can make it drift again
    until the next run (storage/quotas.py `recount`)."""
    if segment.index != 0:
        return False
    from chalicelib.policies import quotas

    for namespace in quotas.namespaces():
        if segment.last_repository is not None and namespace <= segment.last_repository:
            continue
        if out_of_time():
            return True
        try:
            found = quotas.repair(namespace, dry_run=segment.dry_run)
        except Exception:  # one namespace's failure must not stop the others
            report.errors += 1
            logger.exception("cleanup: quota repair of namespace %s failed", namespace)
        else:
            if found.before != found.after:
                report.quotas_corrected += 1
        segment.last_repository = namespace
    return False


def _grace() -> Any:
    from datetime import timedelta

    return timedelta(seconds=config.settings.gc_grace_seconds)
