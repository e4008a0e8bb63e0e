"""Direct uploads: a client sends a blob's parts straight to S3 with presigned UploadPart
URLs, and the registry completes the multipart upload, verifies the digest and links it.

No byte passes through Lambda on the way in. The digest is then checked by reading the
object back from S3. This is the one place a read-back is acceptable, since no chunk passed
through the registry to be hashed on the way. docs/uploads.md gives its cost per GB.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import uuid
from datetime import timedelta
from typing import cast

from botocore.exceptions import ClientError

from chalicelib import config
from chalicelib.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RegistryError,
    SizeInvalid,
    for_storage,
)
from chalicelib.registry.digests import Digest, ResumableHash, parse_digest
from chalicelib.storage import aws, blobs
from chalicelib.storage import uploads as sessions
from chalicelib.storage.errors import StorageError
from chalicelib.storage.models import UploadModel

MAX_PARTS = 10_000
DEFAULT_PART = 64 * 1024 * 1024
MAX_URLS_PER_CALL = 1000


def plan(size: int, part_size: int | None) -> int:
    """The part size to use for `size` bytes: within S3's limits and at most 10,000 parts."""
    if size < 0:
        raise SizeInvalid({"size": size}, message="size must not be negative")
    chosen = part_size or DEFAULT_PART
    chosen = max(chosen, sessions.PART_MIN, math.ceil(size / MAX_PARTS))
    if chosen > sessions.PART_MAX:
        raise SizeInvalid({"size": size}, message="blob larger than S3 allows (10,000 x 5 GiB)")
    return chosen


def part_count(session: UploadModel) -> int:
    return max(1, math.ceil(int(session.declared_size) / int(session.part_size)))


def start(repository: str, size: int, part_size: int | None) -> UploadModel:
    chosen = plan(size, part_size)
    upload_id = str(uuid.uuid4())
    created = aws.s3().create_multipart_upload(
        Bucket=config.settings.bucket, Key=sessions.data_key(upload_id)
    )
    session = UploadModel(
        upload_id,
        repository=repository,
        kind="direct",
        declared_size=size,
        part_size=chosen,
        multipart_id=created["UploadId"],
        hash_state=ResumableHash().state(),
        expires_at=timedelta(seconds=config.settings.upload_ttl_seconds),
    )
    session.save()
    return session


def load(repository: str, upload_id: str) -> UploadModel:
    session = sessions.load(repository, upload_id)
    if session.kind != "direct":
        raise BlobUploadUnknown({"upload": upload_id}, message="not a direct upload")
    return session


def part_urls(session: UploadModel, first: int, last: int) -> list[dict[str, object]]:
    """Presigned UploadPart URLs for parts first..last (signing is local: no AWS call)."""
    count = part_count(session)
    if not 1 <= first <= last <= count or last - first >= MAX_URLS_PER_CALL:
        raise BlobUploadInvalid(
            {"parts": f"{first}-{last}", "count": count, "max_per_call": MAX_URLS_PER_CALL},
            message="part range out of bounds",
        )
    s3 = aws.s3()
    urls = []
    for number in range(first, last + 1):
        url = s3.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": config.settings.bucket,
                "Key": sessions.data_key(session.upload_id),
                "UploadId": session.multipart_id,
                "PartNumber": number,
            },
            ExpiresIn=config.settings.direct_url_seconds,
        )
        urls.append({"number": number, "url": url})
    return urls


def _read_back_digest(key: str, algorithm: str) -> tuple[str, int]:
    body = aws.s3().get_object(Bucket=config.settings.bucket, Key=key)["Body"]
    hasher = hashlib.new(algorithm)
    size = 0
    for chunk in body.iter_chunks(8 * 1024 * 1024):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


def complete(
    session: UploadModel, parts: list[dict[str, object]], expected: Digest
) -> blobs.Blob | None:
    """Assemble the parts; verify and link now, or (large blobs) hand off and return None."""
    count = part_count(session)
    numbers = [p.get("number") for p in parts]
    etags = [p.get("etag") for p in parts]
    # `type(n) is int`: JSON's true and 1.0 compare equal to 1 but are no part numbers.
    integers = all(type(n) is int for n in numbers)
    in_order = integers and numbers == list(range(1, count + 1))
    if not in_order or not all(isinstance(e, str) and e for e in etags):
        raise BlobUploadInvalid(
            {"expected_parts": count}, message="parts must be 1..N in order, each with its ETag"
        )
    state: str | None = session.state
    if state is not None:
        raise BlobUploadInvalid({"state": state}, message="upload already completed")
    try:
        aws.s3().complete_multipart_upload(
            Bucket=config.settings.bucket,
            Key=sessions.data_key(session.upload_id),
            UploadId=session.multipart_id,
            MultipartUpload={
                # Checked above: the numbers equal 1..N and every ETag is a non-empty string.
                "Parts": [
                    {"PartNumber": cast(int, n), "ETag": cast(str, e)}
                    for n, e in zip(numbers, etags, strict=True)
                ]
            },
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload"}:
            raise BlobUploadInvalid({"s3": code}, message="S3 refused the parts") from None
        raise
    if int(session.declared_size) <= config.settings.sync_verify_bytes:
        return verify(session, expected)
    session.update(
        actions=[
            UploadModel.state.set("verifying"),
            UploadModel.expected_digest.set(str(expected)),
        ]
    )
    _start_verification(session)
    return None


def _start_verification(session: UploadModel) -> None:
    """Run `verify_later` elsewhere: an asynchronous Lambda invocation on AWS, a thread
    locally (where the local server stands in for Lambda)."""
    payload = {"repository": session.repository, "upload_id": session.upload_id}
    if config.settings.verify_function:
        aws.lambda_client().invoke(
            FunctionName=config.settings.verify_function,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
        return
    threading.Thread(target=verify_later, kwargs=payload, daemon=True).start()


def verify_later(repository: str, upload_id: str) -> None:
    """The asynchronous half: verify, then record the outcome for the client's polling."""
    session = sessions.load(repository, upload_id)
    if session.state != "verifying":
        return  # already done: invocations may repeat
    expected = parse_digest(session.expected_digest)
    try:
        blob = verify(session, expected, keep_session=True)
    except (RegistryError, StorageError) as failure:
        error = failure if isinstance(failure, RegistryError) else for_storage(failure)
        session.update(
            actions=[
                UploadModel.state.set("failed"),
                UploadModel.outcome.set(json.dumps({"status": error.status, **error.body()})),
            ]
        )
        return
    session.update(actions=[UploadModel.state.set("done"), UploadModel.outcome.set(blob.digest)])


def verify(session: UploadModel, expected: Digest, *, keep_session: bool = False) -> blobs.Blob:
    """Read the assembled object back, check size and digest, then link the blob."""
    s3 = aws.s3()
    bucket = config.settings.bucket
    key = sessions.data_key(session.upload_id)
    actual, size = _read_back_digest(key, expected.algorithm)
    if actual != expected.encoded or size != int(session.declared_size):
        s3.delete_object(Bucket=bucket, Key=key)
        if not keep_session:
            session.delete()
        raise DigestInvalid(
            {"expected": str(expected), "actual": f"{expected.algorithm}:{actual}", "size": size}
        )
    digest = str(expected)
    blob = blobs.store_and_link(
        session.repository, digest, size, lambda: blobs.copy_object(key, digest, size)
    )
    s3.delete_object(Bucket=bucket, Key=key)
    if not keep_session:
        session.delete()
    return blob
