"""skopeo (containers/image) pushing and pulling real images over HTTP."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import requests

from tests.images import (
    OCI_LAYER_TAR,
    image_layout,
    index_layout,
    make_image,
    make_index,
    random_layer,
    sha256,
)
from tests.integration.conftest import LIMIT, Registry, skopeo

pytestmark = pytest.mark.integration


def skopeo_out(*args: str) -> str:
    return skopeo(*args).stdout


def push(layout: Path, registry: Registry, ref: str, *extra: str) -> None:
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        *extra,
        f"oci:{layout}:latest",
        f"docker://{registry.host}/{ref}",
    )


def pull(registry: Registry, ref: str, into: Path, *extra: str) -> Path:
    skopeo(
        "copy",
        "--src-tls-verify=false",
        *extra,
        f"docker://{registry.host}/{ref}",
        f"oci:{into}:pulled",
    )
    return into


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def layout_blobs(layout: Path) -> set[str]:
    return {"sha256:" + p.name for p in (layout / "blobs" / "sha256").iterdir()}


def test_skopeo_copies_a_multi_layer_image_in_and_out(registry: Registry, tmp_path: Path) -> None:
    image = make_image([random_layer(2_000_000, f"l{i}") for i in range(3)])
    push(image_layout(tmp_path / "src", image), registry, "skopeo/multi:v1")
    pulled = pull(registry, "skopeo/multi:v1", tmp_path / "dst")
    assert layout_blobs(pulled) == {
        sha256(b) for b in (image.manifest, image.config, *image.layers)
    }
    raw = skopeo_out(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/skopeo/multi:v1"
    )
    assert raw.encode() == image.manifest


def test_skopeo_copies_a_multi_arch_index_with_all(registry: Registry, tmp_path: Path) -> None:
    images = [
        make_image([random_layer(5000, arch)], architecture=arch) for arch in ("amd64", "arm64")
    ]
    index = make_index(images, [("linux", "amd64"), ("linux", "arm64")])
    push(index_layout(tmp_path / "src", images, index), registry, "skopeo/multiarch:v1", "--all")
    raw = skopeo_out(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/skopeo/multiarch:v1"
    )
    assert raw.encode() == index
    for image in images:
        answer = requests.get(
            f"{registry.url}/v2/skopeo/multiarch/manifests/{image.digest}", timeout=10
        )
        assert answer.content == image.manifest
    pulled = pull(registry, "skopeo/multiarch:v1", tmp_path / "dst", "--all")
    assert {i.digest for i in images} <= layout_blobs(pulled)


def test_skopeo_pushes_docker_schema2_with_format_v2s2(registry: Registry, tmp_path: Path) -> None:
    image = make_image([random_layer(4000, "docker")])
    push(image_layout(tmp_path / "src", image), registry, "skopeo/docker:v2s2", "--format", "v2s2")
    answer = requests.get(
        f"{registry.url}/v2/skopeo/docker/manifests/v2s2",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert answer.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert json.loads(answer.content)["mediaType"] == answer.headers["Content-Type"]
    assert sha256(answer.content) == answer.headers["Docker-Content-Digest"]


def test_skopeo_streams_layers_it_compresses_on_the_fly(registry: Registry, tmp_path: Path) -> None:
    """--dest-compress makes skopeo send layers of unknown size: chunked request bodies."""
    tar = random_layer(300_000, "stream", compress=False)
    image = make_image([tar], layer_type=OCI_LAYER_TAR)
    push(image_layout(tmp_path / "src", image), registry, "skopeo/streamed:v1", "--dest-compress")
    pulled = pull(registry, "skopeo/streamed:v1", tmp_path / "dst")
    top = json.loads((pulled / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads(blob_path(pulled, top).read_text())
    (layer,) = manifest["layers"]
    data = blob_path(pulled, layer["digest"]).read_bytes()
    assert gzip.decompress(data) == tar


def test_skopeo_lists_tags(registry: Registry, tmp_path: Path) -> None:
    image = make_image([random_layer(1000, "tags")])
    layout = image_layout(tmp_path / "src", image)
    for tag in ("v2", "v1", "latest"):
        push(layout, registry, f"skopeo/tags:{tag}")
    listed = json.loads(
        skopeo_out("list-tags", "--tls-verify=false", f"docker://{registry.host}/skopeo/tags")
    )
    assert listed["Tags"] == ["latest", "v1", "v2"]


def test_skopeo_deletes_by_digest(registry: Registry, tmp_path: Path) -> None:
    image = make_image([random_layer(1000, "delete")])
    push(image_layout(tmp_path / "src", image), registry, "skopeo/delete:v1")
    skopeo("delete", "--tls-verify=false", f"docker://{registry.host}/skopeo/delete:v1")
    for reference in ("v1", image.digest):
        answer = requests.get(f"{registry.url}/v2/skopeo/delete/manifests/{reference}", timeout=10)
        assert answer.status_code == 404


def test_skopeo_push_over_the_stage_limit_is_refused_with_the_limit(
    limited_registry: Registry, tmp_path: Path
) -> None:
    """skopeo sends a layer in one PATCH: over the limit it fails, as through API Gateway."""
    image = make_image([random_layer(2 * 1024 * 1024, "too-big")])
    done = skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        f"docker://{limited_registry.host}/skopeo/big:v1",
        check=False,
    )
    assert done.returncode != 0
    # skopeo shows the user our OCI error, limit included
    assert "size invalid" in done.stderr
    assert f"limit of {LIMIT} bytes" in done.stderr
    answer = requests.get(f"{limited_registry.url}/v2/skopeo/big/manifests/v1", timeout=10)
    assert answer.status_code == 404
