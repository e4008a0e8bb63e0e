"""Blobs: one S3 object per digest shared by all repositories, and per-repository links.

Reading a blob needs its link in the repository (one GetItem); the bytes are served by a
presigned S3 URL, so a pull never streams a blob through Lambda.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib import clock, config
from chalicelib.policies import quotas as quota
from chalicelib.storage import aws, cache, transactions
from chalicelib.storage import quotas as usage
from chalicelib.storage.errors import Contention
from chalicelib.storage.models import BlobLinkModel, BlobObjectModel


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


def object_key(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"blobs/{algorithm}/{encoded[:2]}/{encoded}"


def get_link(repository: str, digest: str) -> Blob | None:
    """The repository's link to a blob; cached for the bound (storage/cache.py), misses not."""
    return cache.read(
        cache.dynamodb(BlobLinkModel.Meta.table_name, repository),
        ("link", digest),
        lambda: _read_link(repository, digest),
        keep=lambda found: found is not None,
    )


def _read_link(repository: str, digest: str) -> Blob | None:
    try:
        link = BlobLinkModel.get(repository, digest)
    except DoesNotExist:
        return None
    return Blob(link.digest, int(link.size))


def existing_links(repository: str, digests: set[str]) -> set[str]:
    """Which of `digests` the repository holds: one BatchGetItem per 100 keys."""
    keys = [(repository, d) for d in digests]
    return {link.digest for link in BlobLinkModel.batch_get(keys, attributes_to_get=["digest"])}


class BlobBeingCollected(Exception):
    """Garbage collection is deleting this digest's object right now (docs/gc.md)."""


class SessionChanged(Exception):
    """The upload session being closed changed meanwhile (a concurrent PATCH)."""


def _being_collected(digest: str) -> bool:
    try:
        record = BlobObjectModel.get(digest, attributes_to_get=["deleting"])
    except DoesNotExist:
        return False
    return record.deleting is not None


def link(repository: str, digest: str, size: int, session: Model | None = None) -> Blob:
    """Give the repository the blob, unless garbage collection is deleting its object.

    With `session`, the upload session is deleted in the same transaction (on condition
    that it is unchanged): closing an upload is one write, and a closed session is gone.
    """
    now = clock.now()

    def items(t: TransactWrite) -> None:
        t.update(
            BlobObjectModel(digest),
            actions=[BlobObjectModel.size.set(size), BlobObjectModel.last_linked_at.set(now)],
            condition=BlobObjectModel.deleting.does_not_exist(),
        )
        t.save(BlobLinkModel(repository, digest, size=size, linked_at=now, touched_at=now))
        if session is not None:
            t.delete(session)

    try:  # with the namespace's usage, refused over its quota (policies/quotas.py)
        usage.transact(repository, digest, size, items, linking=True, check=quota.check)
        quota.announce(repository, digest)  # a Warning threshold it crossed, now committed
    except TransactWriteError as exc:
        if not transactions.failed_conditions(exc):
            raise
        # pynamodb reorders a transaction's items, so the reasons do not say whose
        # condition failed; only a session can be the other one, and a read tells.
        if session is None or _being_collected(digest):
            raise BlobBeingCollected(digest) from None
        raise SessionChanged(digest) from None
    return Blob(digest, size)


def store_and_link(
    repository: str,
    digest: str,
    size: int,
    write: Callable[[], None],
    attempts: int = 5,
    session: Model | None = None,
) -> Blob:
    """Write the object, then link it.

    While garbage collection is deleting this digest (its marker is set), linking fails:
    wait and retry. The collection may have deleted what we wrote meanwhile, so after such
    a wait the object is written once more, after the link won; from then on the fresh
    `last_linked_at` keeps any collection away for its grace window (docs/gc.md).
    """
    write()
    for attempt in range(attempts):
        try:
            blob = link(repository, digest, size, session)
        except BlobBeingCollected:
            time.sleep(0.2 * (attempt + 1))
            continue
        if attempt:
            write()
        return blob
    raise Contention({"digest": digest, "reason": "blob is being garbage-collected; retry"})


def unlink(repository: str, digest: str) -> bool:
    """Remove the repository's link; the S3 object stays until garbage collection."""
    exists = BlobLinkModel.digest.exists()
    try:
        usage.transact(
            repository,
            digest,
            0,
            lambda t: t.delete(BlobLinkModel(repository, digest), condition=exists),
            linking=False,
        )
    except TransactWriteError as exc:
        if transactions.failed_conditions(exc):
            return False
        raise
    return True


def repositories_holding(digest: str, limit: int = 25) -> list[str]:
    return [item.repository for item in BlobLinkModel.by_digest.query(digest, limit=limit)]


def put_object(digest: str, data: bytes) -> None:
    """Write a verified blob's object, never over one already there (S3's If-None-Match).

    The bytes under a digest are verified before they get here, so an existing object holds
    the same content; refusing the overwrite means no request can ever replace what other
    repositories read, whatever a bug upstream let through.
    """
    aws.put_if_absent(object_key(digest), data)


def copy_object(source_key: str, digest: str, size: int) -> None:
    """Server-side copy into the blob's content address, unless the object is there already
    (CopyObject takes no If-None-Match; the copy's content is verified either way).
    Multipart copy above 5 GiB."""
    bucket = config.settings.bucket
    target = object_key(digest)
    if aws.object_exists(target):
        return
    if size <= 5 * 1024**3:
        aws.s3().copy_object(
            Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source_key}
        )
    else:
        aws.s3().copy({"Bucket": bucket, "Key": source_key}, bucket, target)


def read(digest: str) -> bytes | None:
    """A small blob's bytes (an image config, for its labels), None if absent; never used on
    pulls."""
    try:
        obj = aws.s3().get_object(Bucket=config.settings.bucket, Key=object_key(digest))
    except aws.s3().exceptions.NoSuchKey:
        return None
    body: bytes = obj["Body"].read()
    return body


def presigned_get_url(digest: str) -> str:
    """A short-lived SigV4 URL: signing is local, so this costs no AWS call."""
    url: str = aws.s3().generate_presigned_url(
        "get_object",
        Params={"Bucket": config.settings.bucket, "Key": object_key(digest)},
        ExpiresIn=config.settings.presign_seconds,
    )
    return url
