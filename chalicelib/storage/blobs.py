"""Blobs: one S3 object per digest shared by all repositories, and per-repository links.

Reading a blob needs its link in the repository (one GetItem); the bytes are served by a
presigned S3 URL, so a pull never streams a blob through Lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib import config
from chalicelib.storage import aws
from chalicelib.storage.models import BlobLinkModel


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


def object_key(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"blobs/{algorithm}/{encoded[:2]}/{encoded}"


def get_link(repository: str, digest: str) -> Blob | None:
    try:
        link = BlobLinkModel.get(repository, digest)
    except DoesNotExist:
        return None
    return Blob(link.digest, int(link.size))


def existing_links(repository: str, digests: set[str]) -> set[str]:
    """Which of `digests` the repository holds: one BatchGetItem per 100 keys."""
    keys = [(repository, d) for d in digests]
    return {link.digest for link in BlobLinkModel.batch_get(keys, attributes_to_get=["digest"])}


def link(repository: str, digest: str, size: int) -> Blob:
    BlobLinkModel(repository, digest, size=size).save()
    return Blob(digest, size)


def unlink(repository: str, digest: str) -> bool:
    """Remove the repository's link; the S3 object stays until garbage collection."""
    from pynamodb.exceptions import DeleteError

    try:
        BlobLinkModel(repository, digest).delete(condition=BlobLinkModel.digest.exists())
    except DeleteError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True


def repositories_holding(digest: str, limit: int = 25) -> list[str]:
    return [item.repository for item in BlobLinkModel.by_digest.query(digest, limit=limit)]


def put_object(digest: str, data: bytes) -> None:
    aws.s3().put_object(Bucket=config.settings.bucket, Key=object_key(digest), Body=data)


def copy_object(source_key: str, digest: str, size: int) -> None:
    """Server-side copy into the blob's content address; multipart copy above 5 GiB."""
    bucket = config.settings.bucket
    target = object_key(digest)
    if size <= 5 * 1024**3:
        aws.s3().copy_object(
            Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source_key}
        )
    else:
        aws.s3().copy({"Bucket": bucket, "Key": source_key}, bucket, target)


def read(digest: str) -> bytes:
    """A small blob's bytes (an image config, for its labels); never used on pulls."""
    obj = aws.s3().get_object(Bucket=config.settings.bucket, Key=object_key(digest))
    return obj["Body"].read()


def presigned_get_url(digest: str) -> str:
    """A short-lived SigV4 URL: signing is local, so this costs no AWS call."""
    return aws.s3().generate_presigned_url(
        "get_object",
        Params={"Bucket": config.settings.bucket, "Key": object_key(digest)},
        ExpiresIn=config.settings.presign_seconds,
    )
