"""The registry on the resources infra/stratus.yaml creates: the template's keys, indexes
and bucket and the code agree, as a deployed stage needs. Clients as elsewhere:
skopeo with credentials, the oras SDK, referrers, tags, catalog, then a cleanup run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import oras.client
import oras.oci
import pytest
import requests

from tests.images import image_layout, index_layout, make_image, make_index, random_layer
from tests.integration.conftest import ADMIN, ADMIN_PASSWORD, ROOT, Registry, skopeo

pytestmark = pytest.mark.integration
CREDS = f"{ADMIN}:{ADMIN_PASSWORD}"


def _token(registry: Registry, *scopes: str) -> str:
    answer = requests.get(
        f"{registry.url}/v2/auth",
        params=[("service", "stratus"), *(("scope", s) for s in scopes)],
        auth=(ADMIN, ADMIN_PASSWORD),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_skopeo_push_and_pull_on_the_stack(stack_registry: Registry, tmp_path: Path) -> None:
    images = [
        make_image([random_layer(20_000, f"stack-{arch}")], architecture=arch)
        for arch in ("amd64", "arm64")
    ]
    index = make_index(images, [("linux", "amd64"), ("linux", "arm64")])
    layout = index_layout(tmp_path / "src", images, index)
    ref = f"docker://{stack_registry.host}/ops/app:v1"
    skopeo(
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        f"oci:{layout}:latest",
        ref,
    )
    skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-creds",
        CREDS,
        ref,
        f"oci:{tmp_path / 'out'}:pulled",
    )
    pulled = json.loads((tmp_path / "out" / "index.json").read_text())
    assert pulled["manifests"]
    tags = skopeo(
        "list-tags",
        "--tls-verify=false",
        "--creds",
        CREDS,
        f"docker://{stack_registry.host}/ops/app",
    )
    assert json.loads(tags.stdout)["Tags"] == ["v1"]
    token = _token(stack_registry, "registry:catalog:*")
    catalog = requests.get(
        f"{stack_registry.url}/v2/_catalog",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert "ops/app" in catalog.json()["repositories"]


def test_oras_artifact_and_referrers_on_the_stack(
    stack_registry: Registry, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("sbom.json").write_text("{}")
    client = oras.client.OrasClient(hostname=stack_registry.host, insecure=True)
    client.login(
        username=ADMIN,
        password=ADMIN_PASSWORD,
        hostname=stack_registry.host,
        tls_verify=False,
        config_path=str(tmp_path / "config.json"),
    )
    image = make_image([random_layer(5_000, "stack-subject")])
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        f"docker://{stack_registry.host}/ops/signed:v1",
    )
    subject = oras.oci.Subject(image.media_type, image.digest, len(image.manifest))
    Path("config.json").write_text("{}")
    pushed = client.push(
        target=f"{stack_registry.host}/ops/signed:sbom",
        files=["sbom.json:application/json"],
        subject=subject,
        manifest_config="config.json:application/vnd.example.sbom",
    )
    assert pushed.status_code == 201
    token = _token(stack_registry, "repository:ops/signed:pull")
    listed = requests.get(
        f"{stack_registry.url}/v2/ops/signed/referrers/{image.digest}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert listed.status_code == 200
    assert len(listed.json()["manifests"]) == 1


def test_cleanup_runs_on_the_stack(stack_registry: Registry) -> None:
    env = {**os.environ, **(stack_registry.environment or {})}
    done = subprocess.run(
        [sys.executable, "-m", "chalicelib.cleanup", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
