"""What an interrupted push keeps locally so a rerun resends nothing already sent: per
direct upload, its session's location and part size, and the ETag of every finished part;
per standard chunked upload, its location and the bytes the registry acknowledged.

One small JSON file per (registry, repository, blob) under
`${STRATUS_PUSH_STATE:-${XDG_CACHE_HOME:-~/.cache}/stratus/push}`, rewritten atomically after
each part, and removed once the blob is in the registry. Also, per registry, which repository
each blob was last pushed to, so that pushing it to another one can mount it instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

WHERE_MAX = 10_000  # blobs remembered per registry, for mounts


def default_root() -> Path:
    if os.environ.get("STRATUS_PUSH_STATE"):
        return Path(os.environ["STRATUS_PUSH_STATE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "stratus" / "push"


@dataclass
class Upload:
    """An upload in progress: enough to finish it from another process. Direct uploads
    record each finished part's ETag; standard chunked ones the offset the registry acked."""

    location: str
    part_size: int
    part_count: int
    size: int
    etags: dict[int, str] = field(default_factory=dict)
    kind: str = "direct"  # or "chunked"
    offset: int = 0


class Store:
    """The uploads in progress, one file each; safe to update from many threads."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_root()
        self._lock = threading.Lock()

    def _path(self, base: str, repository: str, digest: str) -> Path:
        key = hashlib.sha256(f"{base}|{repository}|{digest}".encode()).hexdigest()[:32]
        return self.root / f"{key}.json"

    def load(self, base: str, repository: str, digest: str) -> Upload | None:
        path = self._path(base, repository, digest)
        try:
            doc = json.loads(path.read_text())
            doc["etags"] = {int(k): v for k, v in doc["etags"].items()}
            return Upload(**doc)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # none, or unreadable: start afresh

    def save(self, base: str, repository: str, digest: str, upload: Upload) -> None:
        with self._lock:
            path = self._path(base, repository, digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{threading.get_ident()}.tmp")
            temporary.write_text(json.dumps(asdict(upload)))
            os.replace(temporary, path)  # a kill never leaves half a file

    def forget(self, base: str, repository: str, digest: str) -> None:
        with self._lock:
            self._path(base, repository, digest).unlink(missing_ok=True)

    def _where_path(self, base: str) -> Path:
        key = hashlib.sha256(base.encode()).hexdigest()[:32]
        return self.root / "where" / f"{key}.json"

    def _where(self, base: str) -> dict[str, str]:
        try:
            found = json.loads(self._where_path(base).read_text())
            return found if isinstance(found, dict) else {}
        except (OSError, ValueError):
            return {}

    def pushed_to(self, base: str, digest: str) -> str | None:
        """The repository of `base` this machine last pushed (or found) `digest` in."""
        with self._lock:
            return self._where(base).get(digest)

    def remember(self, base: str, repository: str, digests: list[str]) -> None:
        """Record where these blobs are, keeping the most recent WHERE_MAX."""
        with self._lock:
            where = self._where(base)
            for digest in digests:
                where.pop(digest, None)
                where[digest] = repository
            kept = dict(list(where.items())[-WHERE_MAX:])
            path = self._where_path(base)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(kept))
            os.replace(temporary, path)
