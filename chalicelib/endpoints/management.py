"""Management API (Quay's `/api/v1`): tags with their expiry, for the admin CLI.

Needs read access to the repository (Basic credentials or a token; open with auth off).
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime

from chalice import Response

from chalicelib import clock
from chalicelib.auth import logins
from chalicelib.auth.permissions import READ
from chalicelib.endpoints.accounts import require_role
from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.errors import BadQuery, NameUnknown
from chalicelib.registry.names import validate_tag
from chalicelib.storage import repositories, tags

MAX_LIMIT = 100


def _timestamp(value: datetime | None) -> dict[str, object]:
    return {} if value is None else {"ts": int(value.timestamp()), "rfc": format_datetime(value)}


def list_repository_tags(request: RegistryRequest, name: str) -> Response:
    """Tags with their expiry, like Quay's `GET /api/v1/repository/<name>/tag/`."""
    require_role(logins.caller(request), name, READ)
    limit = request.count_param("limit")
    limit = 50 if limit is None else limit
    if not 0 < limit <= MAX_LIMIT:
        raise BadQuery({"limit": limit}, message=f"limit must be 1 to {MAX_LIMIT}")
    last = request.param("last")
    if last:
        validate_tag(last)
    active_only = (request.param("onlyActiveTags") or "true").lower() != "false"
    items, more = tags.page(name, last, limit, include_expired=not active_only)
    if not items and not last and not repositories.exists(name):
        raise NameUnknown({"name": name})
    now = clock.now()
    rows = []
    for item in items:
        entry: dict[str, object] = {
            "name": item.name,
            "manifest_digest": item.digest,
            "media_type": item.media_type,
            "size": int(item.size),
            "start_ts": int(item.pushed_at.timestamp()),
            "last_modified": format_datetime(item.pushed_at),
            "expired": item.expires_at is not None and item.expires_at <= now,
        }
        expires = _timestamp(item.expires_at)
        if expires:
            entry["end_ts"] = expires["ts"]
            entry["expiration"] = expires["rfc"]
        rows.append(entry)
    return json_response({"tags": rows, "has_additional": more})
