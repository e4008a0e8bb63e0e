"""Stratus: the Chalice app. Wiring only; everything else lives in chalicelib/."""

import os
import sys
from typing import Any

from chalice import Rate, Response
from chalice.app import CloudWatchEvent

from chalicelib import config
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


@app.route("/", methods=["GET"])
def console_page() -> Response:
    """The web console (chalicelib/endpoints/console.py), imported only when asked for."""
    from chalicelib.endpoints import console

    return console.index()


@app.route("/console/{proxy+}", methods=["GET"])
def console_asset() -> Response:
    """The console's content-hashed, immutable assets."""
    from chalicelib.endpoints import console

    return console.asset(app.current_request.uri_params["proxy"])


# Read when `chalice deploy` imports this file: export them there (see README, Expiry).
CLEANUP_RATE_MINUTES = int(os.environ.get("STRATUS_CLEANUP_RATE_MINUTES", "60"))


@app.schedule(Rate(CLEANUP_RATE_MINUTES, unit=Rate.MINUTES), name="cleanup")
def cleanup(event: CloudWatchEvent) -> dict[str, Any]:
    """Expire tags, abort abandoned uploads, collect what changed (chalicelib/cleanup/)."""
    from chalicelib import cleanup as job  # imported here: no weight on request cold starts

    return job.handle_schedule()


# The streams and the segment queue, from the infra stack: infra/deploy.py exports them to
# `chalice deploy`. The placeholders let `chalice package` and Lambda import this file.
TAGS_STREAM = os.environ.get("STRATUS_TAGS_STREAM_ARN") or (
    "arn:aws:dynamodb:us-east-1:000000000000:table/stratus-tags/stream/unset"
)
MANIFESTS_STREAM = os.environ.get("STRATUS_MANIFESTS_STREAM_ARN") or (
    "arn:aws:dynamodb:us-east-1:000000000000:table/stratus-manifests/stream/unset"
)
GC_SEGMENT_QUEUE = os.environ.get("STRATUS_GC_SEGMENT_QUEUE_NAME") or "stratus-gc-segments"
WEBHOOK_QUEUE = os.environ.get("STRATUS_WEBHOOK_QUEUE_NAME") or "stratus-webhooks"


def _changes(event: Any) -> dict[str, Any]:
    """A batch of stream records to every subscriber (chalicelib/changes.py). A failed
    record fails the batch, which Lambda delivers again (subscribers are idempotent)."""
    from chalicelib import changes

    answer = changes.handle_stream_event(event.to_dict())
    if answer["batchItemFailures"]:
        raise RuntimeError(f"stream batch failed at {answer['batchItemFailures'][0]}")
    return answer


@app.on_dynamodb_record(
    stream_arn=TAGS_STREAM, starting_position="TRIM_HORIZON", name="tag_changes"
)
def tag_changes(event: Any) -> dict[str, Any]:
    return _changes(event)


@app.on_dynamodb_record(
    stream_arn=MANIFESTS_STREAM, starting_position="TRIM_HORIZON", name="manifest_changes"
)
def manifest_changes(event: Any) -> dict[str, Any]:
    return _changes(event)


AUDIT_STREAM = os.environ.get("STRATUS_AUDIT_STREAM_ARN") or (
    "arn:aws:dynamodb:us-east-1:000000000000:table/stratus-audit/stream/unset"
)

if config.settings.audit_export:  # off: no function, no mapping, no cost (docs/events.md)

    @app.on_dynamodb_record(
        stream_arn=AUDIT_STREAM, starting_position="TRIM_HORIZON", name="audit_export"
    )
    def audit_export(event: Any) -> dict[str, Any]:
        """New audit entries to S3 as JSON lines (chalicelib/events/audit_export.py); a
        failed batch comes again and rewrites the same objects."""
        from chalicelib.events import audit_export as exporter

        answer = exporter.handle_stream_event(event.to_dict())
        if answer["batchItemFailures"]:
            raise RuntimeError("audit export failed; the batch comes again")
        return answer


@app.on_sqs_message(queue=GC_SEGMENT_QUEUE, batch_size=1, name="gc_segment")
def gc_segment(event: Any) -> dict[str, Any]:
    """One segment of the garbage collector's backstop (chalicelib/cleanup/backstop.py)."""
    from chalicelib import cleanup as job

    return job.handle_segment(event.to_dict(), event.context)


@app.on_sqs_message(queue=WEBHOOK_QUEUE, batch_size=10, name="webhooks")
def webhooks(event: Any) -> None:
    """Webhook deliveries, retried with backoff, dead-lettered (chalicelib/events/deliveries.py)."""
    from chalicelib.events import deliveries

    deliveries.handle_sqs_event(event)


@app.lambda_function(name="verify_upload")
def verify_upload(event: dict[str, str], context: Any) -> dict[str, str]:
    """Verifies a large direct upload asynchronously (chalicelib/storage/direct.py)."""
    from chalicelib.storage import direct

    direct.verify_later(event["repository"], event["upload_id"])
    return {"upload_id": event["upload_id"]}


@app.lambda_function(name="proxycache_copy")
def proxycache_copy(event: dict[str, str], context: Any) -> dict[str, str]:
    """Copies an upstream blob into S3 for a pull-through cache (chalicelib/proxycache/)."""
    from chalicelib.proxycache import blobs

    blobs.copy(event["repository"], event["digest"])
    return {"digest": event["digest"]}
