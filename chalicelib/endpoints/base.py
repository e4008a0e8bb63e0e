"""end-1: `GET /v2/`, the check that the registry implements distribution-spec v1.1.

It has no repository in its path, so it is a registry-level route (routes.py): with auth on,
dispatch answers the challenge to a caller without a valid token and logs it like any other
request; a valid token of any scope gets the 200.
"""

from __future__ import annotations

from chalice import Response

from chalicelib.endpoints.http import RegistryRequest, json_response


def version(request: RegistryRequest) -> Response:
    return json_response({})
