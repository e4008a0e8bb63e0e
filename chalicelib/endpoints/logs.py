"""Usage logs (the audit log) through Quay's `/api/v1/.../logs` (chalicelib/events/audit.py).

- `GET /api/v1/repository/<repo>/logs`: the repository's admins;
- `GET /api/v1/organization/<org>/logs`: the namespace's admins (`performer=` narrows it);
- `GET /api/v1/user/logs`: what the caller did; superusers may name another `performer`.
`starttime` and `endtime` take Quay's `MM/DD/YYYY` (whole UTC days, end day included) or
an ISO 8601 time; the default is the last day. Pages hold `limit` entries (Quay's 20 by
default), newest first, and `next_page` continues.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from chalice import Response

from chalicelib import clock
from chalicelib.auth import logins
from chalicelib.auth.permissions import ADMIN, namespace_resource, namespace_role
from chalicelib.endpoints.accounts import require_role
from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.errors import BadQuery, Denied
from chalicelib.events import audit
from chalicelib.storage import accounts

PER_PAGE, MAX_PER_PAGE = 20, 100
_ACCOUNT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-+")


def _time(raw: str | None, name: str, *, end: bool) -> datetime | None:
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%m/%d/%Y").replace(tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    except ValueError:
        pass
    try:
        # An unescaped "+00:00" in a query string arrives as " 00:00".
        value = datetime.fromisoformat(raw.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery({name: raw[:40]}, message=f"{name}: MM/DD/YYYY or ISO 8601") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _page(request: RegistryRequest, by: str, value: str, performer: str | None = None) -> Response:
    """One page; `performer` keeps only that account's entries (a page may come out short,
    `next_page` still continues)."""
    now = clock.now()
    end = _time(request.param("endtime"), "endtime", end=True) or now + timedelta(seconds=1)
    start = _time(request.param("starttime"), "starttime", end=False) or end - timedelta(days=1)
    if end <= start:
        raise BadQuery(message="endtime must be after starttime")
    limit = request.count_param("limit")
    limit = PER_PAGE if limit is None else limit
    if not 0 < limit <= MAX_PER_PAGE:
        raise BadQuery({"limit": limit}, message=f"limit must be 1 to {MAX_PER_PAGE}")
    page = audit.query(by, value, start, end, limit, request.param("next_page"))
    body: dict[str, object] = {
        "start_time": format_datetime(start, usegmt=True),
        "end_time": format_datetime(end, usegmt=True),
        "logs": [
            audit.view(row)
            for row in page.entries
            if performer is None or row.performer == performer
        ],
    }
    if page.next_page:
        body["next_page"] = page.next_page
    return json_response(body)


def repository_logs(request: RegistryRequest, name: str) -> Response:
    require_role(logins.caller(request), name, ADMIN)
    return _page(request, audit.REPOSITORY, name)


def organization_logs(request: RegistryRequest, namespace: str) -> Response:
    caller = logins.caller(request)
    roles = accounts.read_for_login(None, None, [(namespace_resource(namespace), caller.name)])
    if namespace_role(caller, namespace, roles.roles) != ADMIN:
        raise Denied({"namespace": namespace}, message="namespace admin required")
    performer = request.param("performer")
    if performer:
        _check_account(performer)
    return _page(request, audit.NAMESPACE, namespace, performer or None)


def user_logs(request: RegistryRequest) -> Response:
    caller = logins.caller(request)
    performer = request.param("performer") or caller.name
    _check_account(performer)
    if performer != caller.name and not caller.superuser:
        raise Denied({"performer": performer}, message="only superusers see others' logs")
    return _page(request, audit.PERFORMER, performer)


def _check_account(name: str) -> None:
    if not 0 < len(name) <= 130 or not set(name) <= _ACCOUNT_CHARS:
        raise BadQuery({"performer": name[:40]}, message="not an account name")
