"""Expiry over HTTP: `quay.expires-after` from an oras annotation and from an image label
pushed by skopeo, seen through the management API and the admin CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import oras.client
import pytest
import requests

from tests.images import image_layout, make_image, random_layer
from tests.integration.conftest import ROOT, Registry, skopeo

pytestmark = pytest.mark.integration


def tag_info(registry: Registry, repo: str, tag: str, active_only: bool = True) -> dict:
    answer = requests.get(
        f"{registry.url}/api/v1/repository/{repo}/tag/",
        params={"onlyActiveTags": str(active_only).lower()},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {t["name"]: t for t in answer.json()["tags"]}.get(tag, {})


def push_image(registry: Registry, image, tmp_path: Path, ref: str) -> None:
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        f"docker://{registry.host}/{ref}",
    )


def test_oras_annotation_sets_expiry_shown_by_the_admin_cli(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("build.log").write_text("ci output")
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    pushed_at = time.time()
    client.push(
        target=f"{registry.host}/expiry/oras:ci-123",
        files=["build.log:text/plain"],
        manifest_annotations={"quay.expires-after": "2d"},
    )
    info = tag_info(registry, "expiry/oras", "ci-123")
    assert abs(info["end_ts"] - (pushed_at + 2 * 86400)) < 60
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "chalicelib.admin",
            "--registry",
            registry.url,
            "tags",
            "expiry/oras",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    (row,) = [line for line in cli.stdout.splitlines() if line.startswith("ci-123")]
    assert "UTC" in row and "expired" not in row


def test_skopeo_pushed_image_label_sets_expiry(registry: Registry, tmp_path: Path) -> None:
    image = make_image([random_layer(1000, "label")], labels={"quay.expires-after": "20h"})
    pushed_at = time.time()
    push_image(registry, image, tmp_path, "expiry/labelled:v1")
    assert abs(tag_info(registry, "expiry/labelled", "v1")["end_ts"] - (pushed_at + 20 * 3600)) < 60


def test_negative_expiry_makes_the_tag_vanish_at_once(registry: Registry, tmp_path: Path) -> None:
    image = make_image([random_layer(1000, "gone")], labels={"quay.expires-after": "-1h"})
    push_image(registry, image, tmp_path, "expiry/gone:v1")
    answer = requests.get(f"{registry.url}/v2/expiry/gone/manifests/v1", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "TAG_EXPIRED"
    listed = requests.get(f"{registry.url}/v2/expiry/gone/tags/list", timeout=10).json()
    assert listed["tags"] == []
    assert tag_info(registry, "expiry/gone", "v1", active_only=False)["expired"] is True
