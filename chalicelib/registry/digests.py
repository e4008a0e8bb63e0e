"""Digests (image-spec "Digests") and a SHA-256/512 whose state survives between requests.

Uploads arrive in chunks, each in its own Lambda invocation; to verify the digest at the end
without reading the blob back from S3, the hash state travels with the upload session.
hashlib cannot export its state, so we drive OpenSSL's SHA256/SHA512 functions directly:
their context structs are plain, fixed-size C structs (`SHA256_CTX`, `SHA512_CTX`) that we
copy in and out as bytes. Every CPython links libcrypto for hashlib, so this adds no
dependency; docs/uploads.md explains the choice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import re
from dataclasses import dataclass
from functools import cache

from chalicelib.errors import DigestInvalid

_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_REGISTERED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
# The grammar sets no length; the registered algorithms' digests are 71 and 135 characters.
# The bound leaves room for algorithms yet to be registered and keeps every key that embeds
# a digest far below DynamoDB's 1,024-byte sort-key limit.
MAX_DIGEST_LENGTH = 255


@dataclass(frozen=True)
class Digest:
    algorithm: str
    encoded: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"


def looks_like_digest(reference: str) -> bool:
    return ":" in reference


def parse_digest(value: str) -> Digest:
    """Parse a digest; registered algorithms must also meet their own encoding rule."""
    if len(value) > MAX_DIGEST_LENGTH or not _GRAMMAR.fullmatch(value):
        raise DigestInvalid({"digest": value}, message="invalid digest")
    algorithm, encoded = value.split(":", 1)
    rule = _REGISTERED.get(algorithm)
    if rule is not None and not rule.fullmatch(encoded):
        raise DigestInvalid({"digest": value}, message="invalid digest")
    return Digest(algorithm, encoded)


def is_supported(digest: Digest) -> bool:
    """Whether the registry can verify content under this digest, and so store or serve it."""
    return digest.algorithm in _REGISTERED


def parse_supported(value: str) -> Digest:
    """A digest content may be stored under: registered, and so verifiable."""
    digest = parse_digest(value)
    if not is_supported(digest):
        raise DigestInvalid(
            {"digest": value, "supported": sorted(_REGISTERED)},
            message="unsupported digest algorithm",
        )
    return digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


# --- resumable hashing -------------------------------------------------------------------


@dataclass(frozen=True)
class _Algo:
    name: str
    ctx_size: int  # sizeof(SHAxxx_CTX); stable public ABI of libcrypto
    digest_size: int


_ALGOS = {"sha256": _Algo("SHA256", 112, 32), "sha512": _Algo("SHA512", 216, 64)}


@cache
def _libcrypto() -> ctypes.CDLL:
    import _hashlib  # noqa: F401  (ensures the libcrypto hashlib uses is loaded)

    path = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    lib = ctypes.CDLL(path)
    for algo in _ALGOS.values():
        for suffix in ("Init", "Update", "Final"):
            getattr(lib, f"{algo.name}_{suffix}").restype = ctypes.c_int
    return lib


class ResumableHash:
    """A SHA-2 hash whose whole state is `state()` bytes, restorable with `from_state`."""

    def __init__(self, algorithm: str = "sha256", state: bytes | None = None) -> None:
        self.algorithm = algorithm
        self._algo = _ALGOS[algorithm]
        lib = _libcrypto()
        if state is None:
            self._ctx = ctypes.create_string_buffer(self._algo.ctx_size)
            getattr(lib, f"{self._algo.name}_Init")(self._ctx)
        else:
            if len(state) != self._algo.ctx_size:
                raise ValueError("hash state has the wrong size")
            self._ctx = ctypes.create_string_buffer(bytes(state), self._algo.ctx_size)

    @classmethod
    def from_state(cls, algorithm: str, state: bytes) -> ResumableHash:
        return cls(algorithm, state)

    def update(self, data: bytes) -> None:
        if data:
            fn = getattr(_libcrypto(), f"{self._algo.name}_Update")
            fn(self._ctx, data, ctypes.c_size_t(len(data)))

    def state(self) -> bytes:
        return bytes(self._ctx.raw)

    def hexdigest(self) -> str:
        """The digest so far, leaving this hash usable (finalises a copy)."""
        copy = ctypes.create_string_buffer(self._ctx.raw, self._algo.ctx_size)
        out = ctypes.create_string_buffer(self._algo.digest_size)
        getattr(_libcrypto(), f"{self._algo.name}_Final")(out, copy)
        return out.raw.hex()

    def digest(self) -> str:
        return f"{self.algorithm}:{self.hexdigest()}"
