"""Repository records: created by the first manifest push, listed by `_catalog`.

The `catalog` index is sharded: a repository is listed under "catalog/<shard>", its
name's hash modulo CATALOG_SHARDS, so creating repositories spreads over that many index
partitions instead of one (each takes 1,000 writes a second). `_catalog` merges the shards'
name-ordered Queries into one ordered page, so `n` and `last` mean what the spec says.
Stages made before the shards list some repositories under the single old partition
"catalog"; it is merged in as one more shard until `python -m chalicelib.storage.repositories
migrate-catalog` moves them (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import heapq
import sys
from collections.abc import Iterator
from itertools import islice

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.storage import cache
from chalicelib.storage.models import CATALOG_PARTITION, RepositoryModel

CATALOG_SHARDS = 16
LISTINGS = (CATALOG_PARTITION, *(f"{CATALOG_PARTITION}/{n:02d}" for n in range(CATALOG_SHARDS)))


def listing_for(name: str) -> str:
    """The catalog index partition that lists `name`."""
    shard = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % CATALOG_SHARDS
    return f"{CATALOG_PARTITION}/{shard:02d}"


def exists(name: str) -> bool:
    """Repositories are never deleted, so a found one is kept for the bound (cache.py)."""
    return cache.read(
        cache.dynamodb(RepositoryModel.Meta.table_name, name),
        "exists",
        lambda: _read_exists(name),
        keep=bool,
    )


def _read_exists(name: str) -> bool:
    try:
        RepositoryModel.get(name, attributes_to_get=["name"])
    except DoesNotExist:
        return False
    return True


def list_names(after: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to `limit` names after `after` in lexical order; True when more remain."""
    return cache.read(
        cache.listing(RepositoryModel.Meta.table_name),
        ("catalog", after, limit),
        lambda: _merged_page(after, limit),
        size=lambda page: 256 + 64 * len(page[0]),
    )


def _merged_page(after: str | None, limit: int) -> tuple[list[str], bool]:
    # Each shard holds about 1/CATALOG_SHARDS of a page; a shard read past its first page
    # fetches more on demand as the merge consumes it.
    page = max(2, (limit + 1) // CATALOG_SHARDS + 2)
    shards = [_shard_names(listing, after, page) for listing in LISTINGS]
    names = list(islice(heapq.merge(*shards), limit + 1))
    return names[:limit], len(names) > limit


def _shard_names(listing: str, after: str | None, page: int) -> Iterator[str]:
    condition = RepositoryModel.name > after if after else None
    query = RepositoryModel.catalog.query(listing, condition, page_size=page)
    for item in query:
        yield item.name


def in_namespace(namespace: str) -> list[str]:
    """The namespace's repositories in name order: one prefix Query per catalog shard (a
    management read, uncached)."""
    prefix = RepositoryModel.name.startswith(namespace + "/")
    shards = [
        (item.name for item in RepositoryModel.catalog.query(listing, prefix))
        for listing in LISTINGS
    ]
    return list(heapq.merge(*shards))


def migrate_catalog() -> int:
    """Move repositories listed under the old single partition to their shards; how many
    moved. Safe to rerun and to run while the registry serves (each move is conditional)."""
    moved = 0
    for item in RepositoryModel.catalog.query(CATALOG_PARTITION):
        try:
            RepositoryModel(item.name).update(
                actions=[RepositoryModel.listing.set(listing_for(item.name))],
                condition=RepositoryModel.listing == CATALOG_PARTITION,
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            continue
        moved += 1
    return moved


def main(argv: list[str]) -> int:
    if argv != ["migrate-catalog"]:
        print("usage: python -m chalicelib.storage.repositories migrate-catalog", file=sys.stderr)
        return 2
    print(f"moved {migrate_catalog()} repositories to the sharded catalog")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
