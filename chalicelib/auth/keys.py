"""The token signing keys: a key ring whose first key signs and every key verifies.

Rotation works through `kid`: put a new key first and keep the old one until the tokens it
signed have expired (docs/auth.md). In AWS the ring is an SSM SecureString of PEM private
keys, re-read every few minutes and at once when a token names a `kid` we do not know; in
local mode it is a file generated on first start, kept with the registry's data. An open
registry (auth off) signs with a key of its own process only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from chalicelib import config

REFRESH_SECONDS = 300
# An unknown `kid` re-reads the parameter, but not more often than this (no read storms).
UNKNOWN_KID_REFRESH_SECONDS = 30


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str  # ES256 for EC P-256, RS256 for RSA
    private: Any
    public: Any


@dataclass(frozen=True)
class KeyRing:
    signing: SigningKey
    by_kid: dict[str, SigningKey]


class KeyUnavailable(RuntimeError):
    """The stage names no usable signing key: a deployment error, not a client's."""


def key_id(public: Any) -> str:
    """A JWK-thumbprint-style id: SHA-256 of the DER public key, base64url."""
    from cryptography.hazmat.primitives import serialization

    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def _signing_key(private: Any) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        algorithm = "ES256"
    elif isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048:
        algorithm = "RS256"
    else:
        raise KeyUnavailable("signing keys must be EC P-256 or RSA of 2048 bits or more")
    public = private.public_key()
    return SigningKey(key_id(public), algorithm, private, public)


_PEM_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S)


def pem_blocks(pem_text: str) -> list[str]:
    """The PEM private keys in a ring's text, in order."""
    return [match.group(0) for match in _PEM_KEY.finditer(pem_text)]


def parse_ring(pem_text: str) -> KeyRing:
    from cryptography.hazmat.primitives import serialization

    keys = [
        _signing_key(serialization.load_pem_private_key(block.encode(), None))
        for block in pem_blocks(pem_text)
    ]
    if not keys:
        raise KeyUnavailable("the key ring holds no PEM private key")
    return KeyRing(keys[0], {key.kid: key for key in keys})


def new_private_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _from_file(path: Path) -> str:
    """Local mode: the key made on first start, kept (owner-only) so tokens survive restarts."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_private_pem())
    return path.read_text()


def _from_parameter(name: str) -> str:
    from chalicelib.storage import aws

    answer = aws.ssm().get_parameter(Name=name, WithDecryption=True)
    value: str = answer["Parameter"]["Value"]
    return value


_lock = threading.Lock()


class _Cache(TypedDict):
    ring: KeyRing | None
    source: tuple[bool, str, str] | None  # the settings the ring was read from
    loaded: float  # time.monotonic()


_cache: _Cache = {"ring": None, "source": None, "loaded": 0.0}


def _load() -> KeyRing:
    settings = config.settings
    if not settings.auth:
        # An open registry lets anyone become a superuser, so what it signs must be good
        # nowhere else: a key of this process alone, never written where another registry
        # (an auth-on one from the same checkout, say) would read it.
        return parse_ring(new_private_pem())
    if settings.signing_key_parameter:
        return parse_ring(_from_parameter(settings.signing_key_parameter))
    if settings.signing_key_file:
        return parse_ring(_from_file(Path(settings.signing_key_file)))
    raise KeyUnavailable("set STRATUS_SIGNING_KEY_PARAMETER or STRATUS_SIGNING_KEY_FILE")


def ring(*, unknown_kid: bool = False) -> KeyRing:
    """The current ring; re-read when stale, or early (rate-limited) for an unknown kid."""
    settings = config.settings
    source = (settings.auth, settings.signing_key_parameter, settings.signing_key_file)
    with _lock:
        current = _cache["ring"]
        age = time.monotonic() - _cache["loaded"]
        if (
            current is None
            or _cache["source"] != source
            or (settings.signing_key_parameter and age > REFRESH_SECONDS)
            or (unknown_kid and age > UNKNOWN_KID_REFRESH_SECONDS)
        ):
            current = _load()
            _cache.update({"ring": current, "source": source, "loaded": time.monotonic()})
        return current


def forget() -> None:
    """Tests change the key source between cases."""
    with _lock:
        _cache.update({"ring": None, "source": None, "loaded": 0.0})
