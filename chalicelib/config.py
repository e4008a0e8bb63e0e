"""Stage settings, read once from the environment that `.chalice/config.json` sets per stage.

Each setting is declared once, in SETTINGS: its variable, parser, default, bounds and a line
for the README, whose settings table `python -m chalicelib.config` prints (a test keeps the
two equal). Values are checked at load, like Distribution's configuration parser: a value
that does not parse or is out of range stops the start with the variable's name, and a
`STRATUS_*` variable nobody reads is reported as a likely typo.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger("stratus.config")


class ConfigError(ValueError):
    """A setting's value does not parse or is out of range: a deployment error."""


def parse_flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def _text(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Setting:
    field: str | None  # the Settings attribute; None: read where it is used, when used
    env: str
    parse: Callable[[str], Any]
    default: Any  # a value, or a function of the table prefix for table names
    doc: str
    minimum: float | None = None
    shown_default: str | None = None  # how the README states the default, when not literal

    def value(self, environ: Mapping[str, str], prefix: str) -> Any:
        raw = environ.get(self.env, "")
        if not raw.strip():
            return self.default(prefix) if callable(self.default) else self.default
        try:
            value = self.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{self.env}={raw!r}: {error}") from None
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.env}={raw!r}: must be at least {self.minimum:g}")
        return value


def _table(name: str) -> Setting:
    field = name.replace("-", "_") + "_table"
    return Setting(
        field,
        f"STRATUS_{field.upper()}",
        _text,
        lambda prefix: prefix + name,
        f"the `{name}` DynamoDB table",
        shown_default=f"`<prefix>{name}`",
    )


KiB, MiB, DAY = 1024, 1024 * 1024, 24 * 3600

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "table_prefix", "STRATUS_TABLE_PREFIX", _text, "stratus-", "prefix of every table name"
    ),
    *(
        _table(name)
        for name in (
            "repositories",
            "tags",
            "manifests",
            "blobs",
            "uploads",
            "referrers",
            "blob-objects",
            "accounts",
            "v1-images",
            "audit",
        )
    ),
    Setting("bucket", "STRATUS_BUCKET", _text, "stratus-blobs", "the S3 bucket of blobs"),
    Setting(
        "max_request_bytes",
        "STRATUS_MAX_REQUEST_BYTES",
        int,
        0,
        "largest request body, answered `413` above it; `0`: no limit (AWS stages: 4500000)",
        minimum=0,
    ),
    Setting(
        "request_timeout_seconds",
        "STRATUS_REQUEST_TIMEOUT_SECONDS",
        float,
        0.0,
        "answer `504` as API Gateway does after this long, the handler running on; `0`: off",
        minimum=0,
    ),
    Setting(
        "inline_manifest_bytes",
        "STRATUS_INLINE_MANIFEST_BYTES",
        int,
        64 * KiB,
        "manifests up to this size live in DynamoDB items, larger ones in S3",
        minimum=0,
    ),
    Setting(
        "max_manifest_bytes",
        "STRATUS_MAX_MANIFEST_BYTES",
        int,
        4 * MiB,
        "largest manifest accepted",
        minimum=1,
    ),
    Setting(
        "presign_seconds",
        "STRATUS_PRESIGN_SECONDS",
        int,
        120,
        "lifetime of presigned blob URLs",
        minimum=1,
    ),
    Setting(
        "upload_ttl_seconds",
        "STRATUS_UPLOAD_TTL_SECONDS",
        int,
        DAY,
        "upload sessions older than this are aborted by cleanup",
        minimum=0,
    ),
    Setting(
        "referrers_api",
        "FEATURE_REFERRERS_API",
        parse_flag,
        True,
        "the OCI 1.1 referrers API (Quay's flag); off: 404, clients use the tag schema",
    ),
    Setting(
        "referrers_page_size",
        "STRATUS_REFERRERS_PAGE_SIZE",
        int,
        250,
        "referrers per response page",
        minimum=1,
    ),
    Setting(
        "read_cache_seconds",
        "STRATUS_READ_CACHE_SECONDS",
        float,
        1.0,
        "staleness bound of each container's cache of hot reads (tags, manifests, blob links,"
        " grants; docs/scale.md); writes made in the same container are seen at once; `0`: off",
        minimum=0,
    ),
    Setting(
        "direct_uploads",
        "STRATUS_DIRECT_UPLOADS",
        parse_flag,
        True,
        "the `_stratus` direct-to-S3 upload extension",
    ),
    Setting(
        "direct_url_seconds",
        "STRATUS_DIRECT_URL_SECONDS",
        int,
        3600,
        "lifetime of the direct uploads' presigned part URLs",
        minimum=60,
    ),
    Setting(
        "sync_verify_bytes",
        "STRATUS_SYNC_VERIFY_BYTES",
        int,
        512 * MiB,
        "direct uploads above this are verified asynchronously",
        minimum=0,
    ),
    Setting(
        "verify_function",
        "STRATUS_VERIFY_FUNCTION",
        _text,
        "",
        "the Lambda that verifies large direct uploads; empty: a thread (local mode)",
    ),
    Setting(
        "gc_grace_seconds",
        "STRATUS_GC_GRACE_SECONDS",
        int,
        DAY,
        "garbage collection leaves anything touched this recently",
        minimum=0,
    ),
    Setting(
        "gc_segments",
        "STRATUS_GC_SEGMENTS",
        int,
        8,
        "parallel-scan segments of the garbage collector's full backstop mark",
        minimum=1,
    ),
    Setting(
        "gc_backstop_hours",
        "STRATUS_GC_BACKSTOP_HOURS",
        float,
        24.0,
        "how often the full backstop mark runs (the routine run follows the tables' streams)",
        minimum=0.01,
    ),
    Setting(
        "gc_segment_queue",
        "STRATUS_GC_SEGMENT_QUEUE",
        _text,
        "",
        "SQS queue URL fanning the backstop's segments out to Lambdas; empty: in-process",
    ),
    Setting(
        "auth",
        "STRATUS_AUTH",
        parse_flag,
        False,
        "require tokens (always on in Lambda, whatever this says)",
    ),
    Setting(
        "auth_service",
        "STRATUS_AUTH_SERVICE",
        _text,
        "stratus",
        "the tokens' audience, named in every challenge",
    ),
    Setting("auth_issuer", "STRATUS_AUTH_ISSUER", _text, "stratus", "the tokens' issuer"),
    Setting(
        "auth_realm",
        "STRATUS_AUTH_REALM",
        _text,
        "",
        "the challenge's realm; empty: `<scheme>://<host>/v2/auth` of the request",
    ),
    Setting(
        "token_seconds",
        "STRATUS_TOKEN_SECONDS",
        int,
        300,
        "access token lifetime (they are not revoked: keep it short)",
        minimum=60,
    ),
    Setting(
        "refresh_token_seconds",
        "STRATUS_REFRESH_TOKEN_SECONDS",
        int,
        30 * DAY,
        "refresh token lifetime",
        minimum=60,
    ),
    Setting(
        "signing_key_parameter",
        "STRATUS_SIGNING_KEY_PARAMETER",
        _text,
        "",
        "the token key ring as an SSM SecureString (AWS stages)",
    ),
    Setting(
        "signing_key_file",
        "STRATUS_SIGNING_KEY_FILE",
        _text,
        ".stratus/signing-key.pem",
        "the token key ring as a local file, made on first start",
    ),
    Setting(
        "admin_user",
        "STRATUS_ADMIN_USER",
        _text,
        "",
        "the bootstrap superuser, created on its first login",
    ),
    Setting(
        "admin_password",
        "STRATUS_ADMIN_PASSWORD",
        _text,
        "",
        "the bootstrap superuser's password",
    ),
    Setting(
        "admin_password_parameter",
        "STRATUS_ADMIN_PASSWORD_PARAMETER",
        _text,
        "",
        "the bootstrap superuser's password as an SSM SecureString (AWS stages)",
    ),
    Setting(
        "login_failures_per_user",
        "STRATUS_LOGIN_FAILURES_PER_USER",
        int,
        10,
        "failed logins per user within the window before `429`",
        minimum=1,
    ),
    Setting(
        "login_failures_per_source",
        "STRATUS_LOGIN_FAILURES_PER_SOURCE",
        int,
        30,
        "failed logins per source address within the window before `429`",
        minimum=1,
    ),
    Setting(
        "login_failure_window_seconds",
        "STRATUS_LOGIN_FAILURE_WINDOW_SECONDS",
        int,
        900,
        "the failed-login window",
        minimum=1,
    ),
    Setting(
        "v1_pulls",
        "STRATUS_V1_PULLS",
        parse_flag,
        True,
        "Docker V1 pull endpoints (read-only)",
    ),
    Setting(
        "event_bus",
        "STRATUS_EVENT_BUS",
        _text,
        "default",
        "the EventBridge bus registry events go to (docs/events.md); `none`: no EventBridge",
    ),
    Setting(
        "audit_pulls",
        "STRATUS_AUDIT_PULLS",
        parse_flag,
        True,
        "record pulls in the audit log (one write per pull; off for volume)",
    ),
    Setting(
        "audit_retention_days",
        "STRATUS_AUDIT_RETENTION_DAYS",
        int,
        90,
        "audit log entries expire (DynamoDB TTL) after this many days",
        minimum=1,
    ),
    Setting(
        "audit_shards",
        "STRATUS_AUDIT_SHARDS",
        int,
        16,
        "partitions per repository, namespace and user in the audit table (hot keys)",
        minimum=1,
    ),
    Setting(
        "audit_export",
        "STRATUS_AUDIT_EXPORT",
        parse_flag,
        False,
        "export the audit log to S3 as gzip'd JSON lines for Athena, from the audit table's "
        "stream (docs/events.md); read by `chalice deploy` too",
    ),
    Setting(
        "audit_export_bucket",
        "STRATUS_AUDIT_EXPORT_BUCKET",
        _text,
        "",
        "the bucket the audit export writes to; empty: the registry's bucket",
    ),
    Setting(
        "audit_export_prefix",
        "STRATUS_AUDIT_EXPORT_PREFIX",
        _text,
        "audit/",
        "the audit export's key prefix (then `dt=YYYY-MM-DD/hour=HH/<batch>.json.gz`)",
    ),
    Setting(
        "proxycache_parameter_prefix",
        "STRATUS_PROXYCACHE_PARAMETER_PREFIX",
        _text,
        "/stratus/local/proxycache",
        "SSM path of the pull-through caches' upstream passwords (SecureStrings)",
    ),
    Setting(
        "proxycache_copy_function",
        "STRATUS_PROXYCACHE_COPY_FUNCTION",
        _text,
        "",
        "the Lambda that copies upstream blobs into S3; empty: a thread (local mode)",
    ),
    Setting(
        "proxycache_evict_seconds",
        "STRATUS_PROXYCACHE_EVICT_SECONDS",
        int,
        7 * DAY,
        "a cached tag nobody pulled for this long after it went stale expires (then GC)",
        minimum=0,
    ),
    Setting(
        "proxycache_blob_wait_seconds",
        "STRATUS_PROXYCACHE_BLOB_WAIT_SECONDS",
        float,
        20.0,
        "how long a blob pull waits for a copy an upstream cannot serve without our token",
        minimum=0,
    ),
    Setting(
        "proxycache_private_upstreams",
        "STRATUS_PROXYCACHE_PRIVATE_UPSTREAMS",
        parse_flag,
        False,
        "allow upstreams on loopback, private and link-local addresses (tests, local mode)",
    ),
    Setting(
        "webhook_queue",
        "STRATUS_WEBHOOK_QUEUE",
        _text,
        "",
        "SQS queue URL of webhook deliveries; empty: local mode's queue",
    ),
    Setting(
        "webhook_dead_letter_queue",
        "STRATUS_WEBHOOK_DEAD_LETTER_QUEUE",
        _text,
        "",
        "SQS queue URL of webhook deliveries given up on; empty: local mode's queue",
    ),
    Setting(
        "webhook_attempts",
        "STRATUS_WEBHOOK_ATTEMPTS",
        int,
        6,
        "deliveries tried this many times (exponential backoff), then dead-lettered",
        minimum=1,
    ),
    Setting(
        "webhook_backoff_seconds",
        "STRATUS_WEBHOOK_BACKOFF_SECONDS",
        int,
        30,
        "the first retry's delay; each next one doubles it (at most 12 hours)",
        minimum=0,
    ),
    Setting(
        "webhook_timeout_seconds",
        "STRATUS_WEBHOOK_TIMEOUT_SECONDS",
        float,
        5.0,
        "how long a webhook receiver may take to answer",
        minimum=0.1,
    ),
    Setting(
        "webhook_secret_prefix",
        "STRATUS_WEBHOOK_SECRET_PREFIX",
        _text,
        "/stratus/local/webhooks",
        "SSM path of the webhooks' signing secrets (SecureStrings)",
    ),
    Setting(
        "webhook_loopback",
        "STRATUS_WEBHOOK_LOOPBACK",
        parse_flag,
        True,
        "webhooks may be delivered to loopback addresses (local mode; always off in Lambda)",
    ),
    Setting(
        None,
        "STRATUS_OBSERVABILITY",
        parse_flag,
        False,
        "request logs at INFO and EMF metrics outside Lambda (always on in Lambda)",
    ),
)

# Variables read outside the Settings (at deploy time, by local mode, CLIs and tests): not
# typos, and documented where they are read.
OTHER_VARIABLES = frozenset(
    {
        "STRATUS_CLEANUP_RATE_MINUTES",  # app.py, at `chalice deploy`
        "STRATUS_WEBHOOK_QUEUE_NAME",
        "STRATUS_TAGS_STREAM_ARN",
        "STRATUS_MANIFESTS_STREAM_ARN",
        "STRATUS_AUDIT_STREAM_ARN",
        "STRATUS_GC_SEGMENT_QUEUE_NAME",
        "STRATUS_DATA_DIR",  # local mode
        "STRATUS_LOCAL_CLEANUP_SECONDS",
        "STRATUS_USE_AWS",
        "STRATUS_PROVISION",
        "STRATUS_RECORD_AWS_CALLS",
        "STRATUS_REGISTRY",  # the CLIs
        "STRATUS_USER",
        "STRATUS_PASSWORD",
        "STRATUS_PUSH_STATE",
        "STRATUS_TEST_AWS",  # the test suite
        "STRATUS_TEST_AWS_ENDPOINT_URL",
        "STRATUS_CAMPAIGN_EXAMPLES",
        "STRATUS_CAMPAIGN_RANDOM",
    }
)


@dataclass(frozen=True)
class Settings:
    region: str
    table_prefix: str
    repositories_table: str
    tags_table: str
    manifests_table: str
    blobs_table: str
    uploads_table: str
    referrers_table: str
    blob_objects_table: str
    accounts_table: str
    v1_images_table: str
    audit_table: str
    bucket: str
    max_request_bytes: int
    request_timeout_seconds: float
    inline_manifest_bytes: int
    max_manifest_bytes: int
    presign_seconds: int
    upload_ttl_seconds: int
    referrers_api: bool
    referrers_page_size: int
    read_cache_seconds: float
    direct_uploads: bool
    direct_url_seconds: int
    sync_verify_bytes: int
    verify_function: str
    gc_grace_seconds: int
    gc_segments: int
    gc_backstop_hours: float
    gc_segment_queue: str
    auth: bool
    auth_service: str
    auth_issuer: str
    auth_realm: str
    token_seconds: int
    refresh_token_seconds: int
    signing_key_parameter: str
    signing_key_file: str
    admin_user: str
    admin_password: str
    admin_password_parameter: str
    login_failures_per_user: int
    login_failures_per_source: int
    login_failure_window_seconds: int
    v1_pulls: bool
    proxycache_parameter_prefix: str
    proxycache_copy_function: str
    proxycache_evict_seconds: int
    proxycache_blob_wait_seconds: float
    proxycache_private_upstreams: bool
    event_bus: str
    audit_pulls: bool
    audit_retention_days: int
    audit_shards: int
    audit_export: bool
    audit_export_bucket: str
    audit_export_prefix: str
    webhook_queue: str
    webhook_dead_letter_queue: str
    webhook_attempts: int
    webhook_backoff_seconds: int
    webhook_timeout_seconds: float
    webhook_secret_prefix: str
    webhook_loopback: bool


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`STRATUS_*` names nobody reads, each with the declared name it most resembles."""
    known = {s.env for s in SETTINGS} | OTHER_VARIABLES
    reports = []
    for name in sorted(n for n in environ if n.startswith("STRATUS_") and n not in known):
        import difflib  # only for a name nobody reads: no weight on the cold start

        close = difflib.get_close_matches(name, known, n=1)
        reports.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return reports


def load(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    prefix = environ.get("STRATUS_TABLE_PREFIX") or "stratus-"
    values = {s.field: s.value(environ, prefix) for s in SETTINGS if s.field is not None}
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    # In Lambda the flag cannot switch auth off: a deployed registry is private.
    values["auth"] = values["auth"] or bool(environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    # Nor may a deployed registry deliver webhooks to loopback (SSRF).
    values["webhook_loopback"] = values["webhook_loopback"] and not environ.get(
        "AWS_LAMBDA_FUNCTION_NAME"
    )
    for report in unknown_variables(environ):
        logger.warning("unknown setting %s: it is ignored", report)
    return Settings(region=region, **values)


def _shown(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    default = setting.default
    if isinstance(default, bool):
        return "on" if default else "off"
    if default == "":
        return "unset"
    return f"`{default:g}`" if isinstance(default, float) else f"`{default}`"


def markdown_table() -> str:
    """The README's settings table, generated from SETTINGS."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {s.doc} | {_shown(s)} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


assert {f.name for f in fields(Settings)} == {s.field for s in SETTINGS if s.field} | {"region"}


def current(env: str) -> Any:
    """A setting read now rather than at load (one tests switch while the process runs)."""
    (setting,) = (s for s in SETTINGS if s.env == env)
    return setting.value(os.environ, "")


settings = load()

if __name__ == "__main__":
    print(markdown_table(), end="")
