"""Registry errors: raised where a problem is found, rendered as OCI error JSON in one place.

Codes and statuses follow distribution-spec v1.1 "Error Codes"; `TAG_INVALID` is one of the
legacy Docker codes the spec allows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.storage.errors import StorageError


class RegistryError(Exception):
    code = "UNKNOWN"
    status = 400
    message = "registry error"

    def __init__(
        self,
        detail: Any = None,
        *,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.detail = detail
        self.headers = headers or {}
        if message is not None:
            self.message = message

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


class BlobUnknown(RegistryError):
    code, status, message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class RangeNotSatisfiable(BlobUploadInvalid):
    """A chunk that does not start where the upload ends (spec: MUST answer 416)."""

    status = 416
    message = "chunk out of order"


class DigestInvalid(RegistryError):
    code, status, message = (
        "DIGEST_INVALID",
        400,
        "provided digest did not match uploaded content",
    )


class ManifestBlobUnknown(RegistryError):
    code, status, message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )


class ManifestInvalid(RegistryError):
    code, status, message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnverified(RegistryError):
    """A Docker schema 1 manifest whose signature does not verify."""

    code, status, message = "MANIFEST_UNVERIFIED", 400, "manifest failed signature verification"


class ManifestUnknown(RegistryError):
    code, status, message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, message = "SIZE_INVALID", 400, "provided length did not match content length"


class PayloadTooLarge(SizeInvalid):
    """A body over a limit; API Gateway would refuse it, so local mode refuses it too."""

    status = 413
    message = "request body too large"


class TagInvalid(RegistryError):
    code, status, message = "TAG_INVALID", 400, "manifest tag did not match URI"


class TagExpired(RegistryError):
    """Quay's answer for a tag past its `quay.expires-after` (before cleanup removed it)."""

    code, status, message = "TAG_EXPIRED", 404, "tag has expired"


class Unauthorized(RegistryError):
    code, status, message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, message = "UNSUPPORTED", 405, "the operation is unsupported"


class NotFound(Unsupported):
    """A path under /v2/ that names no endpoint of the spec."""

    status = 404
    message = "no such endpoint"


class TooManyRequests(RegistryError):
    code, status, message = "TOOMANYREQUESTS", 429, "too many requests"


class BadQuery(RegistryError):
    """A malformed query parameter (`n`, `last`): the request, not the resource, is wrong."""

    code, status, message = "UNSUPPORTED", 400, "invalid query parameter"


# The management API (`/api/v1`, Quay's shape) has a few answers the OCI set lacks.


class InvalidRequest(RegistryError):
    code, status, message = "INVALID_REQUEST", 400, "invalid request"


class AccountUnknown(RegistryError):
    code, status, message = "NOT_FOUND", 404, "no such account"


class AlreadyExists(RegistryError):
    code, status, message = "ALREADY_EXISTS", 409, "the name is taken"


def for_storage(condition: StorageError) -> RegistryError:
    """The OCI error a storage condition is answered with (storage/errors.py)."""
    from chalicelib.storage import errors as storage

    answers: dict[type[StorageError], type[RegistryError]] = {
        storage.Contention: TooManyRequests,
    }
    for kind in type(condition).__mro__:
        if kind in answers:
            return answers[kind](condition.detail or None)
    return Internal()


class Internal(RegistryError):
    """What the registry could not handle; its cause goes to the log, not the client."""

    code, status, message = "UNKNOWN", 500, "internal server error"
