"""Local mode's data on disk: moto's state written through, so `make run` survives restarts.

After every DynamoDB or S3 request that can change state, and before moto answers it, the
items and objects the request touched are written to a SQLite database in the data folder
(WAL, synchronous=FULL: fsync before the answer). S3 object bytes live in files beside it,
never in Python memory, fsynced before their metadata commits. So a clean stop loses nothing
and `kill -9` (or a power cut) loses only requests that had not been answered yet.

On start the tables' items, the buckets, objects and multipart uploads are loaded back into
moto. Restoring writes straight into moto's models (fast: no request per item).
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import re
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import unescape

from chalicelib.local import moto_patches

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    table_name TEXT NOT NULL, item_key TEXT NOT NULL, item BLOB NOT NULL,
    PRIMARY KEY (table_name, item_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, region TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, object_key TEXT NOT NULL, path TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (bucket, object_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS multiparts (
    bucket TEXT NOT NULL, upload_id TEXT NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY (bucket, upload_id)) WITHOUT ROWID;
"""

DYNAMODB_WRITES = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "DeleteTable",
}
# FakeKey attributes that are not state: the open buffer, its lock, a completed upload's parts.
_TRANSIENT = ("_value_buffer", "lock", "multipart")


class DataDirInUse(RuntimeError):
    pass


class Store:
    """The SQLite database and object files of one data folder, held by one process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.objects = directory / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)
        self._lock_file = (directory / "lock").open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUse(f"{directory} is in use by another local registry") from None
        self.db = sqlite3.connect(
            directory / "state.sqlite3", check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.written_by = self._stamp_moto_version()
        self.multipart_ids: dict[str, set[str]] = {}
        self.unlink_after_commit: list[str] = []
        self._unlink_lock = threading.Lock()

    def _stamp_moto_version(self) -> str | None:
        """The moto version that wrote this folder before (its objects are stored pickled;
        another version may read them differently), and record ours."""
        import moto

        row = self.db.execute("SELECT value FROM meta WHERE name = 'moto'").fetchone()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('moto', ?)", (moto.__version__,))
        return row[0] if row else None

    def new_object_path(self) -> Path:
        name = uuid.uuid4().hex
        shard = self.objects / name[:2]
        if not shard.is_dir():
            shard.mkdir(exist_ok=True)
            _fsync(str(self.objects))
        return shard / name

    def forget_file(self, path: str) -> None:
        """A disposed object's file goes once the commit that stops naming it is durable."""
        with self._unlink_lock:
            self.unlink_after_commit.append(path)

    def commit(self, writes: list[tuple[str, tuple[Any, ...]]]) -> None:
        if writes:
            self.db.execute("BEGIN")
            try:
                for sql, params in writes:
                    self.db.execute(sql, params)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        with self._unlink_lock:
            doomed, self.unlink_after_commit = self.unlink_after_commit, []
        for path in doomed:
            Path(path).unlink(missing_ok=True)

    def close(self) -> None:
        with moto_patches.LOCK:
            self.commit([])
            self.db.close()
        self._lock_file.close()


class ObjectFile:
    """An S3 object's bytes in a file of the data folder, in place of moto's
    SpooledTemporaryFile. Opened only while read or written: thousands of objects must not
    hold thousands of descriptors."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.position = 0
        self.closed = False
        self.synced = False
        self.named = False
        path.touch()

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def seek(self, offset: int, whence: int = 0) -> int:
        self._check()
        self.position = offset if whence == 0 else os.path.getsize(self.name) + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def truncate(self, size: int | None = None) -> int:
        self._check()
        end = self.position if size is None else size
        os.truncate(self.name, end)
        self.synced = False
        return end

    def write(self, data: bytes) -> int:
        self._check()
        with open(self.name, "r+b") as file:
            file.seek(self.position)
            file.write(data)
        self.position += len(data)
        self.synced = False
        return len(data)

    def read(self, size: int = -1) -> bytes:
        self._check()
        with open(self.name, "rb") as file:
            file.seek(self.position)
            data = file.read(size)
        self.position += len(data)
        return data

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def sync(self) -> None:
        """fsync once after the last write: restored and unchanged objects cost nothing."""
        if self.synced:
            return
        _fsync(self.name)
        if not self.named:
            _fsync(os.path.dirname(self.name))  # the file's name, for a power cut
            self.named = True
        self.synced = True


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_store: Store | None = None


def open_store(directory: Path) -> Store:
    """Keep moto's state in `directory` from now on (call before moto serves a request)."""
    global _store
    moto_patches.install()
    _store = Store(directory)
    _files_for_objects(_store)
    moto_patches.after_dynamodb(_after_dynamodb)
    moto_patches.after_s3(_after_s3)
    return _store


def _files_for_objects(store: Store) -> None:
    """Replaces moto.s3.models' use of tempfile.SpooledTemporaryFile (each FakeKey's buffer,
    bytes in memory up to a size) with ObjectFile, and FakeKey.dispose with a version that
    also deletes the file once no committed state names it."""
    import tempfile

    from moto.s3 import models

    class _Tempfile:
        def __getattr__(self, name: str) -> Any:
            return getattr(tempfile, name)

        @staticmethod
        def SpooledTemporaryFile(*args: Any, **kwargs: Any) -> ObjectFile:
            return ObjectFile(store.new_object_path())

    models.tempfile = _Tempfile()  # type: ignore[assignment]
    original_dispose = models.FakeKey.dispose

    def dispose(self: Any, garbage: bool = False) -> None:
        buffer = self.__dict__.get("_value_buffer")
        if isinstance(buffer, ObjectFile) and not buffer.closed:
            store.forget_file(buffer.name)
        original_dispose(self, garbage)

    models.FakeKey.dispose = dispose  # type: ignore[method-assign]


# --- DynamoDB ----------------------------------------------------------------------------


def _after_dynamodb(handler: Any) -> None:
    store = _store
    if store is None:
        return
    action = handler._get_action()
    if action not in DYNAMODB_WRITES:
        return
    backend = handler.dynamodb_backend
    body = handler.body if isinstance(handler.body, dict) else {}
    if action == "DeleteTable":
        name = body.get("TableName")
        if name and name not in backend.tables:
            store.commit([("DELETE FROM items WHERE table_name = ?", (name,))])
        return
    writes = [_item_write(backend, table, key) for table, key in _touched(action, body)]
    store.commit([w for w in writes if w is not None])


def _touched(action: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key or whole item) for every item the request may have written."""
    if action in ("PutItem",):
        return [(body["TableName"], body.get("Item") or {})]
    if action in ("UpdateItem", "DeleteItem"):
        return [(body["TableName"], body.get("Key") or {})]
    if action == "BatchWriteItem":
        return [
            (table, request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"])
            for table, requests in (body.get("RequestItems") or {}).items()
            for request in requests
        ]
    touched = []
    for entry in body.get("TransactItems") or []:
        for op_type, op in entry.items():
            key = op.get("Item") if op_type == "Put" else op.get("Key")
            if op_type != "ConditionCheck" and key:
                touched.append((op["TableName"], key))
    return touched


def _item_write(
    backend: Any, table_name: str, attributes: dict[str, Any]
) -> tuple[str, tuple[Any, ...]] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    table = backend.tables.get(table_name)
    if table is None or table.hash_key_attr not in attributes:
        return None
    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
    range_value = None
    if table.range_key_attr is not None:
        if table.range_key_attr not in attributes:
            return None
        key[table.range_key_attr] = attributes[table.range_key_attr]
        range_value = DynamoType(attributes[table.range_key_attr])
    item_key = json.dumps(key, sort_keys=True)
    try:
        item = table.get_item(DynamoType(attributes[table.hash_key_attr]), range_value)
    except Exception:  # a malformed key moto refused: nothing was written
        return None
    if item is None:
        return ("DELETE FROM items WHERE table_name = ? AND item_key = ?", (table_name, item_key))
    return (
        "INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
        (table_name, item_key, pickle.dumps(item)),
    )


def restore_dynamodb(store: Store, backend: Any) -> int:
    """Load every stored item into the (already created) tables; returns the count."""
    count = 0
    rows = store.db.execute("SELECT table_name, item FROM items ORDER BY table_name")
    for table_name, raw in rows:
        table = backend.tables.get(table_name)
        if table is None:
            continue
        item = pickle.loads(raw)  # moto's Item, as it was after the last write
        if item.range_key is None:
            table.items[item.hash_key] = item
        else:
            table.items[item.hash_key][item.range_key] = item
        count += 1
    return count


# --- S3 ----------------------------------------------------------------------------------


def _after_s3(handler: Any, request: Any, full_url: str) -> None:
    store = _store
    if store is None or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    parts = urlsplit(full_url)
    bucket_name, _, key_name = parts.path.lstrip("/").partition("/")
    bucket_name, key_name = unquote(bucket_name), unquote(key_name)
    if not bucket_name:
        return
    backend = handler.backend
    bucket = backend.buckets.get(bucket_name)
    if bucket is None:
        store.commit(_bucket_deleted(store, bucket_name))
        return
    writes: list[tuple[str, tuple[Any, ...]]] = [
        ("INSERT OR IGNORE INTO buckets VALUES (?, ?)", (bucket_name, bucket.region_name))
    ]
    query = parse_qs(parts.query, keep_blank_values=True)
    keys = [key_name] if key_name else []
    if "delete" in query:
        keys += _keys_in_delete_request(request.data)
    for key in keys:
        writes.append(_object_write(bucket_name, key, bucket.keys.get(key)))
    writes += _multipart_writes(store, bucket_name, bucket, query.get("uploadId", []))
    store.commit(writes)


def _keys_in_delete_request(body: bytes | str) -> list[str]:
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return [unescape(key) for key in re.findall(r"<Key>(.*?)</Key>", text or "", re.S)]


def _key_state(key: Any) -> bytes:
    return pickle.dumps({k: v for k, v in key.__dict__.items() if k not in _TRANSIENT})


def _durable_path(key: Any) -> str:
    buffer = key._value_buffer
    buffer.sync()
    return buffer.name


def _object_write(bucket: str, name: str, key: Any) -> tuple[str, tuple[Any, ...]]:
    if key is None or not isinstance(key._value_buffer, ObjectFile):
        return ("DELETE FROM objects WHERE bucket = ? AND object_key = ?", (bucket, name))
    return (
        "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
        (bucket, name, _durable_path(key), _key_state(key)),
    )


def _multipart_writes(
    store: Store, bucket_name: str, bucket: Any, named: list[str]
) -> list[tuple[str, tuple[Any, ...]]]:
    """Rows for the multipart uploads this request may have begun, changed or ended."""
    known = store.multipart_ids.setdefault(bucket_name, set())
    current = set(bucket.multiparts)
    writes = []
    for upload_id in (current - known) | (set(named) & current):
        upload = bucket.multiparts[upload_id]
        state = {k: v for k, v in upload.__dict__.items() if k != "parts"}
        parts = {n: (_durable_path(p), _key_state(p)) for n, p in upload.parts.items()}
        writes.append(
            (
                "INSERT OR REPLACE INTO multiparts VALUES (?, ?, ?)",
                (bucket_name, upload_id, pickle.dumps((state, parts))),
            )
        )
    for upload_id in known - current:
        writes.append(
            (
                "DELETE FROM multiparts WHERE bucket = ? AND upload_id = ?",
                (bucket_name, upload_id),
            )
        )
    store.multipart_ids[bucket_name] = current
    return writes


def _bucket_deleted(store: Store, bucket: str) -> list[tuple[str, tuple[Any, ...]]]:
    store.multipart_ids.pop(bucket, None)
    return [
        (f"DELETE FROM {table} WHERE {column} = ?", (bucket,))
        for table, column in (("buckets", "name"), ("objects", "bucket"), ("multiparts", "bucket"))
    ]


def _fake_key(path: str, state: bytes) -> Any:
    """A FakeKey from its stored state, reading its bytes from `path` (no __init__: that
    would copy the bytes)."""
    from moto.s3.models import FakeKey

    key = FakeKey.__new__(FakeKey)
    key.__dict__.update(pickle.loads(state))
    buffer = ObjectFile.__new__(ObjectFile)
    buffer.name, buffer.position, buffer.closed, buffer.synced = path, 0, False, True
    buffer.named = True
    key._value_buffer = buffer
    key.lock = threading.Lock()
    key.multipart = None
    key.disposed = False
    return key


def restore_s3(store: Store, backend: Any) -> int:
    """Recreate buckets, objects and multipart uploads; delete files nothing names (left by
    requests cut off before their commit). Returns the number of objects."""
    from moto.s3.models import FakeMultipart

    for name, region in store.db.execute("SELECT name, region FROM buckets").fetchall():
        if name not in backend.buckets:
            backend.create_bucket(name, region)
    named: set[str] = set()
    count = 0
    for bucket_name, object_key, path, state in store.db.execute("SELECT * FROM objects"):
        bucket = backend.buckets.get(bucket_name)
        if bucket is None or not os.path.exists(path):
            continue
        bucket.keys[object_key] = _fake_key(path, state)
        named.add(path)
        count += 1
    for bucket_name, upload_id, raw in store.db.execute("SELECT * FROM multiparts"):
        bucket = backend.buckets.get(bucket_name)
        if bucket is None:
            continue
        state, parts = pickle.loads(raw)
        upload = FakeMultipart.__new__(FakeMultipart)
        upload.__dict__.update(state)
        upload.parts = {n: _fake_key(path, part) for n, (path, part) in parts.items()}
        named.update(path for path, _ in parts.values())
        bucket.multiparts[upload_id] = upload
        store.multipart_ids.setdefault(bucket_name, set()).add(upload_id)
    for path in store.objects.glob("*/*"):
        if str(path) not in named:
            path.unlink(missing_ok=True)
    return count


def restore(store: Store, region: str) -> tuple[int, int]:
    """Load the stored state into the running moto (after the tables and bucket exist):
    (items, objects) restored."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends

    with moto_patches.LOCK:
        items = restore_dynamodb(store, dynamodb_backends[DEFAULT_ACCOUNT_ID][region])
        objects = restore_s3(store, s3_backends[DEFAULT_ACCOUNT_ID]["aws"])
    return items, objects
