"""What the management API says about a manifest from its bytes: kind (which client pulls
it), platforms and compressed size."""

from __future__ import annotations

import json

import pytest

from chalicelib.registry import describe

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def manifest(config_type: str, *sizes: int, **fields: object) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": "sha256:" + "0" * 64, "size": 100},
        "layers": [{"mediaType": "x", "digest": "sha256:" + "1" * 64, "size": s} for s in sizes],
        **fields,
    }


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        (manifest("application/vnd.oci.image.config.v1+json", 5), "image"),
        (manifest("application/vnd.docker.container.image.v1+json", 5), "image"),
        (manifest("application/vnd.cncf.helm.config.v1+json", 5), "helm"),
        (manifest("application/vnd.oci.empty.v1+json", 5, artifactType="text/plain"), "artifact"),
        (
            manifest("application/vnd.oci.image.config.v1+json", artifactType="application/x"),
            "artifact",
        ),
    ],
)
def test_kind_picks_the_client_that_pulls_it(document: dict, kind: str) -> None:
    assert describe.kind_of(describe.describe(OCI_MANIFEST, document)) == kind


def test_image_size_is_config_and_layers() -> None:
    described = describe.describe(OCI_MANIFEST, manifest("x", 10, 20))
    assert described.layers_size == 130
    assert described.is_index is False


def test_index_platforms_skip_attestations() -> None:
    children = [
        {"digest": "a", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "b", "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "c"},
    ]
    described = describe.describe("", {"manifests": children})
    assert described.is_index and described.layers_size is None
    assert [describe.platform(c) for c in described.children] == ["linux/arm64/v8", None, None]


@pytest.mark.parametrize("body", [None, b"not json", b"[1, 2]", b"\xff"])
def test_unreadable_bodies_parse_to_none(body: bytes | None) -> None:
    assert describe.parse(body) is None


def test_malformed_descriptors_count_nothing() -> None:
    document = {"config": "nope", "layers": [{"size": "big"}, 7, {"size": 3}]}
    assert describe.describe(OCI_MANIFEST, document).layers_size == 3
    assert describe.parse(json.dumps(document).encode()) == document
