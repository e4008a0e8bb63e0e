"""Blobs through the cache, with no byte through the request handler.

A pull of a blob the cache lacks starts a copy into S3 (the `proxycache_copy` Lambda,
invoked asynchronously; a thread in local mode) and answers 307 to a URL that serves the
bytes without our credentials. Which URL (docs/proxycache.md, "Redirects"):
1. the upstream serves the blob with no credentials at all (we sent none and got 200): its
   own blob URL, built from the configured upstream and the validated name and digest;
2. the upstream asks for a token or Basic credentials and answers our authenticated GET
   with a redirect to another host (a CDN or storage URL signed for this one blob): that
   Location, checked to be http(s), on another host than the registry, and free of our
   token; the token itself travels only in our request's Authorization header;
3. the upstream serves the bytes only with our credentials: nothing can be handed out, so
   the request waits (bounded) for the copy, then redirects to S3.
Later pulls find the blob linked and are redirected to S3 like any other blob.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import urllib3

from chalicelib import config
from chalicelib.errors import BlobUnknown, TooManyRequests
from chalicelib.proxycache.upstream import (
    Upstream,
    UpstreamError,
    _http,
    check_address,
)
from chalicelib.storage import aws, blobs
from chalicelib.storage import proxycache as store
from chalicelib.storage.proxycache import CacheConfig

if TYPE_CHECKING:
    from types_boto3_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger("stratus.proxycache")
COPY_SECONDS = 900  # the copy Lambda's timeout: a claim older than this was lost
FAILED_SECONDS = 60  # a failed copy is not retried sooner (no storm on a bad upstream)
SMALL = 8 * 1024 * 1024  # read whole below this; multipart above
PART = 64 * 1024 * 1024
POLL = 0.25


def location(cache: CacheConfig, name: str, digest: str) -> str:
    """Where the client gets a blob the cache lacks (see the module's rules)."""
    _refuse_failed(name, digest)
    start_copy(name, digest)
    upstream = Upstream(cache, name, store.password(cache))
    url = upstream.url(f"blobs/{digest}")
    if cache.username is None and not upstream.needs_credentials():
        check_address(upstream.location.base)
        try:
            probe = _http().request("HEAD", url, redirect=False, timeout=5.0)
        except urllib3.exceptions.HTTPError:
            probe = None
        if probe is not None and probe.status == 200:
            return url  # rule 1: anyone may fetch it there, as we just did
        if probe is not None and probe.status == 404:
            raise BlobUnknown({"digest": digest, "upstream": upstream.location.host})
    answer = upstream.request("GET", f"blobs/{digest}", preload_content=False)
    try:
        if answer.status == 404:
            raise BlobUnknown({"digest": digest, "upstream": upstream.location.host})
        target = answer.headers.get("Location")
        if answer.status in (301, 302, 303, 307, 308) and target:
            if _safe(target, upstream):
                return target  # rule 2
        elif answer.status != 200:
            raise UpstreamError(
                {"upstream": upstream.location.host, "status": answer.status},
                message=f"upstream {upstream.location.host} answered {answer.status}",
            )
    finally:
        answer.close()  # never read: the bytes go to S3 by the copy, not through here
    return _wait_for_copy(name, digest)  # rule 3


def _safe(target: str, upstream: Upstream) -> bool:
    """A Location we may hand out: absolute http(s), another host than the registry (which
    would want our token), and none of our authorization in it."""
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc == urlsplit(upstream.location.base).netloc:
        return False
    authorization = upstream._authorization() or ""
    secret = authorization.partition(" ")[2]
    return not secret or secret not in target


def _refuse_failed(name: str, digest: str) -> None:
    state = store.copy_state(name, digest)
    if state is not None and state[0] == "failed":
        raise UpstreamError(
            {"digest": digest, "reason": state[1]},
            message=f"the upstream's blob {digest} could not be cached: {state[1]}",
        )


def _wait_for_copy(name: str, digest: str) -> str:
    deadline = time.monotonic() + config.settings.proxycache_blob_wait_seconds
    while time.monotonic() < deadline:
        blob = blobs.get_link(name, digest)
        if blob is not None:
            return blobs.presigned_get_url(blob.digest)
        _refuse_failed(name, digest)
        time.sleep(POLL)
    raise TooManyRequests(
        {"digest": digest},
        message="the blob is being copied from the upstream; retry shortly",
        headers={"Retry-After": "5"},
    )


def size(cache: CacheConfig, name: str, digest: str) -> int | None:
    """HEAD of a blob the cache lacks: the upstream's answer (None: size unknown)."""
    upstream = Upstream(cache, name, store.password(cache))
    answer = upstream.request("HEAD", f"blobs/{digest}")
    if answer.status == 404:
        raise BlobUnknown({"digest": digest, "upstream": upstream.location.host})
    if answer.status >= 300 and answer.status not in (301, 302, 303, 307, 308):
        raise UpstreamError(
            {"upstream": upstream.location.host, "status": answer.status},
            message=f"upstream {upstream.location.host} answered {answer.status}",
        )
    target = answer.headers.get("Location")
    if answer.status != 200 and target:
        # Presigned storage URLs are signed for GET only: ask with a GET, read no body.
        target = upstream.location.base + target if target.startswith("/") else target
        check_address(target)
        answer = _http().request("GET", target, redirect=False, preload_content=False)
        answer.close()
    length = answer.headers.get("Content-Length")
    return int(length) if length and answer.status == 200 else None


def start_copy(name: str, digest: str) -> None:
    """Run `copy` elsewhere, once at a time per blob: an asynchronous Lambda invocation on
    AWS, a thread locally."""
    if not store.claim_copy(name, digest, COPY_SECONDS):
        return
    function = config.settings.proxycache_copy_function
    if function:
        aws.lambda_client().invoke(
            FunctionName=function,
            InvocationType="Event",
            Payload=json.dumps({"repository": name, "digest": digest}).encode(),
        )
        return
    threading.Thread(target=copy, args=(name, digest), daemon=True).start()


def copy(name: str, digest: str) -> None:
    """Copy one blob from the upstream into S3, verified before it is linked; a mismatch
    or failure leaves nothing and is remembered a minute (so pulls fail clearly)."""
    failure = None
    try:
        _copy(name, digest)
    except (UpstreamError, BlobUnknown, CopyFailed) as error:
        failure = error.message if isinstance(error, UpstreamError | BlobUnknown) else str(error)
        logger.warning("proxy cache copy of %s@%s failed: %s", name, digest, failure)
    except Exception:
        failure = "internal error"
        logger.exception("proxy cache copy of %s@%s failed", name, digest)
    store.finish_copy(name, digest, failure, FAILED_SECONDS)


class CopyFailed(Exception):
    pass


def _copy(name: str, digest: str) -> None:
    if blobs.get_link(name, digest) is not None:
        return
    cache = store.get(name.split("/", 1)[0])
    if cache is None:
        raise CopyFailed("the organization is no longer a proxy cache")
    upstream = Upstream(cache, name, store.password(cache))
    answer = upstream.request("GET", f"blobs/{digest}", preload_content=False)
    for _ in range(5):  # redirects: followed without our credentials
        target = answer.headers.get("Location")
        if answer.status not in (301, 302, 303, 307, 308) or not target:
            break
        answer.close()
        if target.startswith("/"):
            target = upstream.location.base + target
        check_address(target)
        answer = _http().request("GET", target, redirect=False, preload_content=False)
    if answer.status != 200:
        answer.close()
        raise CopyFailed(f"upstream answered {answer.status}")
    algorithm, expected = digest.split(":", 1)
    try:
        _stream(name, digest, algorithm, expected, answer)
    finally:
        answer.close()


def _stream(
    name: str, digest: str, algorithm: str, expected: str, answer: urllib3.BaseHTTPResponse
) -> None:
    hasher = hashlib.new(algorithm)
    length = answer.headers.get("Content-Length")
    if length is not None and int(length) <= SMALL:
        data = answer.read()
        hasher.update(data)
        _check(hasher, expected, digest)
        blobs.store_and_link(name, digest, len(data), lambda: blobs.put_object(digest, data))
        return
    s3, bucket = aws.s3(), config.settings.bucket
    key = f"uploads/proxycache/{uuid.uuid4()}"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    total, completed = 0, False
    try:
        buffer = bytearray()  # appended in place: no copy of the part per chunk
        for chunk in answer.stream(1024 * 1024):
            hasher.update(chunk)
            total += len(chunk)
            buffer += chunk
            if len(buffer) >= PART:
                parts.append(_part(key, upload, len(parts) + 1, bytes(buffer)))
                buffer.clear()
        if buffer or not parts:
            parts.append(_part(key, upload, len(parts) + 1, bytes(buffer)))
        _check(hasher, expected, digest)
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
        completed = True
        blobs.store_and_link(name, digest, total, lambda: blobs.copy_object(key, digest, total))
    finally:
        if completed:
            s3.delete_object(Bucket=bucket, Key=key)
        else:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)


def _part(key: str, upload: str, number: int, data: bytes) -> CompletedPartTypeDef:
    answer = aws.s3().upload_part(
        Bucket=config.settings.bucket, Key=key, UploadId=upload, PartNumber=number, Body=data
    )
    return {"PartNumber": number, "ETag": answer["ETag"]}


def _check(hasher: hashlib._Hash, expected: str, digest: str) -> None:
    if hasher.hexdigest() != expected:
        raise CopyFailed(
            f"digest mismatch: the upstream sent {hasher.name}:{hasher.hexdigest()} for "
            f"{digest}; not cached"
        )
