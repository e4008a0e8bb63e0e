"""Management API (Quay's `/api/v1`): repositories, their tags with expiry, size and
platforms, and their manifests, for the admin CLI and the web console.

Reads need read access to the repository (Basic credentials or a token, or none for a
public repository; open with auth off); changing a tag needs write access.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from chalice import Response

from chalicelib import clock
from chalicelib.auth.permissions import (
    ADMIN,
    EVERYONE,
    READ,
    WRITE,
    lookup_keys,
    namespace_of,
    namespace_resource,
    role_on,
)
from chalicelib.endpoints.accounts import body_of, require_role, viewer
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.errors import BadQuery, InvalidRequest, ManifestUnknown, NameUnknown
from chalicelib.registry import describe
from chalicelib.registry.digests import parse_digest
from chalicelib.registry.names import validate_tag
from chalicelib.storage import accounts, blobs, inventory, manifests, repositories, tags
from chalicelib.storage.models import TagModel

MAX_LIMIT = 100


def _timestamp(value: datetime | None) -> dict[str, object]:
    return {} if value is None else {"ts": int(value.timestamp()), "rfc": format_datetime(value)}


def list_repository_tags(request: RegistryRequest, name: str) -> Response:
    """Tags with their expiry, like Quay's `GET /api/v1/repository/<name>/tag/`."""
    require_role(viewer(request), name, READ)
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
    described = _describe_page(name, items)
    rows = []
    for item in items:
        entry: dict[str, object] = {
            "name": item.name,
            "manifest_digest": item.digest,
            "media_type": item.media_type,
            "manifest_size": int(item.size),
            "start_ts": int(item.pushed_at.timestamp()),
            "last_modified": format_datetime(item.pushed_at),
            "expired": item.expires_at is not None and item.expires_at <= now,
            **described.get(item.digest, {"size": None}),
        }
        expires = _timestamp(item.expires_at)
        if expires:
            entry["end_ts"] = expires["ts"]
            entry["expiration"] = expires["rfc"]
        rows.append(entry)
    return json_response({"tags": rows, "has_additional": more})


def _describe_page(name: str, items: list[TagModel]) -> dict[str, dict[str, object]]:
    """Quay's `size` (compressed bytes of config and layers; for an index, of every
    platform's image) with kind and platforms, from the tags' inline manifest copies and one
    BatchGetItem for the children of the page's indexes (none for a page of images)."""
    parsed = {}
    for item in items:
        document = describe.parse(item.body)
        if document is not None:
            parsed[item.digest] = describe.describe(item.media_type, document)
    wanted = {str(c.get("digest")) for d in parsed.values() for c in d.children}
    children = {}
    for digest, body in (inventory.manifest_bodies(name, wanted) if wanted else {}).items():
        document = describe.parse(body)
        if document is not None:
            children[digest] = describe.describe("", document)
    views: dict[str, dict[str, object]] = {}
    for digest, described in parsed.items():
        view: dict[str, object] = {
            "is_manifest_list": described.is_index,
            "kind": describe.kind_of(described),
            "artifact_type": described.artifact_type,
            "config_media_type": described.config_media_type,
            "size": described.layers_size,
        }
        if described.is_index:
            sizes = [children.get(str(c.get("digest"))) for c in described.children]
            known = [s.layers_size for s in sizes if s is not None and s.layers_size is not None]
            view["size"] = sum(known) if len(known) == len(sizes) else None
            view["platforms"] = [p for p in map(describe.platform, described.children) if p]
        views[digest] = view
    return views


def change_tag(request: RegistryRequest, name: str, tag: str) -> Response:
    """Quay's `PUT .../tag/<tag>` with `{"expiration": <epoch seconds> | null}`: set or
    clear the tag's expiry (moving a tag is done by pushing)."""
    require_role(viewer(request), name, WRITE)
    validate_tag(tag)
    document = body_of(request)
    if "manifest_digest" in document:
        raise InvalidRequest(message="move a tag by pushing its manifest")
    if "expiration" not in document:
        raise InvalidRequest(message="expiration is required (epoch seconds, or null)")
    expiration = document["expiration"]
    when = None
    if expiration is not None:
        if isinstance(expiration, bool) or not isinstance(expiration, int | float):
            raise InvalidRequest({"expiration": expiration}, message="epoch seconds or null")
        try:
            when = datetime.fromtimestamp(float(expiration), UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise InvalidRequest({"expiration": expiration}, message="out of range") from error
        if when <= clock.now():
            raise InvalidRequest({"expiration": expiration}, message="must be in the future")
    inventory.set_expiry(name, tag, when)
    return json_response("Updated", 201)


def delete_tag(request: RegistryRequest, name: str, tag: str) -> Response:
    """Quay's `DELETE .../tag/<tag>`: the tag goes, its manifest stays (until unused)."""
    require_role(viewer(request), name, WRITE)
    tags.delete(name, validate_tag(tag))
    return empty(204)


def get_repository(request: RegistryRequest, name: str) -> Response:
    """Quay's `GET /api/v1/repository/<name>[?includeTags=true]`: visibility, what the caller
    may do, (ours) the live tag count and latest push, and with `includeTags` the first 100
    tags by name. The grants deciding role and visibility come in one BatchGetItem."""
    principal = viewer(request)
    roles = accounts.read_for_login(None, None, lookup_keys(principal, [name])).roles
    role = role_on(principal, name, roles)
    if role is None:  # read is the least role: any other passes
        require_role(principal, name, READ)  # raises: 401 anonymous, 403 an account
    if not repositories.exists(name):
        raise NameUnknown({"name": name})
    namespace = namespace_of(name)
    granted = [name, namespace_resource(namespace)] if namespace else [name]
    summary = inventory.summary(name)
    view: dict[str, Any] = {
        "namespace": namespace,
        "name": name[len(namespace) + 1 :] if namespace else name,
        "kind": "image",
        "state": "NORMAL",
        "is_public": any((resource, EVERYONE) in roles for resource in granted),
        "can_write": role in (WRITE, ADMIN),
        "can_admin": role == ADMIN,
        "tag_count": summary.count,
        "tag_count_capped": summary.capped,
    }
    if summary.last_pushed is not None:
        view["last_modified"] = int(summary.last_pushed.timestamp())
    if (request.param("includeTags") or "").lower() == "true":
        items, _ = tags.page(name, None, MAX_LIMIT)
        described = _describe_page(name, items)
        view["tags"] = {
            item.name: {
                "name": item.name,
                "manifest_digest": item.digest,
                "size": described.get(item.digest, {}).get("size"),
                "last_modified": format_datetime(item.pushed_at),
                **({"expiration": format_datetime(item.expires_at)} if item.expires_at else {}),
            }
            for item in items
        }
    return json_response(view)


MAX_CONFIG_BYTES = 1024 * 1024


def get_manifest(request: RegistryRequest, name: str, digest: str) -> Response:
    """Quay's `GET .../manifest/<digest>`: the manifest's bytes and layers and, for images,
    the parsed config (labels, env, history), which a browser cannot fetch itself: blob
    reads redirect to S3, another origin."""
    require_role(viewer(request), name, READ)
    digest = str(parse_digest(digest))
    stored = manifests.get_by_digest(name, digest)
    body = stored.body or b""
    document = describe.parse(body)
    if document is None:
        raise ManifestUnknown({"digest": digest}, message="not a JSON manifest")
    described = describe.describe(stored.media_type, document)
    view: dict[str, Any] = {
        "digest": digest,
        "media_type": stored.media_type,
        "is_manifest_list": described.is_index,
        "kind": describe.kind_of(described),
        "manifest_data": body.decode("utf-8"),
        "config_media_type": described.config_media_type,
        "artifact_type": described.artifact_type,
        "annotations": document.get("annotations") or {},
        "subject": document.get("subject"),
        "layers_compressed_size": described.layers_size,
    }
    if described.is_index:
        view["manifests"] = [
            {**child, "platform_name": describe.platform(child)} for child in described.children
        ]
        return json_response(view)
    view["layers"] = [
        {
            "index": index,
            "blob_digest": layer.get("digest"),
            "compressed_size": layer.get("size"),
            "media_type": layer.get("mediaType"),
            "annotations": layer.get("annotations") or {},
            "urls": layer.get("urls") or [],
        }
        for index, layer in enumerate(describe.layers_of(document))
    ]
    view["config"] = _config(name, document.get("config"), described)
    return json_response(view)


def _config(name: str, descriptor: object, described: describe.Described) -> object:
    """An image's config document, when small and held by this repository; else None."""
    if described.config_media_type not in describe.IMAGE_CONFIG_TYPES:
        return None
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        return None
    if not isinstance(descriptor.get("size"), int) or descriptor["size"] > MAX_CONFIG_BYTES:
        return None
    if blobs.get_link(name, descriptor["digest"]) is None:
        return None
    return describe.parse(blobs.read(descriptor["digest"]))
