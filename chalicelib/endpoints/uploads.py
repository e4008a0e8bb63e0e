"""Blob uploads: end-4a/4b/11 (POST), end-5 (PATCH), end-6 (PUT), end-13 (GET), DELETE."""

from __future__ import annotations

import re

from chalice import Response

from chalicelib import config, proxycache
from chalicelib.auth.access import may_pull
from chalicelib.endpoints.http import RegistryRequest, empty
from chalicelib.errors import BlobUploadInvalid, DigestInvalid, RangeNotSatisfiable
from chalicelib.registry.digests import Digest, parse_supported
from chalicelib.registry.names import validate_name
from chalicelib.storage import blobs
from chalicelib.storage import uploads as sessions
from chalicelib.storage.models import UploadModel

# The spec's form is `<start>-<end>`; some clients send the RFC 9110 `bytes s-e/total` form.
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,18})-([0-9]{1,18})(?:/(?:[0-9]{1,18}|\*))?")


def digest_param(request: RegistryRequest) -> Digest:
    value = request.param("digest")
    if not value:
        raise DigestInvalid(message="the digest query parameter is required")
    return parse_supported(value)


def _created(name: str, blob: blobs.Blob) -> Response:
    return empty(
        201,
        {"Location": f"/v2/{name}/blobs/{blob.digest}", "Docker-Content-Digest": blob.digest},
    )


def _session_headers(session: UploadModel) -> dict[str, str]:
    headers = {
        "Location": sessions.location(session),
        "Range": sessions.range_header(session),
        "Docker-Upload-UUID": session.upload_id,
    }
    # Chunks of any size work (small ones are merged into S3 parts), but chunks of at least
    # an S3 part save the registry re-reading its buffer. The maximum is the stage's limit.
    limit = config.settings.max_request_bytes
    headers["OCI-Chunk-Min-Length"] = str(min(sessions.PART_MIN, limit or sessions.PART_MIN))
    if limit:
        headers["OCI-Chunk-Max-Length"] = str(limit)
    return headers


def _chunk_start(request: RegistryRequest) -> int | None:
    """Where the chunk claims to start; None when the client sent no Content-Range."""
    header = request.header("content-range")
    if header is None:
        return None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise BlobUploadInvalid({"content_range": header}, message="malformed Content-Range")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start or end - start + 1 != len(request.body):
        raise RangeNotSatisfiable(
            {"content_range": header, "body_length": len(request.body)},
            message="Content-Range does not match the body",
        )
    return start


def _mount(
    request: RegistryRequest, name: str, digest: Digest, source: str | None
) -> blobs.Blob | None:
    """Link a blob the caller can already read: `from` if its token may pull there, then
    (with auth off only) any holder. Otherwise None: an ordinary upload, as the spec allows."""
    target = str(digest)
    if source is not None and may_pull(request, validate_name(source)):
        found = blobs.get_link(source, target)
        if found is not None:
            return _link_or_none(name, found)
    existing = blobs.get_link(name, target)
    if existing is not None:
        return existing
    if request.access is not None:
        return None  # knowing a digest must not open a private repository's blobs
    for holder in blobs.repositories_holding(target, limit=1):
        found = blobs.get_link(holder, target)
        if found is not None:
            return _link_or_none(name, found)
    return None


def _link_or_none(name: str, found: blobs.Blob) -> blobs.Blob | None:
    """Mounting never waits: a blob being collected just means an ordinary upload."""
    try:
        return blobs.link(name, found.digest, found.size)
    except blobs.BlobBeingCollected:
        return None


def start(request: RegistryRequest, name: str) -> Response:
    proxycache.refuse_push(name)
    mount = request.param("mount")
    if mount is not None:
        mounted = _mount(request, name, parse_supported(mount), request.param("from"))
        if mounted is not None:
            return _created(name, mounted)
    elif request.param("digest") is not None:
        blob = sessions.put_monolithic(name, request.body, digest_param(request))
        return _created(name, blob)
    session = sessions.start(name)
    return empty(202, _session_headers(session))


def status(request: RegistryRequest, name: str, upload_id: str) -> Response:
    session = sessions.load_chunked(name, upload_id)
    return empty(204, _session_headers(session))


def patch(request: RegistryRequest, name: str, upload_id: str) -> Response:
    session = sessions.load_chunked(name, upload_id)
    session = sessions.append(session, request.body, _chunk_start(request))
    return empty(202, _session_headers(session))


def finish(request: RegistryRequest, name: str, upload_id: str) -> Response:
    digest = digest_param(request)
    session = sessions.load_chunked(name, upload_id)
    start_at = _chunk_start(request) if request.body else None
    if start_at is not None and start_at != int(session.offset):
        raise RangeNotSatisfiable({"expected_start": int(session.offset), "got_start": start_at})
    blob = sessions.finish(session, request.body, digest)
    return _created(name, blob)


def cancel(request: RegistryRequest, name: str, upload_id: str) -> Response:
    sessions.cancel(sessions.load_chunked(name, upload_id))
    return empty(204)
