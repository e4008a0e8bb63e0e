"""Stratus: the Chalice app. Wiring only; everything else lives in chalicelib/."""

import os
import sys
from typing import Any

from chalice import Rate, Response
from chalice.app import CloudWatchEvent

from chalicelib.endpoints import routes
from chalicelib.endpoints.http import RegistryRequest, StratusApp

app = StratusApp(app_name="stratus", configure_logs=False)  # logs: chalicelib/observability.py

if "chalice.cli" in sys.modules:
    # `chalice deploy`/`package` is reading the app to build API Gateway: every request body
    # must reach Lambda as bytes (blob chunks come with any Content-Type, or none), so the
    # API's binary media types are `*/*`. At run time Chalice keeps its default list: with
    # `*/*` it would base64 every response and refuse clients that send no Accept header.
    app.api.binary_types = ["*/*"]
else:
    # Every response body is text (JSON, or a manifest: UTF-8 JSON, checked on push), which
    # API Gateway passes through unchanged. Chalice's default binary list would refuse, or
    # fail to encode, a manifest pushed with a media type on it (image/png, application/zip).
    app.api.binary_types = []

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _request() -> RegistryRequest:
    request = app.current_request
    return RegistryRequest.from_event(request.to_original_event(), request.raw_body)


@app.route("/v2", methods=METHODS, content_types=["*/*"])
def version_check() -> Response:
    """end-1: the registry implements distribution-spec v1.1 (and challenges, with auth on);
    a registry-level route of the dispatch table (chalicelib/endpoints/base.py)."""
    return routes.dispatch(_request())


@app.route("/v2/{proxy+}", methods=METHODS, content_types=["*/*"])
def registry() -> Response:
    """end-2 ... end-13: dispatched by the table in chalicelib/endpoints/routes.py."""
    return routes.dispatch(_request())


@app.route("/api/v1/{proxy+}", methods=METHODS, content_types=["*/*"])
def management() -> Response:
    """Quay-style management API: accounts, permissions, tags (routes.MANAGEMENT_ROUTES)."""
    return routes.dispatch(_request(), routes.MANAGEMENT_ROUTES)


@app.route("/v1/{proxy+}", methods=METHODS, content_types=["*/*"])
def docker_v1() -> Response:
    """Docker V1 pulls of V2 images, read-only (chalicelib/endpoints/v1.py)."""
    return routes.dispatch(_request(), routes.V1_ROUTES)


# Read when `chalice deploy` imports this file: export them there (see README, Expiry).
CLEANUP_RATE_MINUTES = int(os.environ.get("STRATUS_CLEANUP_RATE_MINUTES", "60"))


@app.schedule(Rate(CLEANUP_RATE_MINUTES, unit=Rate.MINUTES), name="cleanup")
def cleanup(event: CloudWatchEvent) -> dict[str, Any]:
    """Expire tags, abort abandoned uploads, collect garbage (chalicelib/cleanup.py)."""
    from chalicelib import cleanup as job  # imported here: no weight on request cold starts

    return job.handle_schedule()


@app.lambda_function(name="verify_upload")
def verify_upload(event: dict[str, str], context: Any) -> dict[str, str]:
    """Verifies a large direct upload asynchronously (chalicelib/storage/direct.py)."""
    from chalicelib.storage import direct

    direct.verify_later(event["repository"], event["upload_id"])
    return {"upload_id": event["upload_id"]}
