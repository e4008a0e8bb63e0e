"""A moto server in a process of its own, for tests that deploy to it or run Lambda's package
against it: `python -m tests.moto_server PORT`, or `tests.servers.start_moto()`.

A process of its own because moto's backends are global to a process: an in-process server
would share its state with every `mock_aws` and other server of the test session.

moto 5.2's ImportRestApi reads `info.description` unconditionally (a 500 without it) and
imports only OpenAPI 3 documents, while Chalice sends Swagger 2.0 without a description,
which API Gateway itself imports as is. The paths and Lambda integrations moto reads are
written the same way in both, so this server relabels Chalice's document before importing
it: the patch lives here, not in the app.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def as_moto_imports(api_doc: dict[str, Any]) -> dict[str, Any]:
    """Chalice's Swagger 2.0 document, labelled OpenAPI 3 and given a description."""
    doc = {key: value for key, value in api_doc.items() if key != "swagger"}
    if "swagger" in api_doc:
        doc["openapi"] = "3.0.1"
    doc["info"] = {"description": "", **api_doc.get("info", {})}
    return doc


def patch_api_gateway_import() -> None:
    from moto.apigateway.models import APIGatewayBackend

    import_rest_api = APIGatewayBackend.import_rest_api
    put_rest_api = APIGatewayBackend.put_rest_api

    def importing(self: Any, api_doc: dict, fail_on_warnings: bool) -> Any:
        return import_rest_api(self, as_moto_imports(api_doc), fail_on_warnings)

    def putting(self: Any, api_id: str, api_doc: dict, fail_on_warnings: bool, mode="merge"):
        return put_rest_api(self, api_id, as_moto_imports(api_doc), fail_on_warnings, mode)

    APIGatewayBackend.import_rest_api = importing  # type: ignore[method-assign]
    APIGatewayBackend.put_rest_api = putting  # type: ignore[method-assign]


def main(port: int) -> None:
    from moto.server import ThreadedMotoServer

    patch_api_gateway_import()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(int(sys.argv[1]))
