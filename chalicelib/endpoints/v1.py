"""Docker V1 pulls (`/v1/...`) of images pushed through V2, read-only, as Quay serves them.

V1 image ids are derived from the V2 image (chalicelib/registry/schema1.py `v1_chain`), the
same ids its schema 1 conversion carries. Listing tags writes the ids it hands out
(storage/v1images.py), since `/v1/images/<id>/...` names no repository. Layers are the same
307 to a presigned S3 URL as V2 blob pulls. Pushes are refused.

With auth on, requests carry Basic credentials, or the token a V1 client got in the
`X-Docker-Token` header (`Authorization: Token signature=<jwt>,...`) or a V2 bearer token.
"""

from __future__ import annotations

import json
import re

from chalice import Response

from chalicelib import config
from chalicelib.auth import logins, tokens
from chalicelib.auth.access import Access, basic
from chalicelib.auth.permissions import role_on
from chalicelib.auth.scopes import PULL, repository
from chalicelib.endpoints import schema1 as legacy
from chalicelib.endpoints.http import RegistryRequest, empty, json_response
from chalicelib.errors import (
    BlobUnknown,
    Denied,
    ManifestUnknown,
    NameUnknown,
    NotFound,
    RegistryError,
    Unauthorized,
    Unsupported,
)
from chalicelib.registry import mediatypes as mt
from chalicelib.registry import schema1
from chalicelib.registry.names import validate_tag
from chalicelib.storage import blobs, repositories, tags, v1images
from chalicelib.storage.models import V1ImageModel

# Tags a V1 listing converts (each costs a config read); larger repositories are cut here.
MAX_TAGS = 500
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
_TOKEN = re.compile(r'signature=("?)([A-Za-z0-9._-]+)\1')


def _enabled() -> None:
    if not config.settings.v1_pulls:
        raise NotFound(message="Docker V1 pulls are disabled on this registry")


def _token(request: RegistryRequest) -> str | None:
    scheme, _, rest = (request.header("authorization") or "").partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() or None
    if scheme.lower() == "token":
        match = _TOKEN.search(rest)
        return match.group(2) if match else None
    return None


def _check_pull(request: RegistryRequest, name: str) -> str | None:
    """Raise unless the caller may pull `name`; the subject, for an X-Docker-Token."""
    if not config.settings.auth:
        return None
    token = _token(request)
    if token is not None:
        try:
            access = Access.from_claims(tokens.verify(token))
        except tokens.TokenInvalid as error:
            raise Unauthorized(message=f"invalid token: {error}") from error
        if not access.allows(repository(name, PULL)):
            raise Denied({"repository": name})
        return access.subject
    credentials = basic(request)
    if credentials is None:
        login = logins.anonymous([name])
    else:
        login = logins.with_password(*credentials, request.source_ip, [name])
    if role_on(login.principal, name, login.roles) is None:
        if login.principal.anonymous:
            raise Unauthorized(headers={"WWW-Authenticate": 'Basic realm="stratus"'})
        raise Denied({"repository": name})
    return login.principal.name


def _v1_headers(request: RegistryRequest, name: str, subject: str | None) -> dict[str, str]:
    """Old Docker asks for a token with `X-Docker-Token: true` and uses it for the rest."""
    if (request.header("x-docker-token") or "").lower() != "true":
        return {}
    headers = {"X-Docker-Endpoints": request.header("host") or "localhost"}
    if config.settings.auth and subject is not None:
        issued = tokens.issue_access(subject, [repository(name, PULL)])
        headers["X-Docker-Token"] = f'signature={issued.token},repository="{name}",access=read'
        headers["WWW-Authenticate"] = headers["X-Docker-Token"]
    return headers


def _chain(name: str, tag: str) -> list[schema1.V1Image]:
    """The V1 images (base first) of the image a tag points at; [] if it has none."""
    try:
        manifest = tags.get(name, tag)
        image = legacy.image_of(name, manifest)
    except RegistryError:
        return []
    if image.media_type not in mt.IMAGE_MANIFESTS or image.body is None:
        return []
    doc = json.loads(image.body)
    config_digest = (doc.get("config") or {}).get("digest")
    config_bytes = blobs.read(config_digest) if config_digest else None
    if config_bytes is None:
        return []
    try:
        return schema1.v1_chain(config_bytes, [layer["digest"] for layer in doc.get("layers", [])])
    except RegistryError:
        return []


def _tag_chains(name: str, names: list[str]) -> dict[str, list[schema1.V1Image]]:
    chains = {tag: _chain(name, tag) for tag in names}
    for chain in chains.values():
        if chain:
            v1images.remember(name, chain)
    if any(i.blob_sum == schema1.EMPTY_LAYER_DIGEST for c in chains.values() for i in c):
        legacy.ensure_empty_layer(name)
    return {tag: chain for tag, chain in chains.items() if chain}


def _all_tags(name: str) -> list[str]:
    names, _ = tags.names(name, None, MAX_TAGS)
    if not names and not repositories.exists(name):
        raise NameUnknown({"name": name})
    return names


def ping(request: RegistryRequest) -> Response:
    _enabled()
    return json_response(True, headers={"X-Docker-Registry-Standalone": "true"})


def repository_images(request: RegistryRequest, name: str) -> Response:
    _enabled()
    subject = _check_pull(request, name)
    chains = _tag_chains(name, _all_tags(name))
    ids = dict.fromkeys(image.id for chain in chains.values() for image in chain)
    return json_response([{"id": i} for i in ids], headers=_v1_headers(request, name, subject))


def repository_tags(request: RegistryRequest, name: str) -> Response:
    _enabled()
    subject = _check_pull(request, name)
    chains = _tag_chains(name, _all_tags(name))
    body = {tag: chain[-1].id for tag, chain in chains.items()}
    return json_response(body, headers=_v1_headers(request, name, subject))


def repository_tag(request: RegistryRequest, name: str, tag: str) -> Response:
    _enabled()
    subject = _check_pull(request, name)
    chain = _tag_chains(name, [validate_tag(tag)]).get(tag)
    if not chain:
        raise ManifestUnknown({"tag": tag}, message="no V1 image for this tag")
    return json_response(chain[-1].id, headers=_v1_headers(request, name, subject))


def _record(request: RegistryRequest, image_id: str) -> V1ImageModel:
    """The image's record in a repository the caller may pull from."""
    _enabled()
    if not _IMAGE_ID.fullmatch(image_id):
        raise ManifestUnknown({"image": image_id}, message="malformed image id")
    denied: RegistryError | None = None
    for record in v1images.find(image_id):
        try:
            _check_pull(request, record.repository)
        except (Denied, Unauthorized) as error:
            denied = error
            continue
        return record
    raise denied or ManifestUnknown({"image": image_id}, message="image not found")


def image_json(request: RegistryRequest, image_id: str) -> Response:
    record = _record(request, image_id)
    blob = blobs.get_link(record.repository, record.blob_sum)
    headers = {"X-Docker-Size": str(blob.size)} if blob else {}
    return Response(
        body=record.v1_json,
        status_code=200,
        headers={"Content-Type": "application/json", **headers},
    )


def image_ancestry(request: RegistryRequest, image_id: str) -> Response:
    return json_response(list(_record(request, image_id).ancestry))


def image_layer(request: RegistryRequest, image_id: str) -> Response:
    record = _record(request, image_id)
    blob = blobs.get_link(record.repository, record.blob_sum)
    if blob is None:
        raise BlobUnknown({"digest": record.blob_sum})
    return empty(307, {"Location": blobs.presigned_get_url(blob.digest)})


def refuse_push(request: RegistryRequest, **_: str) -> Response:
    _enabled()
    raise Unsupported(
        {"method": request.method},
        message="Docker V1 pushes are not supported; push with a V2 client (docker 1.10+)",
    )
