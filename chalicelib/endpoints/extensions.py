"""Extensions (distribution-spec `_oci.md`): discovery, and `_stratus` direct uploads.

`_stratus/direct/uploads` lets a client put a blob's parts straight into S3 with presigned
URLs, so layers of any size bypass the request-size limit of API Gateway and Lambda:

    POST   /v2/<name>/_stratus/direct/uploads/?size=<bytes>[&part_size=<bytes>]
           201 {"upload_id", "part_size", "part_count", "location"}
    GET    <location>?parts=<first>-<last>   200 {"parts": [{"number", "url"}]} (<= 1000)
    PUT    <location>?digest=<digest>  body {"parts": [{"number", "etag"}]}
           201 Location: /v2/<name>/blobs/<digest>  (after the registry verified the digest)
           202 for blobs too large to verify within 29 s: poll GET <location> until 201
           (or the error, e.g. 400 DIGEST_INVALID)
    DELETE <location>                          204
"""

from __future__ import annotations

import json
import re

from chalice import Response

from chalicelib import config, proxycache
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.endpoints.uploads import digest_param
from chalicelib.errors import BadQuery, BlobUploadInvalid, NotFound
from chalicelib.storage import direct
from chalicelib.storage import uploads as sessions
from chalicelib.storage.models import UploadModel

DOCS = "docs/uploads.md#direct-uploads"  # in this project's repository
_RANGE = re.compile(r"([0-9]{1,9})-([0-9]{1,9})")


def _extensions(name: str | None) -> list[dict[str, object]]:
    if not config.settings.direct_uploads:
        return []
    base = f"/v2/{name}" if name else "/v2/<name>"
    return [
        {
            "name": "_stratus",
            "description": "direct-to-S3 blob uploads with presigned part URLs",
            "url": DOCS,
            "endpoints": [f"{base}/_stratus/direct/uploads/"],
        }
    ]


def discover_registry(request: RegistryRequest) -> Response:
    return json_response({"extensions": _extensions(None)})


def discover(request: RegistryRequest, name: str) -> Response:
    return json_response({"extensions": _extensions(name)})


def _enabled() -> None:
    if not config.settings.direct_uploads:
        raise NotFound({"extension": "_stratus direct uploads are disabled"})


def _int_param(request: RegistryRequest, key: str, *, required: bool) -> int | None:
    value = request.count_param(key)
    if value is None and required:
        raise BadQuery({key: request.param(key)}, message=f"{key} is required")
    return value


def _location(session: UploadModel) -> str:
    return f"/v2/{session.repository}/_stratus/direct/uploads/{session.upload_id}"


def start(request: RegistryRequest, name: str) -> Response:
    _enabled()
    proxycache.refuse_push(name)
    size = _int_param(request, "size", required=True)
    part_size = _int_param(request, "part_size", required=False)
    session = direct.start(name, size or 0, part_size)
    return json_response(
        {
            "upload_id": session.upload_id,
            "part_size": int(session.part_size),
            "part_count": direct.part_count(session),
            "location": _location(session),
        },
        201,
        {"Location": _location(session)},
    )


def _status(session: UploadModel) -> Response:
    """A completed upload's outcome, for a client polling its location."""
    if session.state == "verifying":
        return json_response({"state": "verifying"}, 202, {"Retry-After": "2"})
    if session.state == "done":
        return empty(
            201,
            {
                "Location": f"/v2/{session.repository}/blobs/{session.outcome}",
                "Docker-Content-Digest": session.outcome,
            },
        )
    failure = json.loads(session.outcome)
    return json_response({"errors": failure["errors"]}, failure["status"])


def parts(request: RegistryRequest, name: str, upload_id: str) -> Response:
    """Part URLs while parts are being sent; the verification's outcome afterwards."""
    _enabled()
    session = direct.load(name, upload_id)
    state: str | None = session.state
    if state is not None:
        return _status(session)
    wanted = request.param("parts") or f"1-{min(direct.part_count(session), 1000)}"
    match = _RANGE.fullmatch(wanted)
    if match is None:
        raise BadQuery({"parts": wanted}, message="parts must be <first>-<last>")
    urls = direct.part_urls(session, int(match.group(1)), int(match.group(2)))
    return json_response({"part_size": int(session.part_size), "parts": urls})


def complete(request: RegistryRequest, name: str, upload_id: str) -> Response:
    _enabled()
    digest = digest_param(request)
    session = direct.load(name, upload_id)
    try:
        listed = json.loads(request.body or b"{}").get("parts")
    except (ValueError, AttributeError, RecursionError):
        listed = None
    if not isinstance(listed, list) or not all(isinstance(p, dict) for p in listed):
        raise BlobUploadInvalid(message='body must be {"parts": [{"number", "etag"}, ...]}')
    blob = direct.complete(session, listed, digest)
    if blob is None:
        # Too large to verify within API Gateway's 29 s: poll the location for the outcome.
        location = _location(session)
        return json_response(
            {"state": "verifying", "location": location},
            202,
            {"Location": location, "Retry-After": "2"},
        )
    return empty(
        201,
        {"Location": f"/v2/{name}/blobs/{blob.digest}", "Docker-Content-Digest": blob.digest},
    )


def cancel(request: RegistryRequest, name: str, upload_id: str) -> Response:
    _enabled()
    sessions.cancel(direct.load(name, upload_id))
    return empty(204)
