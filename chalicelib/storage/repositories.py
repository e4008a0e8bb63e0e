"""Repository records: created by the first manifest push, listed by `_catalog`."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist

from chalicelib.storage.models import CATALOG_PARTITION, RepositoryModel


def exists(name: str) -> bool:
    try:
        RepositoryModel.get(name, attributes_to_get=["name"])
    except DoesNotExist:
        return False
    return True


def list_names(after: str | None, limit: int) -> tuple[list[str], bool]:
    """Up to `limit` names after `after` in lexical order; True when more remain."""
    start = None
    if after:
        start = {
            "listing": {"S": CATALOG_PARTITION},
            "name": {"S": after},
        }
    query = RepositoryModel.catalog.query(
        CATALOG_PARTITION, limit=limit + 1, page_size=limit + 1, last_evaluated_key=start
    )
    names = []
    for item in query:
        names.append(item.name)
        if len(names) > limit:
            break
    return names[:limit], len(names) > limit
