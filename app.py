"""Stratus: the Chalice app. Wiring only; everything else lives in chalicelib/."""

from chalicelib.endpoints import routes
from chalicelib.endpoints.http import (
    API_VERSION_HEADER,
    RegistryRequest,
    StratusApp,
    json_response,
)

app = StratusApp(app_name="stratus")

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@app.route("/v2", methods=["GET"], content_types=["*/*"])
def version_check():
    """end-1: the registry implements distribution-spec v1.1."""
    return json_response({}, headers=API_VERSION_HEADER)


@app.route("/v2/{proxy+}", methods=METHODS, content_types=["*/*"])
def registry():
    """end-2 ... end-13: dispatched by the table in chalicelib/endpoints/routes.py."""
    request = app.current_request
    return routes.dispatch(
        RegistryRequest.from_event(request.to_original_event(), request.raw_body)
    )
