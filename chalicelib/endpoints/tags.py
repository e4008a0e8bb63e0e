"""Tags list: end-8a and end-8b, paged with `n`, `last` and a `Link` header."""

from __future__ import annotations

from chalice import Response

from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.endpoints.pagination import next_link, page_size
from chalicelib.errors import NameUnknown
from chalicelib.registry.names import validate_tag
from chalicelib.storage import repositories, tags


def list_tags(request: RegistryRequest, name: str) -> Response:
    n = page_size(request)
    last = request.param("last")
    if last:
        validate_tag(last)
    names, more = tags.names(name, last, n) if n else ([], False)
    # An empty page costs one more read, to tell an empty repository from an unknown one.
    if not names and not repositories.exists(name):
        raise NameUnknown({"name": name})
    headers = next_link(f"/v2/{name}/tags/list", n, names[-1]) if more else {}
    return json_response({"name": name, "tags": names}, headers=headers)
