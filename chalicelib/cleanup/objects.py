"""Shared blob objects: the marker protocol of docs/gc.md, as sweeps.

An object goes when no repository links its digest and nobody linked it within the grace
window: mark the record (on condition `last_linked_at` is unchanged), delete the S3 object,
delete the record (on condition the marker is ours). A run that died between those steps
left a marker, which the next one finishes. Objects an upload wrote but never linked have
no record: they are claimed with a record already marked, then go the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import PynamoDBException

from chalicelib import config
from chalicelib.cleanup.items import BlobObject
from chalicelib.cleanup.sweep import Sweep, lost_race
from chalicelib.storage import aws, blobs
from chalicelib.storage.models import BlobObjectModel

Listed = Mapping[str, tuple[int, datetime]]  # digest -> (size, last modified)


def _finish(digest: str, marker: datetime) -> bool:
    aws.s3().delete_object(Bucket=config.settings.bucket, Key=blobs.object_key(digest))
    try:
        BlobObjectModel(digest).delete(condition=BlobObjectModel.deleting == marker)
    except PynamoDBException as exc:
        if lost_race(exc):
            return False
        raise
    return True


@dataclass(frozen=True)
class ObjectRemoval:
    """An object no repository links, unlinked for the whole grace window."""

    record: BlobObject
    marker: datetime
    counter: str = "blobs_deleted"

    def describe(self) -> str:
        return f"blob {self.record.digest}"

    def size(self) -> int:
        return self.record.size

    def mark(self) -> bool:
        """Claim the object, if nobody linked it since the mark read it."""
        try:
            BlobObjectModel(self.record.digest).update(
                actions=[BlobObjectModel.deleting.set(self.marker)],
                condition=(BlobObjectModel.last_linked_at == self.record.last_linked_at)
                & BlobObjectModel.deleting.does_not_exist(),
            )
        except PynamoDBException as exc:
            if lost_race(exc):
                return False
            raise
        return True

    def finish(self) -> bool:
        return _finish(self.record.digest, self.marker)

    def sweep(self) -> bool:
        return self.mark() and self.finish()


@dataclass(frozen=True)
class UnfinishedRemoval:
    """A marked record: an earlier run died between marking and deleting."""

    record: BlobObject
    counter: str = "blobs_deleted"

    def describe(self) -> str:
        return f"blob {self.record.digest} (unfinished)"

    def size(self) -> int:
        return self.record.size

    def sweep(self) -> bool:
        assert self.record.deleting is not None
        return _finish(self.record.digest, self.record.deleting)


@dataclass(frozen=True)
class OrphanRemoval:
    """An object with no record, older than the grace window: its upload died unlinked."""

    digest: str
    bytes: int
    modified: datetime
    marker: datetime
    counter: str = "blobs_deleted"

    def describe(self) -> str:
        return f"orphan blob {self.digest}"

    def size(self) -> int:
        return self.bytes

    def sweep(self) -> bool:
        record = BlobObjectModel(
            self.digest, size=self.bytes, last_linked_at=self.modified, deleting=self.marker
        )
        try:
            record.save(condition=BlobObjectModel.digest.does_not_exist())
        except PynamoDBException as exc:
            if lost_race(exc):
                return False
            raise
        return _finish(self.digest, self.marker)


def candidates(
    records: Iterable[BlobObject], held: set[str], now: datetime, cutoff: datetime
) -> list[Sweep]:
    """Pure: records to finish, and unheld records unlinked since before `cutoff`."""
    out: list[Sweep] = []
    for r in records:
        if r.deleting is not None:
            out.append(UnfinishedRemoval(r))
        elif r.last_linked_at <= cutoff and r.digest not in held:
            out.append(ObjectRemoval(r, now))
    return out


def orphans(listed: Listed, recorded: set[str], now: datetime, cutoff: datetime) -> list[Sweep]:
    """Pure: listed objects without a record, last written before `cutoff`."""
    return [
        OrphanRemoval(d, size, modified, now)
        for d, (size, modified) in sorted(listed.items())
        if d not in recorded and modified <= cutoff
    ]


def held(records: Iterable[BlobObject], cutoff: datetime) -> set[str]:
    """Which old, unmarked records some repository still links (one GSI Query each)."""
    return {
        r.digest
        for r in records
        if r.deleting is None
        and r.last_linked_at <= cutoff
        and blobs.repositories_holding(r.digest, 1)
    }


def recorded(digests: Iterable[str]) -> set[str]:
    """Which digests have a record (BatchGetItem, keys only)."""
    keys = sorted(set(digests))
    return {r.digest for r in BlobObjectModel.batch_get(keys, attributes_to_get=["digest"])}


def listing_page(
    prefix: str, token: str | None
) -> tuple[dict[str, tuple[int, datetime]], str | None]:
    """One page (up to 1,000 keys) of blob objects under `prefix`, and the next token."""
    kwargs = {"Bucket": config.settings.bucket, "Prefix": prefix}
    if token:
        kwargs["ContinuationToken"] = token
    page = aws.s3().list_objects_v2(**kwargs)  # type: ignore[arg-type]
    found = {}
    for obj in page.get("Contents", []):
        _, algorithm, _, encoded = obj["Key"].split("/", 3)
        found[f"{algorithm}:{encoded}"] = (int(obj["Size"]), obj["LastModified"])
    return found, page.get("NextContinuationToken")
