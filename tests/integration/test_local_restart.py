"""`make run` keeps its data in a folder: what it acknowledged comes back after a restart,
whether it was stopped cleanly or killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256
from tests.integration.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    ROOT,
    Registry,
    _start,
    _stop,
    admin_cli,
)

CHUNK = 5 * 1024 * 1024 + 4096  # over S3's part minimum: a multipart upload


@dataclass
class Pushed:
    manifests: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, tag)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, digest)


def _blob(registry: Registry, repo: str, data: bytes, pushed: Pushed) -> None:
    answer = requests.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/",
        params={"digest": sha256(data)},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    pushed.blobs[(repo, sha256(data))] = data


def _image(registry: Registry, repo: str, tag: str, layer: bytes, pushed: Pushed) -> None:
    config = json.dumps({"os": "linux", "architecture": "amd64", "tag": tag}).encode()
    for data in (layer, config):
        if (repo, sha256(data)) not in pushed.blobs:
            _blob(registry, repo, data, pushed)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()
    answer = requests.put(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    pushed.manifests[(repo, tag)] = manifest


def _chunked_blob(registry: Registry, repo: str, data: bytes, pushed: Pushed) -> None:
    location = _open_upload(registry, repo)
    for start in range(0, len(data), CHUNK):
        _patch(location, data[start : start + CHUNK], start)
    answer = requests.put(location, params={"digest": sha256(data)}, timeout=60)
    assert answer.status_code == 201, answer.text
    pushed.blobs[(repo, sha256(data))] = data


def _open_upload(registry: Registry, repo: str) -> str:
    answer = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", timeout=60)
    assert answer.status_code == 202
    return registry.url + answer.headers["Location"]


def _patch(location: str, data: bytes, start: int) -> None:
    answer = requests.patch(
        location,
        data=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(data) - 1}",
        },
        timeout=60,
    )
    assert answer.status_code == 202, answer.text


def _payload(seed: str, size: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _push_everything(registry: Registry) -> tuple[Pushed, str, bytes]:
    """Images in two repositories, a multipart blob, a deleted tag, and an upload left open
    (one multipart part and a buffer): the session and its bytes must survive too."""
    pushed = Pushed()
    run = uuid.uuid4().hex[:6]
    for n in range(4):
        repo = f"keep-{run}/app-{n % 2}"
        _image(registry, repo, f"v{n}", _payload(f"{run}-{n}", 3000 + n), pushed)
    _chunked_blob(registry, f"keep-{run}/app-0", _payload(f"{run}-big", 2 * CHUNK + 10), pushed)
    _image(registry, f"keep-{run}/app-1", "doomed", _payload(f"{run}-d", 100), pushed)
    gone = requests.delete(f"{registry.url}/v2/keep-{run}/app-1/manifests/doomed", timeout=60)
    assert gone.status_code == 202
    del pushed.manifests[(f"keep-{run}/app-1", "doomed")]
    location = _open_upload(registry, f"keep-{run}/app-0")
    unfinished = _payload(f"{run}-open", CHUNK + 777)
    _patch(location, unfinished[:CHUNK], 0)
    _patch(location, unfinished[CHUNK:], CHUNK)
    return pushed, location.split("/v2/", 1)[1], unfinished


def _assert_all_back(registry: Registry, pushed: Pushed) -> None:
    for (repo, tag), manifest in pushed.manifests.items():
        for reference in (tag, sha256(manifest)):
            answer = requests.get(
                f"{registry.url}/v2/{repo}/manifests/{reference}",
                headers={"Accept": OCI_MANIFEST},
                timeout=60,
            )
            assert answer.status_code == 200, (repo, reference)
            assert answer.content == manifest
    for (repo, digest), data in pushed.blobs.items():
        answer = requests.get(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=60)
        assert answer.status_code == 200, (repo, digest)
        assert answer.content == data
    repos = {repo for repo, _ in pushed.manifests}
    for repo in repos:
        tags = requests.get(f"{registry.url}/v2/{repo}/tags/list", timeout=60).json()["tags"]
        assert sorted(tags) == sorted(t for r, t in pushed.manifests if r == repo)
    catalog = requests.get(f"{registry.url}/v2/_catalog", timeout=60).json()["repositories"]
    assert repos <= set(catalog)


def test_clean_stop_and_start_bring_back_everything_byte_identical(tmp_path: Path) -> None:
    env = {"STRATUS_DATA_DIR": str(tmp_path / "data")}
    first = _start(tmp_path, "before", env)
    try:
        pushed, upload, unfinished = _push_everything(first)
    finally:
        _stop(first)
    assert first.process.returncode == 0, first.log.read_text()
    on_disk = {path.read_bytes() for path in (tmp_path / "data" / "objects").glob("*/*")}
    assert set(pushed.blobs.values()) <= on_disk  # blob bytes live in files, not in memory

    second = _start(tmp_path, "after", env)
    try:
        _assert_all_back(second, pushed)
        location = f"{second.url}/v2/{upload}"
        status = requests.get(location, timeout=60)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{len(unfinished) - 1}"
        tail = b"and the rest, after the restart"
        _patch(location, tail, len(unfinished))
        whole = unfinished + tail
        assert requests.put(location, params={"digest": sha256(whole)}, timeout=60).ok
        repo = upload.split("/blobs/", 1)[0]
        pulled = requests.get(f"{second.url}/v2/{repo}/blobs/{sha256(whole)}", timeout=60)
        assert pulled.content == whole
    finally:
        _stop(second)


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    env = {"STRATUS_DATA_DIR": str(tmp_path / "data")}
    first = _start(tmp_path, "killed", env)
    try:
        pushed, _, _ = _push_everything(first)
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
    second = _start(tmp_path, "revived", env)
    try:
        _assert_all_back(second, pushed)
    finally:
        _stop(second)


def _token(registry: Registry, user: str, password: str, scope: str) -> requests.Response:
    return requests.get(
        f"{registry.url}/v2/auth",
        params={"service": "stratus", "scope": scope},
        auth=(user, password),
        timeout=60,
    )


def test_accounts_grants_and_signing_key_survive_a_restart(tmp_path: Path) -> None:
    env = {
        "STRATUS_DATA_DIR": str(tmp_path / "data"),
        "STRATUS_AUTH": "1",
        "STRATUS_ADMIN_USER": ADMIN,
        "STRATUS_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    password = "dev-password-123"
    scope = "repository:shop/app:pull,push"
    first = _start(tmp_path, "auth-before", env)
    try:
        admin_cli(first, "create-user", "dev", "--password-stdin", stdin=password + "\n")
        admin_cli(first, "create-org", "shop", "--owner", ADMIN)
        admin_cli(first, "grant", "shop/app", "dev", "write")
        answer = _token(first, "dev", password, scope)
        assert answer.status_code == 200, answer.text
        token = answer.json()["token"]
    finally:
        _stop(first)
    second = _start(tmp_path, "auth-after", env)
    try:
        tags = requests.get(
            f"{second.url}/v2/shop/app/tags/list",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert tags.status_code == 404, tags.text  # the old token is valid: no such repo yet
        assert json.loads(admin_cli(second, "permissions", "shop/app"))["permissions"] == {
            "dev": "write"
        }
        assert _token(second, "dev", password, scope).status_code == 200
        assert _token(second, "dev", "wrong-password", scope).status_code == 401
    finally:
        _stop(second)


def test_a_data_folder_serves_one_registry_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _start(tmp_path, "holder", {"STRATUS_DATA_DIR": str(data)})
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        second = subprocess.run(
            [sys.executable, "-m", "chalicelib.local", "--port", "0", "--data-dir", str(data)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "in use by another local registry" in second.stderr
        assert requests.get(f"{first.url}/v2/", timeout=30).status_code == 200
    finally:
        _stop(first)
