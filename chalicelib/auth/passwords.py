"""Secrets at rest: slow salted scrypt for passwords, a salted SHA-256 for robot tokens.

Robot tokens are 256 random bits, so brute force is out of reach without a slow KDF; human
passwords are not, so they pay scrypt's cost. Every check is constant-time, and a login for
an unknown account still runs the KDF, so timing does not reveal which accounts exist.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

# scrypt with N=2**14, r=8, p=1: about 16 MiB and ~50 ms a check (OWASP's minimum).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
ROBOT_TOKEN_BYTES = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N},{SCRYPT_R},{SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_token(token: str) -> str:
    salt = secrets.token_bytes(16)
    return f"sha256$${_b64(salt)}${_b64(hashlib.sha256(salt + token.encode()).digest())}"


def new_robot_token() -> str:
    return secrets.token_urlsafe(ROBOT_TOKEN_BYTES)


@functools.cache
def _dummy(robot: bool) -> str:
    """Checked against when the account does not exist, so the same work runs either way."""
    filler = secrets.token_urlsafe(16)
    return hash_token(filler) if robot else hash_password(filler)


def verify(secret: str, stored: str | None, *, robot: bool = False) -> bool:
    """Whether `secret` matches `stored`; constant-time, and as slow for a missing account."""
    if not stored:
        verify(secret, _dummy(robot))
        return False
    try:
        scheme, params, salt_text, digest_text = stored.split("$")
        salt, expected = _unb64(salt_text), _unb64(digest_text)
        if scheme == "scrypt":
            n, r, p = (int(part) for part in params.split(","))
            actual = _scrypt(secret, salt, n, r, p)
        elif scheme == "sha256":
            actual = hashlib.sha256(salt + secret.encode()).digest()
        else:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)
