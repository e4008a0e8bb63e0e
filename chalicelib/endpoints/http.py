"""The request a handler sees, built from the API Gateway proxy event, and response helpers.

Repeated header lines (skopeo and podman send `Accept` six times) arrive in Lambda only in
`multiValueHeaders`; this is where they are merged, so handlers never miss one.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalice import Chalice, Response

from chalicelib.errors import BadQuery, InvalidRequest

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
# Response headers as Chalice takes them: a list value repeats the header line.
Headers = dict[str, str | list[str]]
_COUNT = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class RegistryRequest:
    method: str
    path: str  # everything after /v2/
    headers: dict[str, list[str]]  # lower-cased names, every line kept
    query: dict[str, list[str]]
    body: bytes
    source_ip: str | None = None
    # "https://registry.example.com": where clients reach us, for the auth challenge's realm.
    base_url: str = ""
    # What the caller's token allows (chalicelib/auth/access.py); None when auth is off.
    access: Any = None
    request_id: str | None = None  # API Gateway's, for the request log

    @classmethod
    def from_event(cls, event: dict[str, Any], body: bytes) -> RegistryRequest:
        headers: dict[str, list[str]] = {}
        for name, values in (event.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), []).extend(values or [])
        for name, value in (event.get("headers") or {}).items():
            headers.setdefault(name.lower(), [value])
        query: dict[str, list[str]] = {}
        for name, values in (event.get("multiValueQueryStringParameters") or {}).items():
            query[name] = list(values or [])
        for name, value in (event.get("queryStringParameters") or {}).items():
            query.setdefault(name, [value])
        proxy = (event.get("pathParameters") or {}).get("proxy") or ""
        context = event.get("requestContext") or {}
        return cls(
            method=context["httpMethod"].upper(),
            path=proxy,
            headers=headers,
            query=query,
            body=body,
            source_ip=(context.get("identity") or {}).get("sourceIp"),
            request_id=context.get("requestId"),
            base_url=_base_url(event, headers),
        )

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        """All comma-separated members over all lines of a list-valued header."""
        members: list[str] = []
        for line in self.headers.get(name.lower(), []):
            members.extend(part.strip() for part in line.split(",") if part.strip())
        return members

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, as every management API write takes it."""
        try:
            document = json.loads(self.body or b"{}")
        except (ValueError, RecursionError) as error:
            raise InvalidRequest(message="the body is not JSON") from error
        if not isinstance(document, dict):
            raise InvalidRequest(message="the body must be a JSON object")
        return document

    def count_param(self, name: str) -> int | None:
        """A non-negative integer query parameter, None when absent or empty.

        ASCII digits only: `str.isdigit` also accepts `²`, which `int` refuses; and a bound
        on length keeps `int` from refusing thousands of digits.
        """
        raw = self.param(name)
        if raw is None or raw == "":
            return None
        if not _COUNT.fullmatch(raw):
            raise BadQuery({name: raw[:40]}, message=f"{name} must be a non-negative integer")
        return int(raw)


def _base_url(event: dict[str, Any], headers: dict[str, list[str]]) -> str:
    """Scheme, host and, on an execute-api URL, the stage prefix (`/api`) before `/v2/`."""
    context = event.get("requestContext") or {}
    proto = (headers.get("x-forwarded-proto") or ["https"])[0]
    host = (headers.get("host") or [context.get("domainName") or "localhost"])[0]
    full, path = context.get("path") or "", event.get("path") or ""
    prefix = full[: len(full) - len(path)] if path and full.endswith(path) else ""
    return f"{proto}://{host}{prefix}"


def empty(status: int, headers: Mapping[str, str | list[str]] | None = None) -> Response:
    return Response(body="", status_code=status, headers={"Content-Length": "0", **(headers or {})})


def json_response(
    document: Any, status: int = 200, headers: Mapping[str, str | list[str]] | None = None
) -> Response:
    return Response(
        body=json.dumps(document, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class StratusApp(Chalice):
    """Chalice with a per-thread `current_request`.

    Lambda serves one request per container at a time, so this changes nothing there; the
    local server runs the same app on many threads, where a shared attribute would let one
    request read another's event.
    """

    _local = threading.local()

    @property
    def current_request(self) -> Any:
        return getattr(self._local, "request", None)

    @current_request.setter
    def current_request(self, value: Any) -> None:
        self._local.request = value
