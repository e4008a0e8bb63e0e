"""Referrers: end-12a and end-12b (distribution-spec "Listing Referrers")."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from chalice import Response

from chalicelib import config, proxycache
from chalicelib.endpoints.http import Headers, RegistryRequest
from chalicelib.errors import NameUnknown, NotFound
from chalicelib.registry import mediatypes as mt
from chalicelib.registry.digests import parse_digest
from chalicelib.storage import manifests as manifest_store
from chalicelib.storage import referrers as store
from chalicelib.storage import repositories


def _annotations(name: str, referrer: store.Referrer) -> dict[str, str] | None:
    if not referrer.annotations_in_body:
        return referrer.annotations
    body = manifest_store.get_by_digest(name, referrer.digest).body or b"{}"
    # A string map: the manifest was checked on push (chalicelib/registry/manifests.py).
    annotations: dict[str, str] | None = json.loads(body).get("annotations")
    return annotations


def list_referrers(request: RegistryRequest, name: str, digest: str) -> Response:
    if not config.settings.referrers_api:
        # Switched off: a 404 sends clients to the referrers tag schema (spec "Unavailable
        # Referrers API").
        raise NotFound({"feature": "referrers API is disabled"})
    subject = str(parse_digest(digest))
    artifact_type = request.param("artifactType") or None
    if artifact_type:
        # An unencoded "+" (`...v1+json`) arrives form-decoded as a space; a media type
        # never holds a space, so this is always the "+" the client meant.
        artifact_type = artifact_type.replace(" ", "+")
    last = request.param("last")
    if last:
        last = str(parse_digest(last))
    else:
        cache = proxycache.config_for(name)
        if cache is not None:  # a pull-through cache: what the upstream has, first
            from chalicelib.proxycache import referrers as cached

            cached.sync(cache, name, subject)
    found, more = store.list_page(
        name, subject, artifact_type, last, config.settings.referrers_page_size
    )
    if not found and not last and not repositories.exists(name):
        raise NameUnknown({"name": name})
    descriptors = []
    for referrer in found:
        descriptor = referrer.descriptor()
        annotations = _annotations(name, referrer)
        if annotations:
            descriptor["annotations"] = annotations
        descriptors.append(descriptor)
    headers: Headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    if more:
        query = {"last": found[-1].digest}
        if artifact_type is not None:
            query["artifactType"] = artifact_type
        headers["Link"] = f'</v2/{name}/referrers/{subject}?{urlencode(query)}>; rel="next"'
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
    return Response(body=json.dumps(index), status_code=200, headers=headers)
