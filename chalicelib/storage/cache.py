"""Each container's short cache of hot reads, with a declared staleness bound.

DynamoDB serves one item at most 3,000 read units a second, and every item sharing a
partition key with an LSI at most that together; a tag pulled 10,000 times a second is one
item. So the reads every pull repeats are kept in the container for
STRATUS_READ_CACHE_SECONDS: each container then reads a hot item at most once per bound,
whatever the request rate (docs/scale.md has the numbers).

Cached, because a reader can take an answer up to the bound old (an eventually consistent
GetItem is already up to about a second old):
- a tag's item (pull by tag): a tag moved in another container is seen within the bound;
- a manifest by digest, a blob link, a large manifest's S3 bytes: content named by its
  digest never changes, but it may be deleted, and a pull may succeed up to the bound after
  a delete made in another container;
- a subject's referrers pages, a repository's existence, catalog pages;
- the grants, account and login-failure items a token request reads: a revoked grant or a
  changed password holds in other containers up to the bound, far less than the lifetime of
  the access tokens already issued.
Not cached: reads that decide a write (a retag's `current_digest`, the strongly consistent
reads of deletes), and misses of tags, manifests and blobs (a push is visible at once).

In its own container the cache is never stale: every AWS write this process makes, whoever
makes it (registry, cleanup, tests), drops what is cached for the partitions it touched
(calls.observers), and a read that raced such a write is not kept. Creating or deleting a
table or bucket (a new local stack, a test's fresh moto account) empties it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from chalicelib import clock, config
from chalicelib.storage import partitions
from chalicelib.storage.partitions import Partition

T = TypeVar("T")
ALL = "*"  # a partition key standing for the whole table: listings any write may change
MAX_BYTES = 64 * 1024 * 1024
# Partitions whose latest write is remembered, so a read racing it is not kept.
_REMEMBERED_WRITES = 4096


def dynamodb(table: str, key: str) -> Partition:
    return ("dynamodb", table, key)


def listing(table: str) -> Partition:
    """What a Query over a whole table or a global index reads: dropped by any write to it."""
    return ("dynamodb", table, ALL)


def s3(key: str) -> Partition:
    return ("s3", config.settings.bucket, key)


def item_size(item: Any) -> int:
    """Roughly what a cached item holds: its bytes attribute, if any, and some overhead."""
    body = getattr(item, "body", None)
    return 512 + (len(body) if isinstance(body, bytes) else 0)


class ReadCache:
    """Values by (partition, key), each kept for the bound after it was read, LRU by bytes."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Partition, Hashable], tuple[float, Any, int]] = (
            OrderedDict()
        )
        self._keys: dict[Partition, set[Hashable]] = {}
        self._bytes = 0
        self._writes = 0  # a sequence number per drop
        self._dropped: OrderedDict[Partition, int] = OrderedDict()
        self._floor = 0  # the latest sequence number forgotten from `_dropped`

    def read(
        self,
        partition: Partition,
        key: Hashable,
        load: Callable[[], T],
        *,
        size: int | Callable[[T], int] = 256,
        keep: Callable[[T], bool] | None = None,
    ) -> T:
        """The cached value if read within the bound, else `load()` (kept unless `keep`
        refuses it or a write to the partition happened meanwhile). Raises are not kept."""
        bound = config.settings.read_cache_seconds
        if bound <= 0:
            return load()
        now = clock.now().timestamp()
        with self._lock:
            found = self._entries.get((partition, key))
            if found is not None and now - found[0] < bound:
                self._entries.move_to_end((partition, key))
                value: T = found[1]
                return value
            started = self._writes
        value = load()
        if keep is not None and not keep(value):
            return value
        cost = size(value) if callable(size) else size
        with self._lock:
            if not self._written_since(partition, started):
                self._store((partition, key), now, value, cost)
        return value

    def _store(self, entry: tuple[Partition, Hashable], now: float, value: Any, cost: int) -> None:
        self._remove(entry)
        self._entries[entry] = (now, value, cost)
        self._keys.setdefault(entry[0], set()).add(entry[1])
        self._bytes += cost
        while self._bytes > self._max_bytes and self._entries:
            self._remove(next(iter(self._entries)))

    def read_many(
        self,
        entries: Sequence[tuple[Partition, Hashable]],
        load: Callable[[list[tuple[Partition, Hashable]]], dict[tuple[Partition, Hashable], Any]],
    ) -> dict[tuple[Partition, Hashable], Any]:
        """Several values, the missing ones loaded together (one BatchGetItem); an entry
        `load` does not answer is kept as None (a known absence)."""
        bound = config.settings.read_cache_seconds
        if bound <= 0:
            loaded = load(list(entries))
            return {entry: loaded.get(entry) for entry in entries}
        now = clock.now().timestamp()
        found: dict[tuple[Partition, Hashable], Any] = {}
        with self._lock:
            for entry in entries:
                hit = self._entries.get(entry)
                if hit is not None and now - hit[0] < bound:
                    found[entry] = hit[1]
            started = self._writes
        missing = [entry for entry in entries if entry not in found]
        if not missing:
            return found
        loaded = load(missing)
        with self._lock:
            for entry in missing:
                value = found[entry] = loaded.get(entry)
                if not self._written_since(entry[0], started):
                    self._store(entry, now, value, 512)
        return found

    def drop(self, written: Iterable[Partition]) -> None:
        """Forget what the partitions held, and the listings of their tables."""
        with self._lock:
            for partition in set(written):
                service, table, _ = partition
                for gone in (partition, (service, table, ALL)):
                    self._writes += 1
                    self._dropped[gone] = self._writes
                    self._dropped.move_to_end(gone)
                    for key in list(self._keys.get(gone, ())):
                        self._remove((gone, key))
            while len(self._dropped) > _REMEMBERED_WRITES:
                _, sequence = self._dropped.popitem(last=False)
                self._floor = max(self._floor, sequence)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._keys.clear()
            self._bytes = 0
            self._writes += 1
            self._floor = self._writes
            self._dropped.clear()

    def _written_since(self, partition: Partition, started: int) -> bool:
        service, table, _ = partition
        latest = max(
            self._dropped.get(partition, self._floor),
            self._dropped.get((service, table, ALL), self._floor),
        )
        return latest > started

    def _remove(self, entry: tuple[Partition, Hashable]) -> None:
        found = self._entries.pop(entry, None)
        if found is None:
            return
        self._bytes -= found[2]
        keys = self._keys.get(entry[0])
        if keys is not None:
            keys.discard(entry[1])
            if not keys:
                del self._keys[entry[0]]


_process = ReadCache()
_thread = threading.local()
_observing = threading.Lock()
_observed = False


def current() -> ReadCache:
    """This container's cache (a benchmark gives each simulated container its own)."""
    found: ReadCache | None = getattr(_thread, "cache", None)
    return found if found is not None else _process


def use(cache: ReadCache | None) -> None:
    """Serve this thread from `cache` (None: the process's): one simulated container."""
    _thread.cache = cache


def _observe(service: str, operation: str, params: dict[str, Any]) -> None:
    if operation in partitions.RESETS:
        current().clear()
        _process.clear()
        return
    written = partitions.written(service, operation, params)
    if written:
        current().drop(written)


def _watch_writes() -> None:
    global _observed
    if _observed:
        return
    with _observing:
        if not _observed:
            from chalicelib.storage import calls

            calls.install(origins=False)
            calls.observers.append(_observe)
            _observed = True


def read(
    partition: Partition,
    key: Hashable,
    load: Callable[[], T],
    *,
    size: int | Callable[[T], int] = 256,
    keep: Callable[[T], bool] | None = None,
) -> T:
    """`load()`, or what it answered within the bound (see the module's docstring)."""
    _watch_writes()
    return current().read(partition, key, load, size=size, keep=keep)


def read_many(
    entries: Sequence[tuple[Partition, Hashable]],
    load: Callable[[list[tuple[Partition, Hashable]]], dict[tuple[Partition, Hashable], Any]],
) -> dict[tuple[Partition, Hashable], Any]:
    """Several values at once, the uncached ones by one `load` (see ReadCache.read_many)."""
    _watch_writes()
    return current().read_many(entries, load)


def clear() -> None:
    current().clear()
