"""`GET /v2/_catalog`: repository names, paged like the tags list."""

from __future__ import annotations

from chalice import Response

from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.endpoints.pagination import next_link, page_size
from chalicelib.registry.names import validate_name
from chalicelib.storage import repositories


def list_repositories(request: RegistryRequest) -> Response:
    n = page_size(request)
    last = request.param("last")
    if last:
        validate_name(last)
    names, more = repositories.list_names(last, n) if n else ([], False)
    headers = next_link("/v2/_catalog", n, names[-1]) if more else {}
    return json_response({"repositories": names}, headers=headers)
