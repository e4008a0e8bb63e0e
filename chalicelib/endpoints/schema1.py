"""Serving Docker schema 1 to old clients: content negotiation and down-conversion.

A client whose `Accept` names schema 1 and not the stored type, or old Docker sending no
`Accept` at all for a Docker schema 2 image, gets the image as a schema 1 manifest signed
with the registry's key, as Distribution and Quay did. An index gives its linux/amd64
image (Docker Hub's rule, distribution-spec content-negotiation.md). The conversion is
stored as an untagged manifest, so its digest resolves and later pulls get the same bytes.
Pulls by digest are never converted: the bytes must match the digest asked for.
"""

from __future__ import annotations

import json

from chalicelib.auth import keys
from chalicelib.endpoints.http import RegistryRequest
from chalicelib.errors import ManifestUnknown
from chalicelib.registry import manifests as rules
from chalicelib.registry import mediatypes as mt
from chalicelib.registry import schema1
from chalicelib.registry.expiry import IMAGE_CONFIGS
from chalicelib.storage import blobs
from chalicelib.storage import manifests as store
from chalicelib.storage.bodies import StoredManifest

# What old Docker (no Accept header) was given schema 1 for.
_NO_ACCEPT_CONVERTS = frozenset({mt.DOCKER_MANIFEST, mt.DOCKER_LIST})


def wanted(request: RegistryRequest, stored_type: str) -> bool:
    """Whether this client must get schema 1 instead of the stored type."""
    if stored_type in mt.SCHEMA1:
        return False
    accept = [item.split(";", 1)[0].strip().lower() for item in request.header_list("accept")]
    if not accept:
        return stored_type in _NO_ACCEPT_CONVERTS
    if stored_type in accept or "*/*" in accept or "application/*" in accept:
        return False
    return any(item in mt.SCHEMA1 for item in accept)


def _no_schema1(reason: str) -> ManifestUnknown:
    return ManifestUnknown({"reason": reason}, message="manifest has no schema 1 form")


def image_of(name: str, manifest: StoredManifest) -> StoredManifest:
    """The manifest itself, or an index's linux/amd64 image."""
    if manifest.media_type not in mt.INDEXES:
        return manifest
    assert manifest.body is not None
    for child in json.loads(manifest.body).get("manifests") or []:
        platform = child.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == ("linux", "amd64"):
            return store.get_by_digest(name, child["digest"])
    raise _no_schema1("the index has no linux/amd64 image")


def ensure_empty_layer(name: str) -> None:
    """Schema 1 and V1 clients fetch the empty layer like any other; it must be linked."""
    if blobs.get_link(name, schema1.EMPTY_LAYER_DIGEST) is None:
        blobs.store_and_link(
            name,
            schema1.EMPTY_LAYER_DIGEST,
            len(schema1.EMPTY_LAYER),
            lambda: blobs.put_object(schema1.EMPTY_LAYER_DIGEST, schema1.EMPTY_LAYER),
        )


def convert(name: str, tag: str, manifest: StoredManifest) -> StoredManifest:
    image = image_of(name, manifest)
    if image.media_type not in mt.IMAGE_MANIFESTS:
        raise _no_schema1(f"{image.media_type} is not an image manifest")
    assert image.body is not None
    doc = json.loads(image.body)
    config_descriptor = doc.get("config") or {}
    if config_descriptor.get("mediaType") not in IMAGE_CONFIGS:
        raise _no_schema1("an artifact, not a container image")
    config = blobs.read(config_descriptor["digest"])
    if config is None:
        raise _no_schema1("the image config is missing")
    layers = [layer["digest"] for layer in doc.get("layers") or []]
    document = schema1.payload_for(name, tag, config, layers)
    payload = json.dumps(document, indent=3).encode()
    digest = schema1.Schema1(name, tag, [], [], payload).digest
    try:
        return store.get_by_digest(name, digest)
    except ManifestUnknown:
        pass
    if any(layer["blobSum"] == schema1.EMPTY_LAYER_DIGEST for layer in document["fsLayers"]):
        ensure_empty_layer(name)
    signing = keys.ring().signing
    body = schema1.sign(document, signing.private, signing.algorithm)
    parsed = rules.parse(body, mt.DOCKER_SCHEMA1_SIGNED)
    store.put(name, parsed, None, None)
    return StoredManifest(parsed.digest, parsed.media_type, parsed.size, body)
