"""Manifest documents: parse, validate, and list what they reference.

The bytes a client pushes are what it pulls and what the digest covers; this module only
reads them. Known types (OCI and Docker schema 2 manifests and indexes) are validated by
their schema's required fields; any other media type is accepted as Quay does, provided
the body is a JSON object and every descriptor in it is well formed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import DigestInvalid, ManifestInvalid
from chalicelib.registry import mediatypes as mt
from chalicelib.registry import schema1
from chalicelib.registry.digests import is_supported, parse_digest

# Docker's non-distributable layers point at `urls` elsewhere; the registry needn't hold them.
_FOREIGN_LAYERS = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


# image-spec descriptor.md: size is an int64.
_MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    data: bytes | None = None
    urls: tuple[str, ...] = ()


@dataclass
class ParsedManifest:
    media_type: str
    digest: str
    size: int
    body: bytes
    blobs: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    # Blobs whose descriptors embed their bytes (`data`) and so need not be uploaded first.
    embedded: dict[str, bytes] = field(default_factory=dict)
    # Docker schema 1: the newest history entry, the V1 config that carries the labels.
    legacy_config: bytes | None = None
    legacy_tag: str | None = None


def _invalid(reason: str, **detail: Any) -> ManifestInvalid:
    return ManifestInvalid({"reason": reason, **detail})


def _string_map(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(f"{where} must map strings to strings")
    return value


def parse_descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType is required")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest is required")
    try:
        parsed = parse_digest(digest)
    except DigestInvalid:
        raise _invalid(f"{where}.digest is not a valid digest", digest=digest) from None
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
        raise _invalid(f"{where}.size must be a non-negative int64")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid(f"{where}.artifactType must be a string")
    urls = value.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"{where}.urls must be a list of strings")
    data = None
    if "data" in value:
        # image-spec descriptor.md: decoded data MUST equal the referenced content.
        raw = value["data"]
        try:
            data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except (binascii.Error, ValueError):
            data = None
        if data is None:
            raise _invalid(f"{where}.data must be base64")
        if not is_supported(parsed):
            # Stored content must be verified content: data under an algorithm we cannot
            # compute would let a client claim any digest for any bytes.
            raise _invalid(f"{where}.data uses an unverifiable digest algorithm", digest=digest)
        if len(data) != size or hashlib.new(parsed.algorithm, data).hexdigest() != parsed.encoded:
            raise _invalid(f"{where}.data does not match its digest and size", digest=digest)
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        artifact_type=artifact_type,
        annotations=_string_map(value.get("annotations"), f"{where}.annotations"),
        data=data,
        urls=tuple(urls),
    )


def _descriptor_list(doc: dict[str, Any], key: str, *, required: bool) -> list[Descriptor]:
    value = doc.get(key)
    if value is None:
        if required:
            raise _invalid(f"{key} is required")
        return []
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list")
    return [parse_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _media_type(content_type: str, doc: dict[str, Any]) -> str:
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    content_type = content_type.split(";", 1)[0].strip().lower()
    if content_type in mt.GENERIC:
        if declared:
            return declared
        if "fsLayers" in doc:
            return mt.DOCKER_SCHEMA1_SIGNED if "signatures" in doc else mt.DOCKER_SCHEMA1
        if "manifests" in doc:
            return mt.OCI_INDEX
        if "config" in doc:
            return mt.OCI_MANIFEST
        raise _invalid("cannot tell the manifest's media type: send Content-Type")
    if declared and declared != content_type:
        # distribution-spec "Pushing Manifests": mediaType and Content-Type must agree.
        raise _invalid("mediaType does not match Content-Type", mediaType=declared)
    return content_type


def parse(body: bytes, content_type: str, digest_algorithm: str = "sha256") -> ParsedManifest:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _invalid("body is not JSON") from None
    except RecursionError:
        raise _invalid("JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    media_type = _media_type(content_type, doc)
    if media_type in mt.SCHEMA1:
        return _parse_schema1(body, doc, media_type)
    parsed = ParsedManifest(
        media_type=media_type,
        digest=f"{digest_algorithm}:{hashlib.new(digest_algorithm, body).hexdigest()}",
        size=len(body),
        body=body,
        annotations=_string_map(doc.get("annotations"), "annotations"),
    )
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    if "subject" in doc:
        parsed.subject = parse_descriptor(doc["subject"], "subject")

    known = media_type in mt.IMAGE_MANIFESTS or media_type in mt.INDEXES
    if known and doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if media_type in mt.IMAGE_MANIFESTS:
        config = parse_descriptor(doc.get("config"), "config")
        layers = _descriptor_list(doc, "layers", required=True)
        parsed.blobs = [config, *[d for d in layers if not _is_foreign(d)]]
        parsed.artifact_type = artifact_type or config.media_type
    elif media_type in mt.INDEXES:
        parsed.children = _descriptor_list(doc, "manifests", required=True)
        parsed.artifact_type = artifact_type
    else:
        if "config" in doc:
            parsed.blobs.append(parse_descriptor(doc["config"], "config"))
        for key in ("layers", "blobs"):
            parsed.blobs += [d for d in _descriptor_list(doc, key, required=False)]
        parsed.children = _descriptor_list(doc, "manifests", required=False)
        parsed.artifact_type = artifact_type or (
            parsed.blobs[0].media_type if "config" in doc else None
        )
    parsed.embedded = {d.digest: d.data for d in parsed.blobs if d.data is not None}
    return parsed


def _is_foreign(descriptor: Descriptor) -> bool:
    return descriptor.media_type in _FOREIGN_LAYERS and bool(descriptor.urls)


def _parse_schema1(body: bytes, doc: dict[str, Any], media_type: str) -> ParsedManifest:
    legacy = schema1.parse(body, doc, media_type)
    layers = dict.fromkeys(legacy.layers)  # empty layers repeat; each is referenced once
    return ParsedManifest(
        media_type=media_type,
        digest=legacy.digest,
        size=len(body),
        body=body,
        blobs=[Descriptor(schema1.LAYER_MEDIA_TYPE, digest, 0) for digest in layers],
        legacy_config=legacy.top_config,
        legacy_tag=legacy.tag,
    )
