"""Make moto behave like DynamoDB and S3 under concurrency, at a cost independent of size.

moto is a test double written for one caller at a time. Local mode serves many, so:

- every DynamoDB and S3 request runs under one lock (`LOCK`): conditions and writes are
  atomic, and no request sees another half done, as on AWS;
- a failed transaction undoes only the items it touched, instead of restoring a deep copy
  of every table it named (which cost O(table) per transaction and, without the lock,
  erased other callers' writes);
- stream shards keep 24 hours of records, as DynamoDB streams do, instead of all of them.

`install()` is idempotent and applies in process (mock_aws) and in moto's server alike.
Hooks registered with `after_dynamodb` / `after_s3` run under the lock after each request,
so persistence sees requests in the order they took effect.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

LOCK = threading.RLock()
STREAM_RETENTION = timedelta(hours=24)

_installed = False
_dynamodb_hooks: list[Callable[[Any], None]] = []
_s3_hooks: list[Callable[[Any, Any, str], None]] = []


def after_dynamodb(hook: Callable[[Any], None]) -> None:
    """Run `hook(handler)` under the lock after every DynamoDB request."""
    _dynamodb_hooks.append(hook)


def after_s3(hook: Callable[[Any, Any, str], None]) -> None:
    """Run `hook(handler, request, full_url)` under the lock after every S3 request."""
    _s3_hooks.append(hook)


def install() -> None:
    """Patch moto (once): serialized requests, item-level rollback, bounded streams."""
    global _installed
    if _installed:
        return
    _installed = True
    _serialize_dynamodb()
    _serialize_s3()
    _item_level_transactions()
    _bounded_streams()


def _serialize_dynamodb() -> None:
    """Replaces moto.dynamodb.responses.DynamoHandler.call_action with a locked call."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with LOCK:
            try:
                return original(self)
            finally:
                for hook in _dynamodb_hooks:
                    hook(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _serialize_s3() -> None:
    """Replaces moto.s3.responses.S3Response.bucket_response / key_response with locked
    calls. The body is read before the lock, so a slow client holds up no one."""
    from moto.s3.responses import S3Response

    for name in ("bucket_response", "key_response"):
        original = getattr(S3Response, name)

        def locked(
            self: Any, request: Any, full_url: str, headers: Any, _original: Any = original
        ) -> Any:
            _ = request.data
            with LOCK:
                try:
                    return _original(self, request, full_url, headers)
                finally:
                    for hook in _s3_hooks:
                        hook(self, request, full_url)

        setattr(S3Response, name, locked)


def _item_level_transactions() -> None:
    """Replaces moto.dynamodb.models.DynamoDBBackend.transact_write_items.

    moto deep-copies every table a transaction names before it starts and restores those
    copies if any operation fails. This version records each touched item before its
    operation and, on failure, puts back just those items (and drops the stream records the
    transaction added): the same all-or-nothing result at the cost of the items written.
    """
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        undo = _UndoLog(self)
        with LOCK:
            _record_touched_items(self, transact_items, undo)
            with undo.deep_copies_disabled():
                try:
                    original(self, transact_items)
                except Exception:
                    undo.rollback()
                    raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _UndoLog:
    """The items a transaction may touch, as they were before it, and how to restore them."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.items: list[tuple[Any, Any, Any, Any]] = []  # table, hash, range, old item
        self.stream_lengths: dict[str, int] = {}  # table: its next sequence number

    def record(self, table_name: str, key: dict[str, Any]) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        table = self.backend.tables.get(table_name)
        if table is None or table.hash_key_attr not in key:
            return
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in key:
                return
            range_value = DynamoType(key[table.range_key_attr])
        old = table.get_item(hash_value, range_value)
        self.items.append((table, hash_value, range_value, copy.deepcopy(old)))
        if table.stream_shard is not None:
            shard = table.stream_shard
            self.stream_lengths.setdefault(
                table_name, shard.starting_sequence_number + len(shard.items)
            )

    def rollback(self) -> None:
        for table, hash_value, range_value, old in reversed(self.items):
            _set_raw(table, hash_value, range_value, old)
        for table_name, next_sequence in self.stream_lengths.items():
            shard = self.backend.tables[table_name].stream_shard
            if shard is not None:
                del shard.items[max(0, next_sequence - shard.starting_sequence_number) :]

    def deep_copies_disabled(self) -> Any:
        """moto's own whole-table backup is what this log replaces: make it free."""
        return _NoTableCopies(self.backend)


class _NoTableCopies:
    """While active, `copy.deepcopy(table)` in moto's transaction returns the table itself
    (moto restores it only on failure, after which our undo log puts the items back)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        import moto.dynamodb.models as models

        self.module = models
        self.saved = models.copy
        models.copy = _ShallowTables()  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        self.module.copy = self.saved  # type: ignore[assignment]


class _ShallowTables:
    """Stands in for the `copy` module inside moto.dynamodb.models during a transaction."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _record_touched_items(
    backend: Any, transact_items: list[dict[str, Any]], undo: _UndoLog
) -> None:
    """Note each item a transaction names before moto touches any of them."""
    for entry in transact_items:
        if len(entry) != 1:
            continue  # moto refuses it before writing anything
        op_type, op = next(iter(entry.items()))
        if not isinstance(op, dict) or "TableName" not in op:
            continue
        key = op.get("Item") if op_type == "Put" else op.get("Key")
        if isinstance(key, dict):
            undo.record(op["TableName"], key)


def _set_raw(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
    """Put `item` (or its absence) at a key without conditions or stream records."""
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
        return
    partition = table.items[hash_value]
    if item is None:
        partition.pop(range_value, None)
        if not partition:
            del table.items[hash_value]
    else:
        partition[range_value] = item


def _bounded_streams() -> None:
    """Replaces moto.dynamodb.models.table.StreamShard.add, which keeps every record ever
    written, with one that first drops records older than DynamoDB's 24 h retention."""
    from moto.core.utils import utcnow
    from moto.dynamodb.models.table import StreamShard

    original = StreamShard.add

    def add(self: Any, old: Any, new: Any) -> None:
        cutoff = utcnow() - STREAM_RETENTION
        expired = 0
        for record in self.items:
            if record.record["dynamodb"]["ApproximateCreationDateTime"] >= cutoff:
                break
            expired += 1
        if expired:
            # get() indexes records by sequence number minus the first one's.
            del self.items[:expired]
            self.starting_sequence_number += expired
        original(self, old, new)

    StreamShard.add = add  # type: ignore[method-assign]
