"""What a person wants to know about a stored manifest, read from its bytes (no I/O): its
kind, platforms, compressed size and artifact type, for the management API's tag and
manifest views (and so the console)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
IMAGE_CONFIG_TYPES = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"


@dataclass(frozen=True)
class Described:
    is_index: bool
    config_media_type: str | None = None
    artifact_type: str | None = None
    layers_size: int | None = None  # config + layers; None for an index
    children: list[dict[str, Any]] = field(default_factory=list)  # an index's descriptors


def parse(body: bytes | None) -> dict[str, Any] | None:
    """The manifest as a JSON object, or None (bytes kept elsewhere, or not an object)."""
    if body is None:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _size(descriptor: object) -> int:
    if isinstance(descriptor, dict) and isinstance(descriptor.get("size"), int):
        return int(descriptor["size"])
    return 0


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def layers_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    layers = document.get("layers")
    return (
        [layer for layer in layers if isinstance(layer, dict)] if isinstance(layers, list) else []
    )


def describe(media_type: str, document: dict[str, Any]) -> Described:
    kind = document.get("mediaType") or media_type
    artifact = document.get("artifactType")
    artifact_type = artifact if isinstance(artifact, str) else None
    if kind in INDEX_TYPES or "manifests" in document:
        children = [d for d in document.get("manifests") or [] if isinstance(d, dict)]
        return Described(True, artifact_type=artifact_type, children=children)
    config = _object(document.get("config"))
    config_type = config.get("mediaType") if isinstance(config.get("mediaType"), str) else None
    total = _size(config) + sum(_size(layer) for layer in layers_of(document))
    return Described(False, config_type, artifact_type, total)


def platform(descriptor: dict[str, Any]) -> str | None:
    """ "linux/arm64/v8", or None for entries that are not images for a platform (the
    `unknown/unknown` attestation manifests buildkit adds)."""
    value = descriptor.get("platform")
    if not isinstance(value, dict):
        return None
    parts = [str(value.get("os") or ""), str(value.get("architecture") or "")]
    if value.get("variant"):
        parts.append(str(value["variant"]))
    if not all(parts[:2]) or parts[:2] == ["unknown", "unknown"]:
        return None
    return "/".join(parts)


def kind_of(described: Described) -> str:
    """Which tool pulls it: `image` (docker, podman), `helm` or `artifact` (oras)."""
    if described.is_index:
        return "artifact" if described.artifact_type else "image"
    if described.config_media_type == HELM_CONFIG:
        return "helm"
    if described.artifact_type is None and described.config_media_type in IMAGE_CONFIG_TYPES:
        return "image"
    return "artifact"
