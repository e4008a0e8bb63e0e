"""Pull-through cache organizations: an organization mirrors an upstream registry on demand
(docs/proxycache.md). Pulls hook in through `config_for`; pushes are refused.

Kept light: request handlers import this module on every manifest and blob miss.
"""

from __future__ import annotations

from chalicelib.errors import Denied
from chalicelib.storage import proxycache as store
from chalicelib.storage.proxycache import CacheConfig


def config_for(repository: str) -> CacheConfig | None:
    """The cache configuration of the repository's organization, None for ordinary ones
    (every manifest and blob miss asks: the answer, even None, is held in the container's
    read cache, storage/cache.py)."""
    namespace, slash, _ = repository.partition("/")
    return store.get(namespace) if slash else None


def refuse_push(repository: str) -> None:
    """A cache organization holds what its upstream has, nothing else."""
    cache = config_for(repository)
    if cache is not None:
        raise Denied(
            {"repository": repository, "upstream": cache.upstream_registry},
            message=f"{repository.split('/', 1)[0]} is a pull-through cache of "
            f"{cache.upstream_registry}: it is read-only; push to the upstream instead",
        )
