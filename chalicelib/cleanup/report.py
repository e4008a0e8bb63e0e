"""What a run did (or, dry, would do): counters, a capped list of what went, errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Counter -> the CloudWatch metric it is emitted as.
METRICS = {
    "tags_expired": "TagsExpired",
    "tags_pruned": "TagsPruned",
    "uploads_aborted": "UploadsAborted",
    "manifests_deleted": "ManifestsDeleted",
    "links_deleted": "BlobLinksDeleted",
    "blobs_deleted": "BlobsDeleted",
    "repositories_collected": "RepositoriesCollected",
    "deferred": "CandidatesDeferred",
    "quotas_corrected": "QuotaUsageCorrected",
    "errors": "CleanupErrors",
}
WOULD_DELETE_CAP = 200


@dataclass
class Report:
    dry_run: bool
    tags_expired: int = 0
    tags_pruned: int = 0
    uploads_aborted: int = 0
    manifests_deleted: int = 0
    links_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    repositories_collected: int = 0
    deferred: int = 0  # due work-list items left for the next run (out of time)
    quotas_corrected: int = 0  # namespaces whose usage the backstop's repair changed
    errors: int = 0
    # What went (or, dry, would go), capped for a readable report.
    would_delete: list[str] = field(default_factory=list)

    def swept(self, counter: str, what: str, size: int = 0) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        self.bytes_freed += size
        if self.dry_run and len(self.would_delete) < WOULD_DELETE_CAP:
            self.would_delete.append(what)

    def add(self, other: Report) -> None:
        """Fold a part's report (a repository, a segment) into this one."""
        for name in (*METRICS, "bytes_freed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        room = WOULD_DELETE_CAP - len(self.would_delete)
        self.would_delete.extend(other.would_delete[: max(room, 0)])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
