"""Proxy cache configuration, Quay's `/api/v1/organization/<org>/proxycache` and
`/validateproxycache`: organization admins only; the password is written to SSM and never
returned or logged."""

from __future__ import annotations

import logging
from typing import Any

from chalice import Response

from chalicelib import clock
from chalicelib.auth import logins
from chalicelib.endpoints.accounts import _namespace, _require_namespace_admin
from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.errors import AccountUnknown, AlreadyExists, InvalidRequest
from chalicelib.storage import proxycache as store
from chalicelib.storage.proxycache import CacheConfig

logger = logging.getLogger(__name__)
DEFAULT_EXPIRATION = 86400
MAX_EXPIRATION = 10 * 365 * 86400  # beyond this a date would not fit DynamoDB's TTL sensibly
FIELDS = {
    "upstream_registry",
    "expiration_s",
    "insecure",
    "upstream_registry_username",
    "upstream_registry_password",
    "org_name",
}


def _admin(request: RegistryRequest, namespace: str) -> None:
    _require_namespace_admin(logins.caller(request), _namespace(namespace))


def _view(cache: CacheConfig | None) -> dict[str, Any]:
    """Quay's `proxy_cache_view`: no username or password, ever."""
    if cache is None:
        return {"upstream_registry": "", "expiration_s": "", "insecure": ""}
    return {
        "upstream_registry": cache.upstream_registry,
        "expiration_s": cache.expiration_s,
        "insecure": cache.insecure,
    }


def _parsed(namespace: str, document: dict[str, Any]) -> tuple[CacheConfig, str | None]:
    """The configuration a request describes, checked; and its password."""
    from chalicelib.proxycache.upstream import parse_location

    unknown = sorted(set(document) - FIELDS)
    if unknown:
        raise InvalidRequest({"unknown": unknown}, message="unknown fields")
    upstream = document.get("upstream_registry")
    insecure = document.get("insecure", False)
    if not isinstance(insecure, bool):
        raise InvalidRequest({"insecure": insecure}, message="insecure must be true or false")
    if not isinstance(upstream, str) or not upstream:
        raise InvalidRequest(message="upstream_registry is required")
    try:
        parse_location(upstream, insecure)
    except ValueError as error:
        raise InvalidRequest({"upstream_registry": upstream}, message=str(error)) from None
    expiration = document.get("expiration_s")
    expiration = DEFAULT_EXPIRATION if expiration in (None, "") else expiration
    if type(expiration) is not int or not 0 <= expiration <= MAX_EXPIRATION:
        raise InvalidRequest(
            {"expiration_s": expiration},
            message=f"expiration_s must be seconds, 0 to {MAX_EXPIRATION}",
        )
    username = document.get("upstream_registry_username") or None
    password = document.get("upstream_registry_password") or None
    if not all(v is None or isinstance(v, str) for v in (username, password)):
        raise InvalidRequest(message="upstream credentials must be strings")
    if (username is None) != (password is None):
        raise InvalidRequest(
            message="give both upstream_registry_username and upstream_registry_password, "
            "or neither"
        )
    cache = CacheConfig(namespace, upstream, expiration, insecure, username, None, clock.now())
    return cache, password


def get_config(request: RegistryRequest, namespace: str) -> Response:
    _admin(request, namespace)
    return json_response(_view(store.get(namespace)))


def create_config(request: RegistryRequest, namespace: str) -> Response:

    _admin(request, namespace)
    cache, password = _parsed(namespace, request.json_object())
    try:
        store.create(
            namespace,
            cache.upstream_registry,
            cache.expiration_s,
            cache.insecure,
            cache.username,
            password,
        )
    except store.ConfigExists:
        raise AlreadyExists(
            {"namespace": namespace}, message="Proxy Cache Configuration already exists"
        ) from None
    logger.info("proxy cache of %s set to %s", namespace, cache.upstream_registry)
    return json_response("Created", 201)


def delete_config(request: RegistryRequest, namespace: str) -> Response:

    _admin(request, namespace)
    if not store.delete(namespace):
        raise AccountUnknown({"namespace": namespace}, message="no proxy cache configuration")
    return json_response("Deleted", 201)


def validate_config(request: RegistryRequest, namespace: str) -> Response:
    """Quay's answers: 202 "Valid" or "Anonymous"; a clear 400 when the upstream refuses."""
    from chalicelib.proxycache import upstream

    _admin(request, namespace)
    cache, password = _parsed(namespace, request.json_object())
    try:
        verdict = upstream.ping(cache, password)
    except upstream.UpstreamAuthFailed as error:
        raise InvalidRequest(
            error.detail,
            message="Failed login to remote registry. Please verify entered details and try again.",
        ) from None
    except upstream.UpstreamError as error:
        raise InvalidRequest(error.detail, message=error.message) from None
    return json_response(verdict, 202)
