"""Stage settings, read once from the environment that `.chalice/config.json` sets per stage."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    region: str
    bucket: str
    repositories_table: str
    tags_table: str
    manifests_table: str
    blobs_table: str
    uploads_table: str
    # Largest request body a handler accepts; 0 means no limit (local default).
    # AWS stages set what API Gateway + Lambda can carry (about 4.5 MB of binary body).
    max_request_bytes: int
    # API Gateway answers 504 after 29 s; the local server does the same when this is set.
    request_timeout_seconds: float
    # Manifests up to this size live inline in DynamoDB items; larger ones in S3.
    inline_manifest_bytes: int
    max_manifest_bytes: int
    presign_seconds: int
    upload_ttl_seconds: int
    referrers_table: str
    # Quay's FEATURE_REFERRERS_API: off, the endpoint answers 404 and clients fall back to
    # the referrers tag schema. Subjects are indexed either way, so turning it on later
    # lists everything pushed before.
    referrers_api: bool
    referrers_page_size: int
    blob_objects_table: str
    # The `_stratus` direct-to-S3 upload extension, and how long its part URLs live.
    direct_uploads: bool
    direct_url_seconds: int
    # Direct uploads larger than this are verified asynchronously (the read-back would not
    # fit API Gateway's 29 s); STRATUS_VERIFY_FUNCTION names the Lambda that does it.
    sync_verify_bytes: int
    verify_function: str
    # Garbage collection takes nothing touched more recently than this.
    gc_grace_seconds: int
    # Auth (docs/auth.md). Deployed stages always require it; local mode only when asked.
    auth: bool
    accounts_table: str
    auth_service: str  # the tokens' audience, named in every challenge
    auth_issuer: str
    auth_realm: str  # empty: derived from the request's host
    token_seconds: int
    refresh_token_seconds: int
    # Where the signing keys live: an SSM SecureString (AWS) or a file made on first start.
    signing_key_parameter: str
    signing_key_file: str
    # The bootstrap administrator: created as a superuser on its first login.
    admin_user: str
    admin_password: str
    admin_password_parameter: str
    # Failed logins allowed per user and per source address within the window.
    login_failures_per_user: int
    login_failures_per_source: int
    login_failure_window_seconds: int
    # Docker V1 pulls (read-only) of images pushed through V2, as Quay serves them.
    v1_pulls: bool
    v1_images_table: str


def load() -> Settings:
    prefix = os.environ.get("STRATUS_TABLE_PREFIX", "stratus-")
    return Settings(
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        bucket=os.environ.get("STRATUS_BUCKET", "stratus-blobs"),
        repositories_table=os.environ.get("STRATUS_REPOSITORIES_TABLE", prefix + "repositories"),
        tags_table=os.environ.get("STRATUS_TAGS_TABLE", prefix + "tags"),
        manifests_table=os.environ.get("STRATUS_MANIFESTS_TABLE", prefix + "manifests"),
        blobs_table=os.environ.get("STRATUS_BLOBS_TABLE", prefix + "blobs"),
        uploads_table=os.environ.get("STRATUS_UPLOADS_TABLE", prefix + "uploads"),
        max_request_bytes=_int("STRATUS_MAX_REQUEST_BYTES", 0),
        request_timeout_seconds=float(os.environ.get("STRATUS_REQUEST_TIMEOUT_SECONDS") or 0),
        inline_manifest_bytes=_int("STRATUS_INLINE_MANIFEST_BYTES", 64 * 1024),
        max_manifest_bytes=_int("STRATUS_MAX_MANIFEST_BYTES", 4 * 1024 * 1024),
        presign_seconds=_int("STRATUS_PRESIGN_SECONDS", 120),
        upload_ttl_seconds=_int("STRATUS_UPLOAD_TTL_SECONDS", 24 * 3600),
        referrers_table=os.environ.get("STRATUS_REFERRERS_TABLE", prefix + "referrers"),
        referrers_api=_flag("FEATURE_REFERRERS_API", True),
        referrers_page_size=_int("STRATUS_REFERRERS_PAGE_SIZE", 250),
        blob_objects_table=os.environ.get("STRATUS_BLOB_OBJECTS_TABLE", prefix + "blob-objects"),
        direct_uploads=_flag("STRATUS_DIRECT_UPLOADS", True),
        direct_url_seconds=_int("STRATUS_DIRECT_URL_SECONDS", 3600),
        sync_verify_bytes=_int("STRATUS_SYNC_VERIFY_BYTES", 512 * 1024 * 1024),
        verify_function=os.environ.get("STRATUS_VERIFY_FUNCTION", ""),
        gc_grace_seconds=_int("STRATUS_GC_GRACE_SECONDS", 24 * 3600),
        # In Lambda the flag cannot switch auth off: a deployed registry is private.
        auth=_flag("STRATUS_AUTH", False) or bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")),
        accounts_table=os.environ.get("STRATUS_ACCOUNTS_TABLE", prefix + "accounts"),
        auth_service=os.environ.get("STRATUS_AUTH_SERVICE", "stratus"),
        auth_issuer=os.environ.get("STRATUS_AUTH_ISSUER", "stratus"),
        auth_realm=os.environ.get("STRATUS_AUTH_REALM", ""),
        token_seconds=max(60, _int("STRATUS_TOKEN_SECONDS", 300)),
        refresh_token_seconds=_int("STRATUS_REFRESH_TOKEN_SECONDS", 30 * 24 * 3600),
        signing_key_parameter=os.environ.get("STRATUS_SIGNING_KEY_PARAMETER", ""),
        signing_key_file=os.environ.get("STRATUS_SIGNING_KEY_FILE", ".stratus/signing-key.pem"),
        admin_user=os.environ.get("STRATUS_ADMIN_USER", ""),
        admin_password=os.environ.get("STRATUS_ADMIN_PASSWORD", ""),
        admin_password_parameter=os.environ.get("STRATUS_ADMIN_PASSWORD_PARAMETER", ""),
        login_failures_per_user=_int("STRATUS_LOGIN_FAILURES_PER_USER", 10),
        login_failures_per_source=_int("STRATUS_LOGIN_FAILURES_PER_SOURCE", 30),
        login_failure_window_seconds=_int("STRATUS_LOGIN_FAILURE_WINDOW_SECONDS", 900),
        v1_pulls=_flag("STRATUS_V1_PULLS", True),
        v1_images_table=os.environ.get("STRATUS_V1_IMAGES_TABLE", prefix + "v1-images"),
    )


settings = load()
