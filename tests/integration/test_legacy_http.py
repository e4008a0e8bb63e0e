"""Docker legacy over HTTP: skopeo's schema 1 (`--format v2s1`), down-conversion for a
schema 1-only Accept, and a scripted Docker V1 pull walk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from chalicelib.registry import schema1
from tests.images import image_layout, make_image, random_layer, sha256
from tests.integration.conftest import Registry, skopeo

pytestmark = pytest.mark.integration
SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def with_history(layers: list[bytes]):
    """An image whose config has the history schema 1 needs, one empty entry included."""
    history = [{"created_by": f"ADD layer{i} /"} for i in range(len(layers))]
    history.insert(1, {"created_by": "ENV A=1", "empty_layer": True})
    return make_image(layers, history=history)


def test_skopeo_round_trips_schema1(registry: Registry, tmp_path: Path) -> None:
    image = with_history([random_layer(3000, "s1-a"), random_layer(3000, "s1-b")])
    ref = f"docker://{registry.host}/legacy/s1:v1"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s1",
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        ref,
    )
    raw = requests.get(
        f"{registry.url}/v2/legacy/s1/manifests/v1", headers={"Accept": SIGNED}, timeout=10
    )
    assert raw.headers["Content-Type"] == SIGNED
    stored = json.loads(raw.content)
    assert stored["schemaVersion"] == 1 and stored["signatures"]
    assert {layer["blobSum"] for layer in stored["fsLayers"]} >= {sha256(b) for b in image.layers}
    skopeo("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'out'}:pulled")
    pulled = json.loads((tmp_path / "out" / "index.json").read_text())
    assert pulled["manifests"]


def test_schema2_image_converts_for_a_schema1_only_accept(
    registry: Registry, tmp_path: Path
) -> None:
    image = with_history([random_layer(3000, "conv-a")])
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        f"docker://{registry.host}/legacy/conv:v1",
    )
    answer = requests.get(
        f"{registry.url}/v2/legacy/conv/manifests/v1", headers={"Accept": SIGNED}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == SIGNED
    parsed = schema1.parse(answer.content, json.loads(answer.content), SIGNED)  # verifies
    assert answer.headers["Docker-Content-Digest"] == parsed.digest
    again = requests.get(
        f"{registry.url}/v2/legacy/conv/manifests/{parsed.digest}",
        headers={"Accept": SIGNED},
        timeout=10,
    )
    assert again.content == answer.content
    # skopeo reads the converted manifest like any schema 1 image.
    inspected = json.loads(
        skopeo(
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{registry.host}/legacy/conv@{parsed.digest}",
        ).stdout
    )
    assert inspected["schemaVersion"] == 1


def test_docker_v1_pull_walk(registry: Registry, tmp_path: Path) -> None:
    layers = [random_layer(5000, "v1-a"), random_layer(5000, "v1-b")]
    image = with_history(layers)
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        f"docker://{registry.host}/legacy/v1walk:latest",
    )
    base = f"{registry.url}/v1"
    assert requests.get(f"{base}/_ping", timeout=10).json() is True
    top = requests.get(f"{base}/repositories/legacy/v1walk/tags", timeout=10).json()["latest"]
    ancestry = requests.get(f"{base}/images/{top}/ancestry", timeout=10).json()
    assert ancestry[0] == top
    fetched = []
    for image_id in reversed(ancestry):
        meta = requests.get(f"{base}/images/{image_id}/json", timeout=10).json()
        assert meta["id"] == image_id
        layer = requests.get(f"{base}/images/{image_id}/layer", timeout=30)  # follows the 307
        assert layer.status_code == 200
        if not meta.get("throwaway"):
            fetched.append(layer.content)
    assert fetched == layers
