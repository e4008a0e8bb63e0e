"""`stratus push` over HTTP: a 1 GiB layer straight to S3, and the chunked fallback against
a registry without the extension and with a request-size limit."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.images import OCI_CONFIG, OCI_MANIFEST, sha256, write_layout
from tests.integration.conftest import LIMIT, ROOT, Registry

pytestmark = pytest.mark.integration

GIB = 1024**3


def big_layout(tmp_path: Path, layer_size: int) -> tuple[Path, str, bytes]:
    """An OCI layout whose one layer is `layer_size` bytes, written without holding it."""
    layout = tmp_path / "layout"
    blob_dir = layout / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    hasher = hashlib.sha256()
    staging = tmp_path / "layer.bin"
    block = os.urandom(8 * 1024 * 1024)
    with staging.open("wb") as out:
        written = 0
        while written < layer_size:
            piece = block[: min(len(block), layer_size - written)]
            piece = written.to_bytes(8, "big") + piece[8:]  # no two blocks alike
            out.write(piece)
            hasher.update(piece)
            written += len(piece)
    digest = "sha256:" + hasher.hexdigest()
    staging.rename(blob_dir / digest.split(":")[1])
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest,
                    "size": layer_size,
                }
            ],
        }
    ).encode()
    write_layout(layout, [config], manifest, OCI_MANIFEST, "latest")
    return layout, digest, manifest


def stratus_push(layout: Path, destination: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(ROOT / "bin" / "stratus"),
            "push",
            "--plain-http",
            "--quiet",
            *extra,
            str(layout),
            destination,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_stratus_push_sends_a_1_gib_layer_straight_to_s3(
    registry: Registry, tmp_path: Path
) -> None:
    layout, digest, manifest = big_layout(tmp_path, GIB)
    done = stratus_push(layout, f"{registry.host}/big/layer:v1")
    assert done.returncode == 0, done.stderr
    assert sha256(manifest) in done.stdout
    head = requests.head(f"{registry.url}/v2/big/layer/blobs/{digest}", timeout=30)
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(GIB))
    tail = requests.get(
        f"{registry.url}/v2/big/layer/blobs/{digest}",
        headers={"Range": f"bytes={GIB - 16}-{GIB - 1}"},
        timeout=60,
    )
    blob_path = layout / "blobs" / "sha256" / digest.split(":")[1]
    with blob_path.open("rb") as handle:
        handle.seek(GIB - 16)
        assert tail.content == handle.read()
    pulled = requests.get(f"{registry.url}/v2/big/layer/manifests/v1", timeout=30)
    assert pulled.content == manifest


def test_stratus_push_falls_back_to_chunks_the_registry_accepts(
    limited_registry: Registry, tmp_path: Path
) -> None:
    layout, digest, _ = big_layout(tmp_path, 3 * LIMIT + 123)
    done = stratus_push(layout, f"{limited_registry.host}/fallback/app:v1")
    assert done.returncode == 0, done.stderr
    head = requests.head(f"{limited_registry.url}/v2/fallback/app/blobs/{digest}", timeout=30)
    assert head.headers["Content-Length"] == str(3 * LIMIT + 123)


def test_stratus_push_of_a_skopeo_dir_directory(registry: Registry, tmp_path: Path) -> None:
    layout, _, manifest = big_layout(tmp_path, 10_000)
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "manifest.json").write_bytes(manifest)
    (directory / "version").write_text("Directory Transport Version: 1.1\n")
    for blob in (layout / "blobs" / "sha256").iterdir():
        (directory / blob.name).write_bytes(blob.read_bytes())
    done = stratus_push(directory, f"{registry.host}/dir/app:v1")
    assert done.returncode == 0, done.stderr
    assert requests.get(f"{registry.url}/v2/dir/app/manifests/v1", timeout=30).content == manifest


def test_stratus_push_cli_has_help(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.push", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "OCI image layout" in done.stdout
