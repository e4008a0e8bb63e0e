"""A manifest's bytes: inline in its DynamoDB items when small, else one S3 object per digest.

Manifests up to STRATUS_INLINE_MANIFEST_BYTES ride in the manifest item and in every tag
item pointing at it, so a pull is one read; larger ones (the spec asks for at least 4 MB, an
item holds 400 KB) live at `manifests/<alg>/<hex>`, written once, never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import config
from chalicelib.storage import aws, cache


@dataclass(frozen=True)
class StoredManifest:
    digest: str
    media_type: str
    size: int
    body: bytes | None  # None on HEAD, where the bytes are not needed


def object_key(digest: str) -> str:
    algorithm, encoded = digest.split(":", 1)
    return f"manifests/{algorithm}/{encoded}"


def inline(size: int) -> bool:
    return size <= config.settings.inline_manifest_bytes


def fetch(digest: str) -> bytes:
    """A large manifest's bytes, cached for the bound (never changed; deleted only by GC)."""
    key = object_key(digest)
    return cache.read(cache.s3(key), "body", lambda: _get(key), size=lambda body: len(body) + 256)


def _get(key: str) -> bytes:
    obj = aws.s3().get_object(Bucket=config.settings.bucket, Key=key)
    body: bytes = obj["Body"].read()
    return body


def store_large(digest: str, body: bytes) -> None:
    """The S3 copy of a manifest too large for an item (verified content: never replaced)."""
    if not inline(len(body)):
        aws.put_if_absent(object_key(digest), body)


def stored(
    digest: str, media_type: str, size: int, body: bytes | None, *, with_body: bool
) -> StoredManifest:
    """What a read answers: the bytes from the item, or from S3 when they live there."""
    if with_body and body is None:
        body = fetch(digest)
    return StoredManifest(digest, media_type, size, body if with_body else None)
