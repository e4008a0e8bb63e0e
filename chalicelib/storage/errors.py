"""What storage can meet, as its own exceptions: storage knows DynamoDB and S3, not HTTP.

endpoints/routes.py, the one place that renders errors, turns these into OCI errors
(`chalicelib.errors.for_storage`).
"""

from __future__ import annotations

from typing import Any


class StorageError(Exception):
    """A condition met in storage; `detail` says which item and why, for the client."""

    def __init__(self, detail: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail or {}


class Contention(StorageError):
    """Concurrent writers kept changing the same items through every retry: the request
    changed nothing and may simply be sent again."""
