"""The `oras` Python SDK pushing and pulling artifacts (distribution-spec artifacts; Quay
16.x: Helm charts and ORAS artifacts of any media type)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import oras.client
import pytest
import requests

from tests.integration.conftest import LIMIT, Registry

pytestmark = pytest.mark.integration

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def oras_client(registry: Registry) -> oras.client.OrasClient:
    return oras.client.OrasClient(hostname=registry.host, insecure=True)


def manifest_of(registry: Registry, repo: str, tag: str) -> dict:
    answer = requests.get(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert answer.status_code == 200
    return json.loads(answer.content)


def test_oras_pushes_and_pulls_an_artifact_with_annotations(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("sbom.json").write_text('{"packages": []}')
    Path("notes.txt").write_text("release notes")
    client = oras_client(registry)
    target = f"{registry.host}/oras/artifact:v1"
    answer = client.push(
        target=target,
        files=["sbom.json:application/vnd.example.sbom.v1+json", "notes.txt:text/plain"],
        manifest_annotations={"org.example.owner": "stratus", "quay.expires-after": "2d"},
    )
    assert answer.status_code == 201
    manifest = manifest_of(registry, "oras/artifact", "v1")
    assert manifest["annotations"]["org.example.owner"] == "stratus"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.example.sbom.v1+json",
        "text/plain",
    ]
    out = tmp_path / "out"
    files = client.pull(target=target, outdir=str(out))
    assert sorted(Path(f).name for f in files) == ["notes.txt", "sbom.json"]
    assert (out / "notes.txt").read_text() == "release notes"


@pytest.mark.parametrize(
    "size,chunk",
    [(6 * 1024 * 1024 + 11, 1024 * 1024), (12 * 1024 * 1024 + 5, 6 * 1024 * 1024)],
    ids=["chunks-below-5MiB", "chunks-above-5MiB"],
)
def test_oras_pushes_a_helm_chart_shaped_artifact_in_chunked_mode(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, chunk: int
) -> None:
    monkeypatch.chdir(tmp_path)
    chart = os.urandom(size)
    Path("mychart-0.1.0.tgz").write_bytes(chart)
    Path("config.json").write_text(json.dumps({"name": "mychart", "version": "0.1.0"}))
    client = oras_client(registry)
    target = f"{registry.host}/helm/mychart:0.1.0-{chunk}"
    answer = client.push(
        target=target,
        files=[f"mychart-0.1.0.tgz:{HELM_CHART}"],
        manifest_config=f"config.json:{HELM_CONFIG}",
        do_chunked=True,
        chunk_size=chunk,
    )
    assert answer.status_code == 201
    manifest = manifest_of(registry, "helm/mychart", f"0.1.0-{chunk}")
    assert manifest["config"]["mediaType"] == HELM_CONFIG
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == HELM_CHART
    assert layer["digest"] == "sha256:" + hashlib.sha256(chart).hexdigest()
    out = tmp_path / "out"
    client.pull(target=target, outdir=str(out))
    assert (out / "mychart-0.1.0.tgz").read_bytes() == chart


def test_oras_sdk_pushes_past_the_body_limit_only_with_chunks_under_it(
    limited_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oras-py chunks only when asked, and its default chunk (16 MiB) is over an AWS
    stage's 4.5 MB: it pushes past the limit with `chunk_size` at or under the limit only."""
    monkeypatch.chdir(tmp_path)
    blob = os.urandom(3 * LIMIT + 7)
    Path("big.bin").write_bytes(blob)
    client = oras_client(limited_registry)
    target = f"{limited_registry.host}/oras/limits:chunked"
    pushed = client.push(target=target, files=["big.bin"], do_chunked=True, chunk_size=LIMIT)
    assert pushed.status_code == 201
    layer = manifest_of(limited_registry, "oras/limits", "chunked")["layers"][0]
    assert layer["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    Path("other.bin").write_bytes(os.urandom(3 * LIMIT + 7))
    with pytest.raises(ValueError, match="Request Entity Too Large"):  # our 413
        client.push(
            target=f"{limited_registry.host}/oras/limits:whole",
            files=["other.bin"],
            do_chunked=True,
            chunk_size=2 * LIMIT,
        )
    assert requests.get(f"{limited_registry.url}/v2/oras/limits/manifests/whole").status_code == 404
