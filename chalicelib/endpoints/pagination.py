"""`n`/`last` paging shared by the tags list (end-8b) and `_catalog`."""

from __future__ import annotations

from urllib.parse import urlencode

from chalicelib.endpoints.http import RegistryRequest

# Without `n`, or with a larger one, a page holds at most this many entries and says where
# the next one starts in a `Link` header, as the spec allows.
MAX_PAGE = 1000


def page_size(request: RegistryRequest) -> int:
    n = request.count_param("n")
    return MAX_PAGE if n is None else min(n, MAX_PAGE)


def next_link(path: str, n: int, last: str) -> dict[str, str]:
    return {"Link": f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'}
