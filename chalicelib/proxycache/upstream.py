"""The upstream registry of a pull-through cache: where it is, and how to ask it.

urllib3 (botocore's own HTTP library, so present in Lambda) with short timeouts and no
automatic redirects: every redirect is looked at before anything follows it. Auth is the
Docker token protocol (anonymous, or Basic credentials at the token realm) or plain Basic,
as the upstream's challenge asks; tokens are kept per repository until they expire.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

from chalicelib import config
from chalicelib.errors import RegistryError
from chalicelib.storage.proxycache import CacheConfig

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_TIMEOUT = urllib3.Timeout(connect=5.0, read=20.0)


class UpstreamError(RegistryError):
    """The upstream failed or could not be reached: a 502 naming it, never our secrets."""

    code, status, message = "UNKNOWN", 502, "the proxy cache's upstream registry failed"


class UpstreamUnreachable(UpstreamError):
    message = "the proxy cache's upstream registry is unreachable"


class UpstreamAuthFailed(UpstreamError):
    """403 DENIED rather than a 502: clients print a 4xx answer's message, and the pull is
    denied in effect, whoever asks, until an org admin fixes the credentials."""

    code, status, message = "DENIED", 403, "the upstream refused the proxy cache's credentials"


class UpstreamNotAllowed(RegistryError):
    code, status, message = "DENIED", 403, "this upstream address is not allowed"


@dataclass(frozen=True)
class Location:
    """`upstream_registry` split: the API's base URL and the path prefix of repositories."""

    host: str  # as configured (docker.io, quay.io, 127.0.0.1:5000)
    base: str  # https://registry-1.docker.io
    prefix: str  # "" or "projectquay"

    def repository(self, name: str) -> str:
        """The upstream repository of cached `org/<rest>`; Docker Hub's `library/` rule."""
        rest = name.split("/", 1)[1]
        upstream = f"{self.prefix}/{rest}" if self.prefix else rest
        if self.host == DOCKER_HUB and "/" not in upstream:
            upstream = f"library/{upstream}"
        return upstream


_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


def parse_location(upstream_registry: str, insecure: bool) -> Location:
    """`host[:port][/prefix]`; ValueError for anything else (schemes, credentials, paths
    that are no repository prefix)."""
    host, _, prefix = upstream_registry.strip().partition("/")
    if not _HOST.fullmatch(host) or (prefix and not _PATH.fullmatch(prefix)):
        raise ValueError("upstream_registry must be host[:port][/path], e.g. quay.io/projectquay")
    api_host = DOCKER_HUB_API if host == DOCKER_HUB else host
    scheme = "http" if insecure else "https"
    return Location(host, f"{scheme}://{api_host}", prefix)


def check_address(base: str) -> None:
    """Refuse URLs (upstream, token realm, redirect) on loopback, private, link-local or
    reserved addresses, so an org admin cannot make the registry probe its own network,
    unless the stage allows it (tests, local mirrors)."""
    if config.settings.proxycache_private_upstreams:
        return
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UpstreamNotAllowed({"url": base.split("?", 1)[0]})
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError as error:
        raise UpstreamUnreachable(
            {"upstream": parts.netloc}, message=f"cannot resolve: {error}"
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UpstreamNotAllowed({"upstream": parts.netloc})


_pool: urllib3.PoolManager | None = None
_tokens: dict[tuple[str, ...], tuple[str, float]] = {}
_lock = threading.Lock()


def _http() -> urllib3.PoolManager:
    global _pool
    if _pool is None:
        _pool = urllib3.PoolManager(
            num_pools=8, maxsize=10, retries=urllib3.Retry(total=0, redirect=False)
        )
    return _pool


class Upstream:
    """One upstream repository as the cache organization's credentials see it."""

    def __init__(self, cache: CacheConfig, name: str, password: str | None) -> None:
        self.cache = cache
        self.location = parse_location(cache.upstream_registry, cache.insecure)
        self.repository = self.location.repository(name)
        self.credentials = (cache.username, password or "") if cache.username else None
        self._key = (
            self.location.base,
            self.repository,
            cache.username or "",
            cache.updated_at.isoformat(),
        )

    def url(self, path: str) -> str:
        return f"{self.location.base}/v2/{self.repository}/{path}"

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> urllib3.BaseHTTPResponse:
        """One request, authenticated as the upstream's challenge asks; 401/403 after
        authenticating are UpstreamAuthFailed."""
        check_address(self.location.base)
        answer = self._send(method, self.url(path), headers or {}, self._authorization(), **kwargs)
        if answer.status == 401:
            answer.drain_conn()
            authorization = self._authenticate(answer.headers.get("WWW-Authenticate", ""))
            answer = self._send(method, self.url(path), headers or {}, authorization, **kwargs)
        if answer.status in (401, 403):
            raise UpstreamAuthFailed(
                {"upstream": self.location.host, "status": answer.status}, message=self._refused()
            )
        if answer.status >= 500 or answer.status == 429:
            raise UpstreamError(
                {"upstream": self.location.host, "status": answer.status},
                message=f"upstream {self.location.host} answered {answer.status}",
            )
        return answer

    def _refused(self) -> str:
        who = f"as {self.cache.username}" if self.cache.username else "anonymously"
        return (
            f"upstream {self.location.host} refused access to {self.repository} {who}: check "
            "the organization's proxy cache credentials (validateproxycache)"
        )

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        authorization: str | None,
        **kwargs: Any,
    ) -> urllib3.BaseHTTPResponse:
        sent = dict(headers)
        if authorization:
            sent["Authorization"] = authorization
        try:
            return _http().request(
                method, url, headers=sent, redirect=False, timeout=_TIMEOUT, **kwargs
            )
        except urllib3.exceptions.HTTPError as error:
            raise UpstreamUnreachable(
                {"upstream": self.location.host},
                message=f"upstream {self.location.host} is unreachable: {type(error).__name__}",
            ) from None

    def _authorization(self) -> str | None:
        with _lock:
            token = _tokens.get(self._key)
        if token is not None and token[1] > time.monotonic():
            return token[0]
        return None

    def needs_credentials(self) -> bool:
        """True once the upstream has asked for a token or Basic credentials."""
        return self._authorization() is not None

    def _basic(self) -> str | None:
        if self.credentials is None:
            return None
        raw = f"{self.credentials[0]}:{self.credentials[1]}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authenticate(self, challenge: str) -> str:
        scheme, _, rest = challenge.partition(" ")
        fields = dict(_CHALLENGE.findall(rest))
        if scheme.lower() == "basic":
            authorization = self._basic()
            if authorization is None:
                raise UpstreamAuthFailed({"upstream": self.location.host}, message=self._refused())
            return self._remember(authorization, 3600)
        if scheme.lower() != "bearer" or not fields.get("realm", "").startswith("http"):
            raise UpstreamError(
                {"upstream": self.location.host},
                message=f"upstream {self.location.host} sent no challenge a registry client "
                "understands",
            )
        query = {"scope": f"repository:{self.repository}:pull"}
        if fields.get("service"):
            query["service"] = fields["service"]
        headers = {}
        basic = self._basic()
        if basic:
            headers["Authorization"] = basic
        url = f"{fields['realm']}?{urlencode(query)}"
        check_address(fields["realm"])  # the realm is the upstream's word: checked as well
        try:
            answer = _http().request("GET", url, headers=headers, redirect=False, timeout=_TIMEOUT)
        except urllib3.exceptions.HTTPError:
            raise UpstreamUnreachable(
                {"upstream": self.location.host},
                message=f"the token service of {self.location.host} is unreachable",
            ) from None
        if answer.status != 200:
            raise UpstreamAuthFailed(
                {"upstream": self.location.host, "token_status": answer.status},
                message=self._refused(),
            )
        try:
            document = answer.json()
            token = str(document.get("token") or document["access_token"])
            lifetime = int(document.get("expires_in") or 60)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UpstreamError(
                {"upstream": self.location.host}, message="the upstream's token answer is invalid"
            ) from None
        return self._remember(f"Bearer {token}", lifetime)

    def _remember(self, authorization: str, lifetime: int) -> str:
        with _lock:
            if len(_tokens) > 1000:
                _tokens.clear()
            # Renewed a little early, so a token never expires in flight.
            _tokens[self._key] = (authorization, time.monotonic() + max(10, lifetime - 10))
        return authorization


def ping(cache: CacheConfig, password: str | None) -> str:
    """validateproxycache: "Valid" when the credentials (or anonymous access) get a token
    or pass `/v2/`, "Anonymous" when the upstream asks for credentials none were given for."""
    location = parse_location(cache.upstream_registry, cache.insecure)
    check_address(location.base)
    probe = Upstream(cache, f"x/{location.prefix or 'library'}", password)
    try:
        answer = _http().request("GET", f"{location.base}/v2/", redirect=False, timeout=_TIMEOUT)
    except urllib3.exceptions.HTTPError:
        raise UpstreamUnreachable(
            {"upstream": location.host}, message=f"upstream {location.host} is unreachable"
        ) from None
    if answer.status == 200:
        return "Valid"
    if answer.status != 401:
        raise UpstreamError(
            {"upstream": location.host, "status": answer.status},
            message=f"upstream {location.host} answered {answer.status} at /v2/",
        )
    challenge = answer.headers.get("WWW-Authenticate", "")
    if probe.credentials is None:
        return "Anonymous"
    authorization = probe._authenticate(challenge)
    if challenge.lower().startswith("bearer"):
        return "Valid"
    again = _http().request(
        "GET",
        f"{location.base}/v2/",
        headers={"Authorization": authorization},
        redirect=False,
        timeout=_TIMEOUT,
    )
    if again.status != 200:
        raise UpstreamAuthFailed({"upstream": location.host}, message=probe._refused())
    return "Valid"
