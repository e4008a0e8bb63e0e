"""Presigned blob URLs against an S3 that checks signatures: LocalStack's, run on the host
(moto accepts any signature, so it cannot tell a broken URL from a good one).

The registry runs as `make run` does, DynamoDB on its embedded moto, S3 on LocalStack
(`AWS_ENDPOINT_URL_S3`); skopeo pulls through the 307s. `make localstack` installs
LocalStack under Python 3.13; CI requires it, elsewhere these tests are skipped without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chalicelib.local.stack import free_port
from tests.images import image_layout, make_image, random_layer, sha256
from tests.integration.conftest import ROOT, Registry, _start, _stop, skopeo

pytestmark = pytest.mark.integration
LOCALSTACK = ROOT / ".localstack-venv" / "bin" / "python"


@pytest.fixture(scope="module")
def localstack_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not LOCALSTACK.exists():
        if os.environ.get("CI"):
            pytest.fail("LocalStack is required in CI (.ci/run runs `make localstack`)")
        pytest.skip("LocalStack not installed: `make localstack`")
    port = free_port()
    volume = tmp_path_factory.mktemp("localstack")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(volume),
        "SERVICES": "s3",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "S3_SKIP_SIGNATURE_VALIDATION": "0",  # the point of running it
        "LOCALSTACK_VOLUME_DIR": str(volume),
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
    }
    log = volume / "localstack.log"
    process = subprocess.Popen(
        [str(LOCALSTACK), "-m", "localstack.runtime.main"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            health = requests.get(f"{endpoint}/_localstack/health", timeout=1).json()
            if health["services"].get("s3") in ("available", "running"):
                break
        except (requests.ConnectionError, ValueError):
            pass
        if process.poll() is not None:
            pytest.fail(f"LocalStack exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"LocalStack did not start:\n{log.read_text()[-3000:]}")
    yield endpoint
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def s3_checked_registry(localstack_s3: str, tmp_path_factory) -> Iterator[Registry]:
    started = _start(
        tmp_path_factory.mktemp("localstack-registry"),
        "localstack",
        {
            "AWS_ENDPOINT_URL_S3": localstack_s3,
            "STRATUS_PRESIGN_SECONDS": "3",
            # LocalStack checks signatures made with its default secret key, "test".
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_SESSION_TOKEN": "",
        },
    )
    yield started
    _stop(started)


def _pushed(registry: Registry, tmp_path: Path, repo: str) -> bytes:
    layer = random_layer(50_000, repo)
    image = make_image([layer])
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{image_layout(tmp_path / 'src', image)}:latest",
        f"docker://{registry.host}/{repo}:v1",
    )
    return layer


def _presigned(registry: Registry, repo: str, layer: bytes) -> str:
    answer = requests.get(
        f"{registry.url}/v2/{repo}/blobs/{sha256(layer)}", allow_redirects=False, timeout=10
    )
    assert answer.status_code == 307
    return answer.headers["Location"]


def test_presigned_blob_url_has_a_valid_signature(
    s3_checked_registry: Registry, tmp_path: Path
) -> None:
    layer = _pushed(s3_checked_registry, tmp_path, "presign/valid")
    fetched = requests.get(_presigned(s3_checked_registry, "presign/valid", layer), timeout=10)
    assert fetched.status_code == 200
    assert fetched.content == layer


def test_tampered_presigned_url_is_refused_by_s3(
    s3_checked_registry: Registry, tmp_path: Path
) -> None:
    layer = _pushed(s3_checked_registry, tmp_path, "presign/tampered")
    url = _presigned(s3_checked_registry, "presign/tampered", layer)
    other_key = url.replace(sha256(layer).split(":")[1], "0" * 64)
    assert requests.get(other_key, timeout=10).status_code == 403
    longer = url.replace("X-Amz-Expires=3", "X-Amz-Expires=3600")
    assert requests.get(longer, timeout=10).status_code == 403


def test_presigned_url_expires(s3_checked_registry: Registry, tmp_path: Path) -> None:
    layer = _pushed(s3_checked_registry, tmp_path, "presign/expiring")
    url = _presigned(s3_checked_registry, "presign/expiring", layer)
    time.sleep(4)
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403
    assert "expired" in expired.text.lower()


def test_skopeo_pulls_through_signature_checked_redirects(
    s3_checked_registry: Registry, tmp_path: Path
) -> None:
    layer = _pushed(s3_checked_registry, tmp_path, "presign/skopeo")
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{s3_checked_registry.host}/presign/skopeo:v1",
        f"oci:{tmp_path / 'out'}:pulled",
    )
    blob = tmp_path / "out" / "blobs" / "sha256" / sha256(layer).split(":")[1]
    assert blob.read_bytes() == layer
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"]
