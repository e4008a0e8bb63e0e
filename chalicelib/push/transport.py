"""Talking to a registry: the Docker token protocol (or Basic), retries with backoff for
transient failures, and clear errors for the rest."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from .credentials import Credentials

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class PushError(Exception):
    """The registry refused or failed (exit code 1)."""

    exit_code = 1


class AuthError(PushError):
    """No credentials, wrong ones, or not allowed (exit code 4)."""

    exit_code = 4


class NetworkError(PushError):
    """The registry or S3 could not be reached, even after retries (exit code 5)."""

    exit_code = 5


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s, ... for `attempts` tries in all."""

    attempts: int = 6
    first: float = 0.5
    cap: float = 20.0

    def delays(self) -> Iterator[float]:
        for attempt in range(self.attempts - 1):
            yield min(self.cap, self.first * 2**attempt) * random.uniform(0.8, 1.2)


def describe(answer: requests.Response) -> str:
    """`PUT /v2/...: 400 DIGEST_INVALID: message` from an OCI error body, or the raw text."""
    try:
        error = answer.json()["errors"][0]
        detail = f"{error.get('code')}: {error.get('message')}"
    except (ValueError, KeyError, IndexError, TypeError):
        detail = answer.text.strip()[:300] or answer.reason
    path = answer.url.split("?", 1)[0]
    return f"{answer.request.method} {path}: {answer.status_code} {detail}"


def send(
    session: requests.Session, backoff: Backoff, method: str, url: str, **kwargs: Any
) -> requests.Response:
    """One request, retried on connection errors and on 408/429/5xx answers."""
    delays = backoff.delays()
    while True:
        try:
            answer = session.request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            delay = next(delays, None)
            if delay is None:
                raise NetworkError(f"{method} {url.split('?', 1)[0]}: {error}") from error
            time.sleep(delay)
            continue
        if answer.status_code in RETRY_STATUSES:
            delay = next(delays, None)
            if delay is not None:
                time.sleep(float(answer.headers.get("Retry-After") or delay))
                continue
        return answer


class Client:
    """Requests to one repository of one registry, authenticated as the registry asks."""

    def __init__(
        self,
        base: str,
        repository: str,
        credentials: Credentials | None,
        backoff: Backoff | None = None,
        pool: int = 8,
    ) -> None:
        self.base, self.repository = base.rstrip("/"), repository
        self.credentials, self.backoff = credentials, backoff or Backoff()
        self.http = _session(pool)
        self.s3 = _session(pool)  # presigned URLs: never any registry credentials on them
        self._authorization: str | None = None
        self._scopes = {f"repository:{repository}:pull,push"}
        self._challenge: dict[str, str] | None = None  # the Bearer challenge, once seen
        self._auth_lock = threading.Lock()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def request(self, method: str, path: str, *expected: int, **kwargs: Any) -> requests.Response:
        """A registry request; an answer not in `expected` (when given) is a PushError."""
        kwargs.setdefault("timeout", 300)
        answer = self._send(method, path, **kwargs)
        if answer.status_code == 401:
            with self._auth_lock:
                self._authenticate(answer)
            answer = self._send(method, path, **kwargs)
        if answer.status_code in (401, 403):
            raise AuthError(f"{describe(answer)} {self._who()}")
        if expected and answer.status_code not in expected:
            raise PushError(describe(answer))
        return answer

    def _basic_pair(self) -> tuple[str, str] | None:
        if self.credentials is None:
            return None
        return self.credentials.username, self.credentials.password

    def _who(self) -> str:
        if self.credentials is None:
            return "anonymously"
        return f"as {self.credentials.username} ({self.credentials.origin})"

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self._authorization:
            headers["Authorization"] = self._authorization
        return send(self.http, self.backoff, method, self.url(path), headers=headers, **kwargs)

    def _authenticate(self, challenge: requests.Response) -> None:
        scheme, _, rest = challenge.headers.get("WWW-Authenticate", "").partition(" ")
        fields = dict(_CHALLENGE.findall(rest))
        if scheme.lower() == "basic":
            if not self.credentials:
                raise AuthError(f"{describe(challenge)}: log in, or give --creds")
            self._authorization = _basic(self.credentials)
            return
        if scheme.lower() != "bearer" or "realm" not in fields:
            raise AuthError(f"{describe(challenge)}: no challenge this client understands")
        if fields.get("scope"):
            self._scopes.add(fields["scope"])
        self._challenge = fields
        self._authorization = "Bearer " + self._token(fields)

    def add_pull_scope(self, repository: str) -> None:
        """Also ask for pull on `repository` (a mount's `from`), if tokens are in use."""
        scope = f"repository:{repository}:pull"
        with self._auth_lock:  # blobs are pushed from many threads: one refresh, then all
            if scope in self._scopes:
                return
            self._scopes.add(scope)
            if self._challenge is not None:
                self._authorization = "Bearer " + self._token(self._challenge)

    def _token(self, fields: dict[str, str]) -> str:
        params: dict[str, Any] = {"scope": sorted(self._scopes)}
        if fields.get("service"):
            params["service"] = fields["service"]
        if self.credentials and self.credentials.refresh:  # oauth.md: the refresh grant
            form = {
                **params,
                "scope": " ".join(params["scope"]),
                "grant_type": "refresh_token",
                "refresh_token": self.credentials.password,
                "client_id": "stratus-push",
            }
            answer = send(self.http, self.backoff, "POST", fields["realm"], data=form)
        else:
            auth = self._basic_pair()
            answer = send(self.http, self.backoff, "GET", fields["realm"], params=params, auth=auth)
        if answer.status_code != 200:
            origin = f" from {self.credentials.origin}" if self.credentials else ""
            raise AuthError(f"token refused{origin}: {describe(answer)}")
        doc = answer.json()
        return str(doc.get("token") or doc.get("access_token"))


def _basic(credentials: Credentials) -> str:
    return requests.auth._basic_auth_str(credentials.username, credentials.password)


def _session(pool: int) -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 10))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
