"""Upload sessions: chunks go to an S3 multipart upload, the SHA-256 state to DynamoDB.

S3 parts must be at least 5 MiB (but the last), while clients pick any chunk size, so
bytes that do not yet fill a part wait in a per-session buffer object and are merged into
the next part. The hash state travels in the session item, so finishing never reads the
blob back. Every change to a session is conditional on its version (`VersionAttribute`):
two writers racing on one session cannot both win, and the loser gets 416. See
docs/uploads.md for the whole argument.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.update import Action

from chalicelib import config
from chalicelib.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeNotSatisfiable,
)
from chalicelib.registry.digests import Digest, ResumableHash
from chalicelib.storage import aws, blobs
from chalicelib.storage.models import PartAttribute, UploadModel

PART_MIN = 5 * 1024 * 1024
PART_MAX = 5 * 1024**3
MAX_PARTS = 10_000


def _prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def data_key(upload_id: str) -> str:
    return _prefix(upload_id) + "data"


def _valid_id(upload_id: str) -> bool:
    try:
        return str(uuid.UUID(upload_id)) == upload_id
    except ValueError:
        return False


def start(repository: str) -> UploadModel:
    session = UploadModel(
        str(uuid.uuid4()),
        repository=repository,
        hash_state=ResumableHash().state(),
        expires_at=timedelta(seconds=config.settings.upload_ttl_seconds),
    )
    session.save()
    return session


def load_chunked(repository: str, upload_id: str) -> UploadModel:
    """A session for PATCH/PUT; direct uploads have their own endpoints."""
    session = load(repository, upload_id)
    if session.kind == "direct":
        raise BlobUploadInvalid(
            {"upload": upload_id}, message="a direct upload is completed with its own endpoint"
        )
    return session


def load(repository: str, upload_id: str) -> UploadModel:
    if not _valid_id(upload_id):
        raise BlobUploadUnknown({"upload": upload_id})
    try:
        session = UploadModel.get(upload_id)
    except DoesNotExist:
        raise BlobUploadUnknown({"upload": upload_id}) from None
    if session.repository != repository:
        raise BlobUploadUnknown({"upload": upload_id})
    return session


def range_header(session: UploadModel) -> str:
    """`Range: 0-<last byte>`; an empty session answers `0-0` as Distribution does."""
    return f"0-{max(int(session.offset) - 1, 0)}"


def _read_buffer(session: UploadModel) -> bytes:
    if not session.buffer_key or not session.buffer_size:
        return b""
    obj = aws.s3().get_object(Bucket=config.settings.bucket, Key=session.buffer_key)
    body: bytes = obj["Body"].read()
    return body


def _upload_parts(session: UploadModel, data: bytes, parts: list[PartAttribute]) -> str:
    """Upload `data` as one or more parts (each <= 5 GiB); returns the multipart id."""
    s3 = aws.s3()
    bucket = config.settings.bucket
    multipart_id = session.multipart_id
    if not multipart_id:
        created = s3.create_multipart_upload(Bucket=bucket, Key=data_key(session.upload_id))
        multipart_id = created["UploadId"]
    pieces = max(1, math.ceil(len(data) / PART_MAX))
    step = math.ceil(len(data) / pieces)
    if len(parts) + pieces >= MAX_PARTS:  # the last part is still to come at close
        raise BlobUploadInvalid(
            {"parts": len(parts), "max_parts": MAX_PARTS},
            message="upload would exceed S3's 10,000 parts: use larger chunks or `stratus push`",
        )
    for start_at in range(0, len(data), step):
        piece = data[start_at : start_at + step]
        number = len(parts) + 1
        answer = s3.upload_part(
            Bucket=bucket,
            Key=data_key(session.upload_id),
            UploadId=multipart_id,
            PartNumber=number,
            Body=piece,
        )
        parts.append(PartAttribute(number=number, etag=answer["ETag"], size=len(piece)))
    return multipart_id


def append(session: UploadModel, data: bytes, start_at: int | None) -> UploadModel:
    """Append a chunk at the session's offset (`start_at` from Content-Range, if sent)."""
    offset = int(session.offset)
    if start_at is not None and start_at != offset:
        raise RangeNotSatisfiable(
            {"expected_start": offset, "got_start": start_at},
            headers={"Range": range_header(session), "Location": location(session)},
        )
    if not data:
        return session
    hasher = ResumableHash.from_state("sha256", session.hash_state)
    hasher.update(data)
    pending = _read_buffer(session) + data
    parts = list(session.parts or [])
    multipart_id = session.multipart_id
    old_buffer = session.buffer_key
    buffer_key: str | None = None
    if len(pending) >= PART_MIN:
        multipart_id = _upload_parts(session, pending, parts)
    else:
        # A fresh key per write: a racing loser can never overwrite the winner's buffer.
        buffer_key = f"{_prefix(session.upload_id)}buffer-{uuid.uuid4().hex}"
        aws.s3().put_object(Bucket=config.settings.bucket, Key=buffer_key, Body=pending)
    actions: list[Action] = [
        UploadModel.offset.set(offset + len(data)),
        UploadModel.hash_state.set(hasher.state()),
        UploadModel.parts.set(parts),
        UploadModel.buffer_size.set(0 if buffer_key is None else len(pending)),
    ]
    actions.append(
        UploadModel.buffer_key.set(buffer_key) if buffer_key else UploadModel.buffer_key.remove()
    )
    if multipart_id:
        actions.append(UploadModel.multipart_id.set(multipart_id))
    try:
        session.update(actions=actions)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise RangeNotSatisfiable({"reason": "concurrent write to this upload"}) from None
        raise
    if old_buffer:
        aws.s3().delete_object(Bucket=config.settings.bucket, Key=old_buffer)
    return session


def _verify(session: UploadModel, data: bytes, expected: Digest) -> None:
    """Check the digest over everything uploaded, before a byte of the blob is written."""
    if int(session.offset) == 0:
        actual = hashlib.new(expected.algorithm, data).hexdigest()
    elif expected.algorithm == "sha256":
        hasher = ResumableHash.from_state("sha256", session.hash_state)
        hasher.update(data)
        actual = hasher.hexdigest()
    else:
        raise DigestInvalid(
            {"digest": str(expected)},
            message="uploads in several requests are verified with sha256 digests only",
        )
    if actual != expected.encoded:
        raise DigestInvalid({"expected": str(expected), "actual": f"{expected.algorithm}:{actual}"})


def finish(session: UploadModel, data: bytes, expected: Digest) -> blobs.Blob:
    """Verify, place the blob at its content address, link it and drop the session in one
    transaction, then delete the session's S3 leftovers."""
    from botocore.exceptions import ClientError

    changed = BlobUploadInvalid(
        {"upload": session.upload_id}, message="the upload changed while it was closed; retry"
    )
    try:
        return _finish(session, data, expected)
    except blobs.SessionChanged as error:
        raise changed from error
    except ClientError as error:
        # A concurrent PATCH replaced the buffer (or parts) this close read: a stale session.
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "NoSuchUpload"}:
            raise changed from error
        raise


def _finish(session: UploadModel, data: bytes, expected: Digest) -> blobs.Blob:
    _verify(session, data, expected)
    digest = str(expected)
    size = int(session.offset) + len(data)
    parts = list(session.parts or [])
    s3 = aws.s3()
    bucket = config.settings.bucket
    if not parts:
        if session.buffer_size and not data:
            blob = blobs.store_and_link(
                session.repository,
                digest,
                size,
                lambda: blobs.copy_object(session.buffer_key, digest, size),
                session=session,
            )
        else:
            whole = _read_buffer(session) + data
            blob = blobs.store_and_link(
                session.repository,
                digest,
                size,
                lambda: blobs.put_object(digest, whole),
                session=session,
            )
    else:
        tail = _read_buffer(session) + data
        if tail:
            number = len(parts) + 1
            answer = s3.upload_part(
                Bucket=bucket,
                Key=data_key(session.upload_id),
                UploadId=session.multipart_id,
                PartNumber=number,
                Body=tail,
            )
            parts.append(PartAttribute(number=number, etag=answer["ETag"], size=len(tail)))
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=data_key(session.upload_id),
            UploadId=session.multipart_id,
            MultipartUpload={
                "Parts": [{"PartNumber": int(p.number), "ETag": p.etag} for p in parts]
            },
        )
        blob = blobs.store_and_link(
            session.repository,
            digest,
            size,
            lambda: blobs.copy_object(data_key(session.upload_id), digest, size),
            session=session,
        )
    _discard(session, abort_multipart=False, deleted=True)
    return blob


def put_monolithic(repository: str, data: bytes, expected: Digest) -> blobs.Blob:
    """A whole blob in one request (`POST ?digest=`): verify, store, link; no session."""
    actual = hashlib.new(expected.algorithm, data).hexdigest()
    if actual != expected.encoded:
        raise DigestInvalid({"expected": str(expected), "actual": f"{expected.algorithm}:{actual}"})
    digest = str(expected)
    return blobs.store_and_link(
        repository, digest, len(data), lambda: blobs.put_object(digest, data)
    )


def cancel(session: UploadModel) -> None:
    _discard(session, abort_multipart=True)


def _discard(session: UploadModel, *, abort_multipart: bool, deleted: bool = False) -> None:
    s3 = aws.s3()
    bucket = config.settings.bucket
    if abort_multipart and session.multipart_id:
        s3.abort_multipart_upload(
            Bucket=bucket, Key=data_key(session.upload_id), UploadId=session.multipart_id
        )
    # Only the keys the session knows; objects orphaned by a lost race are left to the
    # bucket's lifecycle rule and the cleanup sweeper, keeping this off a List call.
    keys = [k for k in (session.buffer_key,) if k]
    if session.multipart_id:
        keys.append(data_key(session.upload_id))
    if keys:
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
    if not deleted:
        session.delete()


def location(session: UploadModel) -> str:
    return f"/v2/{session.repository}/blobs/uploads/{session.upload_id}"
