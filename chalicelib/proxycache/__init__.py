"""Pull-through cache organizations: an organization mirrors an upstream registry on demand
(docs/proxycache.md). Pulls hook in through `config_for`; pushes are refused.

Kept light: request handlers import this module on every manifest and blob miss.
"""

from __future__ import annotations

import threading
import time

from chalicelib.errors import Denied
from chalicelib.storage import proxycache as store
from chalicelib.storage.proxycache import CacheConfig

# Which namespaces are caches, remembered per container for a few seconds: every manifest
# pull asks, and without this each would pay a GetItem.
MEMO_SECONDS = 10.0
_memo: dict[str, tuple[CacheConfig | None, float]] = {}
_lock = threading.Lock()


def config_for(repository: str) -> CacheConfig | None:
    """The cache configuration of the repository's organization, None for ordinary ones."""
    namespace, slash, _ = repository.partition("/")
    if not slash:
        return None
    now = time.monotonic()
    with _lock:
        remembered = _memo.get(namespace)
    if remembered is not None and remembered[1] > now:
        return remembered[0]
    found = store.get(namespace)
    with _lock:
        if len(_memo) > 10_000:
            _memo.clear()
        _memo[namespace] = (found, now + MEMO_SECONDS)
    return found


def forget(namespace: str) -> None:
    """After this container changed the namespace's configuration."""
    with _lock:
        _memo.pop(namespace, None)


def refuse_push(repository: str) -> None:
    """A cache organization holds what its upstream has, nothing else."""
    cache = config_for(repository)
    if cache is not None:
        raise Denied(
            {"repository": repository, "upstream": cache.upstream_registry},
            message=f"{repository.split('/', 1)[0]} is a pull-through cache of "
            f"{cache.upstream_registry}: it is read-only; push to the upstream instead",
        )
