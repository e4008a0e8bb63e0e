"""Webhooks through Quay's `/api/v1/repository/<repo>/notification/` (and, a Stratus
addition, `/api/v1/organization/<org>/notification/` for every repository of a namespace).

Quay's fields: `event`, `method` ("webhook", the only method here), `config` (`url`, and
an optional `secret` that signs deliveries: stored in SSM, never returned), `eventConfig`,
`title`; answers carry `uuid`, `config.url`, `event_config` and `number_of_failures`.
`POST .../notification/<uuid>/test` queues a test delivery, `POST .../notification/<uuid>`
resets the failure count, and `GET .../notification/<uuid>/deliveries` shows the latest
deliveries and their status. A repository's admins manage its webhooks; a namespace's
admins the namespace's.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Response

from chalicelib import config
from chalicelib.auth import logins
from chalicelib.auth.permissions import ADMIN, namespace_resource, namespace_role
from chalicelib.endpoints.accounts import require_role
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.errors import AccountUnknown, Denied, InvalidRequest
from chalicelib.events import addresses, schema, webhooks
from chalicelib.storage import accounts
from chalicelib.storage.models import NotificationModel

MIN_SECRET, MAX_SECRET = 16, 256
MAX_PER_RESOURCE = 25


def _view(item: NotificationModel) -> dict[str, Any]:
    return {
        "uuid": item.sk,
        "title": item.title,
        "event": item.event,
        "method": item.method,
        "config": {"url": item.url, "signed": bool(item.signed)},
        "event_config": json.loads(item.event_config or "{}"),
        "number_of_failures": int(item.failures or 0),
    }


def _checked_url(url: object) -> tuple[str, bool]:
    """The URL, and whether it reaches loopback (allowed in local mode only)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidRequest(message="config.url must be an http(s) URL")
    try:
        target = addresses.resolve(url)
    except addresses.AddressRefused as error:
        raise InvalidRequest({"url": url[:200]}, message=f"webhook URL refused: {error}") from None
    return url, addresses.refused_reason(target.address) is None and _loopback(target.address)


def _loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def _secret(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not MIN_SECRET <= len(value) <= MAX_SECRET:
        raise InvalidRequest(message=f"config.secret must be {MIN_SECRET}-{MAX_SECRET} characters")
    return value


def _create(request: RegistryRequest, resource: str) -> Response:
    document = request.json_object()
    event = document.get("event")
    if event not in schema.KINDS:
        raise InvalidRequest({"event": event}, message=f"event must be one of {schema.KINDS}")
    if document.get("method", webhooks.METHOD) != webhooks.METHOD:
        raise InvalidRequest({"method": document.get("method")}, message="method: webhook")
    settings = document.get("config")
    if not isinstance(settings, dict):
        raise InvalidRequest(message="config must be an object with a url")
    url, loopback = _checked_url(settings.get("url"))
    secret = _secret(settings.get("secret"))
    event_config = document.get("eventConfig", document.get("event_config")) or {}
    title = document.get("title")
    if not isinstance(event_config, dict) or not isinstance(title, str | None):
        raise InvalidRequest(message="eventConfig must be an object and title a string")
    if len(webhooks.list_for(resource)) >= MAX_PER_RESOURCE:
        raise InvalidRequest(message=f"at most {MAX_PER_RESOURCE} webhooks each")
    item = webhooks.create(resource, event, url, title and title[:200], event_config, secret)
    view = _view(item)
    if loopback and config.settings.webhook_loopback:
        view["warning"] = "local mode: deliveries to loopback are allowed (never on AWS stages)"
    return json_response(view, 201)


def _found(resource: str, uuid: str) -> NotificationModel:
    item = webhooks.get(resource, uuid)
    if item is None:
        raise AccountUnknown({"uuid": uuid}, message="no such notification")
    return item


def _list(resource: str) -> Response:
    return json_response({"notifications": [_view(i) for i in webhooks.list_for(resource)]})


def _one(request: RegistryRequest, resource: str, uuid: str) -> Response:
    item = _found(resource, uuid)
    if request.method == "DELETE":
        webhooks.delete(item)
        return empty(204)
    if request.method == "POST":  # Quay: reset the failure count
        webhooks.reset_failures(item)
        return empty(204)
    return json_response(_view(item))


def _test(resource: str, uuid: str) -> Response:
    event_id = webhooks.test_delivery(resource, _found(resource, uuid))
    return json_response({"event_id": event_id})


def _deliveries(resource: str, uuid: str) -> Response:
    _found(resource, uuid)
    rows = [
        {
            "event_id": row.event_id,
            "event": row.event,
            "status": row.status,
            "attempts": int(row.attempts or 0),
            "http_status": int(row.http_status) if row.http_status is not None else None,
            "error": row.error,
            "updated": row.updated_at.isoformat(),
        }
        for row in webhooks.deliveries(uuid)
    ]
    return json_response({"deliveries": rows})


# -- repository webhooks (repository admins) ----------------------------------------------------


def _repository(request: RegistryRequest, name: str) -> str:
    require_role(logins.caller(request), name, ADMIN)
    return name


def repository_notifications(request: RegistryRequest, name: str) -> Response:
    resource = _repository(request, name)
    return _create(request, resource) if request.method == "POST" else _list(resource)


def repository_notification(request: RegistryRequest, name: str, uuid: str) -> Response:
    return _one(request, _repository(request, name), uuid)


def repository_notification_test(request: RegistryRequest, name: str, uuid: str) -> Response:
    return _test(_repository(request, name), uuid)


def repository_notification_deliveries(request: RegistryRequest, name: str, uuid: str) -> Response:
    return _deliveries(_repository(request, name), uuid)


# -- namespace webhooks (namespace admins) ------------------------------------------------------


def _namespace(request: RegistryRequest, namespace: str) -> str:
    caller = logins.caller(request)
    roles = accounts.read_for_login(None, None, [(namespace_resource(namespace), caller.name)])
    if namespace_role(caller, namespace, roles.roles) != ADMIN:
        raise Denied({"namespace": namespace}, message="namespace admin required")
    return namespace_resource(namespace)


def namespace_notifications(request: RegistryRequest, namespace: str) -> Response:
    resource = _namespace(request, namespace)
    return _create(request, resource) if request.method == "POST" else _list(resource)


def namespace_notification(request: RegistryRequest, namespace: str, uuid: str) -> Response:
    return _one(request, _namespace(request, namespace), uuid)


def namespace_notification_test(request: RegistryRequest, namespace: str, uuid: str) -> Response:
    return _test(_namespace(request, namespace), uuid)


def namespace_notification_deliveries(
    request: RegistryRequest, namespace: str, uuid: str
) -> Response:
    return _deliveries(_namespace(request, namespace), uuid)
