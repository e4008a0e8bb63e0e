"""The AWS operations the registry's own code makes, counted and recorded at botocore.

The test suite records them (in process, and in its local servers through
STRATUS_RECORD_AWS_CALLS) and checks each against the stages' IAM policies (infra/
policies.py), so a new call without its permission fails the build instead of production.
Calls made by tests themselves, or by local provisioning, are not the registry's and are
left out. Benchmarks count calls per request the same way.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

_LIBRARIES = ("/botocore/", "/boto3/", "/pynamodb/", "/moto/", "/s3transfer/", "/urllib3/")
_lock = threading.Lock()
recorded: set[tuple[str, str, str]] = set()  # (role, service, operation)
counter: Counter[tuple[str, str]] = Counter()  # (service, operation), for benchmarks
# Items written or read by batch and transaction calls, for capacity-unit estimates.
items: Counter[tuple[str, str]] = Counter()
# Called after every call (raised or not) with (service, operation, parameters): the read
# cache drops what a write of this process may have changed (storage/cache.py).
Observer = Callable[[str, str, dict[str, Any]], None]
observers: list[Observer] = []
_sink: Path | None = None
_record_origins = False
_installed = False
_thread = threading.local()


def thread_count() -> int:
    """AWS calls made so far on this thread: request logs report the difference."""
    return getattr(_thread, "count", 0)


def _origin() -> str | None:
    """ "api", "cleanup" or "audit_export" for a call the registry's code makes; None for
    anyone else's."""
    frame: FrameType | None = sys._getframe(3)
    first = None
    role = "api"
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if name.endswith(("chalicelib/local/stack.py", "chalicelib/local/background.py")):
            # provisioning local stand-ins, or reading streams as Lambda's event source
            # mapping does: nothing a stage's functions do
            return None
        if "/chalicelib/cleanup/" in name or name.endswith(
            (
                "chalicelib/changes.py",
                "chalicelib/events/subscriber.py",
                "chalicelib/events/deliveries.py",
            )
        ):
            role = "cleanup"  # the stream consumer runs with the cleanup functions' role
        if name.endswith("chalicelib/events/audit_export.py"):
            return "audit_export"  # its own function and role: only the export's writes
        if first is None and not any(lib in name for lib in _LIBRARIES):
            first = name
        frame = frame.f_back
    return role if first is not None and "/chalicelib/" in first else None


def _item_count(operation: str, params: dict[str, Any]) -> int:
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    if operation == "BatchGetItem":
        return sum(len(t.get("Keys", [])) for t in params.get("RequestItems", {}).values())
    if operation == "BatchWriteItem":
        return sum(len(t) for t in params.get("RequestItems", {}).values())
    return 1


def install(sink: Path | None = None, *, origins: bool = True) -> None:
    """Count every later call; with `origins`, record whose code made it (tests), and with
    `sink` also append new ones to that file. Lambda counts only (observability.py)."""
    global _sink, _installed, _record_origins
    from botocore.client import BaseClient

    _sink = sink
    _record_origins = _record_origins or origins
    if _installed:
        return
    _installed = True
    # Private, and so not in botocore's stubs: the one method every client call passes.
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def recording(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        _thread.count = getattr(_thread, "count", 0) + 1
        try:
            if not _record_origins:
                return original(client, operation_name, api_params)
            with _lock:
                counter[(service, operation_name)] += 1
                items[(service, operation_name)] += _item_count(operation_name, api_params)
            role = _origin()
            if role is not None:
                key = (role, service, operation_name)
                with _lock:
                    if key not in recorded:
                        recorded.add(key)
                        if _sink is not None:
                            with _sink.open("a") as handle:
                                handle.write(" ".join(key) + "\n")
            return original(client, operation_name, api_params)
        finally:
            for observer in observers:
                observer(service, operation_name, api_params)

    BaseClient._make_api_call = recording  # type: ignore[attr-defined]


def read(path: Path) -> set[tuple[str, str, str]]:
    if not path.exists():
        return set()
    return {tuple(line.split()) for line in path.read_text().splitlines() if line.strip()}  # type: ignore[misc]
