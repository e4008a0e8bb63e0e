"""Blobs: end-2 (GET/HEAD) and end-10 (DELETE).

GET answers 307 to a presigned S3 URL, so blob bytes never pass through Lambda. HEAD is
answered from our own metadata: a URL presigned for GET would fail a HEAD. A pull-through
cache's miss is answered by chalicelib/proxycache/blobs.py.
"""

from __future__ import annotations

from chalice import Response

from chalicelib import proxycache
from chalicelib.endpoints.http import RegistryRequest, empty
from chalicelib.errors import BlobUnknown
from chalicelib.registry.digests import is_supported, parse_digest
from chalicelib.storage import blobs


def _linked(name: str, digest: str) -> blobs.Blob:
    parsed = parse_digest(digest)
    # Nothing is stored under an algorithm the registry cannot verify, so nothing is served.
    blob = blobs.get_link(name, str(parsed)) if is_supported(parsed) else None
    if blob is None:
        raise BlobUnknown({"digest": digest})
    return blob


def head(request: RegistryRequest, name: str, digest: str) -> Response:
    try:
        blob = _linked(name, digest)
    except BlobUnknown:
        cache = proxycache.config_for(name)
        if cache is None:
            raise
        from chalicelib.proxycache import blobs as cached

        size = cached.size(cache, name, str(parse_digest(digest)))
        if size is None:
            raise
        return empty(
            200, {"Content-Length": str(size), "Docker-Content-Digest": str(parse_digest(digest))}
        )
    return empty(
        200,
        {
            "Content-Length": str(blob.size),
            "Docker-Content-Digest": blob.digest,
            "Accept-Ranges": "bytes",
        },
    )


def get(request: RegistryRequest, name: str, digest: str) -> Response:
    try:
        blob = _linked(name, digest)
    except BlobUnknown:
        cache = proxycache.config_for(name)
        if cache is None:
            raise
        from chalicelib.proxycache import blobs as cached  # a pull-through cache's miss

        parsed = str(parse_digest(digest))
        location = cached.location(cache, name, parsed)
        return empty(307, {"Location": location, "Docker-Content-Digest": parsed})
    return empty(
        307,
        {"Location": blobs.presigned_get_url(blob.digest), "Docker-Content-Digest": blob.digest},
    )


def delete(request: RegistryRequest, name: str, digest: str) -> Response:
    parsed = str(parse_digest(digest))
    if not blobs.unlink(name, parsed):
        raise BlobUnknown({"digest": digest})
    return empty(202, {"Docker-Content-Digest": parsed})
