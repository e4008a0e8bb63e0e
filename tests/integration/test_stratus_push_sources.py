"""`stratus push` from every source skopeo names: archives made by skopeo from fixtures,
podman's storage, a (fake) Docker engine, OCI layouts with multi-arch indexes."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests

from chalicelib.push import sources
from tests.images import index_layout, make_index, sha256
from tests.integration.conftest import Registry, require_tool, skopeo
from tests.integration.push_helpers import (
    diff_ids,
    layout_of,
    pull_layout,
    pulled_manifest,
    small_image,
    stratus_push,
)

pytestmark = pytest.mark.integration


def test_push_from_an_oci_archive_keeps_every_digest(registry: Registry, tmp_path: Path) -> None:
    image = small_image("oci-archive", layers=3)
    archive = tmp_path / "image.tar"
    skopeo("copy", f"oci:{layout_of(tmp_path, image)}:v1", f"oci-archive:{archive}:v1")
    digestfile = tmp_path / "digest"
    done = stratus_push(
        f"oci-archive:{archive}",
        f"{registry.host}/src/ociarchive:v1",
        "--digestfile",
        str(digestfile),
    )
    assert done.returncode == 0, done.stderr
    assert digestfile.read_text() == image.digest
    assert image.digest in done.stdout
    got = requests.get(f"{registry.url}/v2/src/ociarchive/manifests/v1", timeout=30)
    assert got.content == image.manifest
    pull_layout(registry.host, "src/ociarchive:v1", tmp_path / "back")


def test_push_from_a_docker_archive_gzips_its_layers_as_written(
    registry: Registry, tmp_path: Path
) -> None:
    image = small_image("docker-archive", layers=3)
    archive = tmp_path / "saved.tar"
    skopeo("copy", f"oci:{layout_of(tmp_path, image)}:v1", f"docker-archive:{archive}:demo/app:v1")
    done = stratus_push(f"docker-archive:{archive}", f"{registry.host}/src/dockerarchive:v1")
    assert done.returncode == 0, done.stderr
    manifest = pulled_manifest(registry, "src/dockerarchive:v1")
    assert {layer["mediaType"] for layer in manifest["layers"]} == {sources.DOCKER_LAYER_GZIP}
    back = pull_layout(registry.host, "src/dockerarchive:v1", tmp_path / "back")
    layers = [
        (back / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
        for layer in manifest["layers"]
    ]
    assert diff_ids(layers) == diff_ids(image.layers)  # the same files, recompressed
    config = json.loads(image.config)
    pulled_config = requests.get(
        f"{registry.url}/v2/src/dockerarchive/blobs/{manifest['config']['digest']}", timeout=30
    ).json()
    assert pulled_config["rootfs"]["diff_ids"] == config["rootfs"]["diff_ids"]


def test_docker_archive_layers_compress_to_the_digest_they_declare(tmp_path: Path) -> None:
    image = small_image("twice", layers=2)
    archive = tmp_path / "saved.tar"
    skopeo("copy", f"oci:{layout_of(tmp_path, image)}:v1", f"docker-archive:{archive}:demo/a:v1")
    source = sources.read_docker_archive(archive)
    layers = json.loads(source.top.body)["layers"]
    for layer in layers:
        blob = source.blobs[layer["digest"]]
        with blob.open() as stream:
            written = stream.read()
        assert (sha256(written), len(written)) == (blob.digest, blob.size)
    unpacked = [gzip.decompress(source.blobs[layer["digest"]].open().read()) for layer in layers]
    assert [sha256(tar) for tar in unpacked] == diff_ids(image.layers)


def test_push_of_a_multi_arch_index_pushes_every_platform(
    registry: Registry, tmp_path: Path
) -> None:
    images = [small_image("amd"), small_image("arm")]
    index = make_index(images, [("linux", "amd64"), ("linux", "arm64")])
    layout = index_layout(tmp_path / "index", images, index, tag="v2")
    done = stratus_push(f"oci:{layout}:v2", f"{registry.host}/src/multiarch:v2")
    assert done.returncode == 0, done.stderr
    assert sha256(index) in done.stdout
    got = requests.get(f"{registry.url}/v2/src/multiarch/manifests/v2", timeout=30)
    assert got.content == index
    for image in images:
        child = requests.get(
            f"{registry.url}/v2/src/multiarch/manifests/{image.digest}", timeout=30
        )
        assert child.content == image.manifest


def test_push_streams_from_podman_storage_without_a_temporary_copy(
    registry: Registry, tmp_path: Path
) -> None:
    podman = require_tool("podman")
    require_tool("skopeo")
    image = small_image("podman")
    run = Path(tempfile.mkdtemp(prefix="stratus-run-"))  # podman: a runroot under 50 chars
    store = [f"--root={tmp_path / 'storage'}", f"--runroot={run}", "--storage-driver=vfs"]
    layout = layout_of(tmp_path, image)
    pulled = subprocess.run(
        [podman, *store, "pull", "-q", f"oci:{layout}:v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pulled.returncode == 0, pulled.stderr
    image_id = pulled.stdout.strip()
    spec = f"[vfs@{tmp_path / 'storage'}+{run}]"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with _largest_size_under(scratch) as largest:
        done = stratus_push(
            f"containers-storage:{spec}{image_id}",
            f"{registry.host}/src/podman:v1",
            env={"TMPDIR": str(scratch)},
        )
    assert done.returncode == 0, done.stderr
    assert largest == [0]  # streamed from skopeo: no temporary copy, not even by skopeo
    missing = stratus_push(f"containers-storage:{spec}nosuchimage", f"{registry.host}/src/x:v1")
    assert missing.returncode == 3 and "nosuchimage" in missing.stderr
    manifest = pulled_manifest(registry, "src/podman:v1")
    assert manifest["config"]["digest"] == sha256(image.config)
    back = pull_layout(registry.host, "src/podman:v1", tmp_path / "back")
    layers = [
        (back / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
        for layer in manifest["layers"]
    ]
    assert diff_ids(layers) == diff_ids(image.layers)
    subprocess.run([podman, *store, "rmi", "-a", "-f"], capture_output=True, timeout=60)
    shutil.rmtree(run, ignore_errors=True)


class _UnixHTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "localhost", 0


def _fake_engine(sock: Path, images: dict[str, Path], asked: list[str]) -> ThreadingHTTPServer:
    """The one Docker Engine API call `docker-daemon:` makes: GET /images/{name}/get."""

    class Engine(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = unquote(self.path.removeprefix("/images/").removesuffix("/get"))
            asked.append(name)
            if name not in images:
                body = json.dumps({"message": f"No such image: {name}"}).encode()
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.end_headers()  # streamed without a length, as the engine does
            with images[name].open("rb") as tar:
                shutil.copyfileobj(tar, self.wfile)
            self.wfile.flush()
            time.sleep(0.3)  # a slow end: a client saving the stream holds it all meanwhile

        def log_message(self, *args: object) -> None:
            pass

    return _UnixHTTPServer(str(sock), Engine)  # type: ignore[arg-type]


@dataclass
class Engine:
    sock: Path
    images: dict[str, Path]
    asked: list[str]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fake Docker engine on a unix socket: its socket, its images, the names asked for."""
    fake = Engine(tmp_path / "docker.sock", {}, [])
    server = _fake_engine(fake.sock, fake.images, fake.asked)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()


@contextlib.contextmanager
def _largest_size_under(folder: Path) -> Iterator[list[int]]:
    """The most bytes of files under `folder` at any moment while the block runs."""
    largest, running = [0], threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            total = 0
            for found in folder.rglob("*"):
                with contextlib.suppress(OSError):  # removed since it was listed
                    total += found.stat().st_size if found.is_file() else 0
            largest[0] = max(largest[0], total)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield largest
    running.clear()
    watcher.join()


def test_push_streams_from_the_docker_engine_without_a_temporary_copy(
    registry: Registry, tmp_path: Path, engine: Engine
) -> None:
    image = small_image("daemon", layers=2)
    saved = tmp_path / "saved.tar"
    layout = layout_of(tmp_path, image)
    skopeo("copy", f"oci:{layout}:v1", f"docker-archive:{saved}:demo/app:v1")
    engine.images["demo/app:v1"] = saved
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"DOCKER_HOST": f"unix://{engine.sock}", "TMPDIR": str(scratch)}
    with _largest_size_under(scratch) as largest:
        done = stratus_push("docker-daemon:demo/app:v1", f"{registry.host}/src/daemon:v1", env=env)
    assert done.returncode == 0, done.stderr
    assert engine.asked == ["demo/app:v1", "demo/app:v1"]  # learn, then push
    assert largest == [0]  # nothing of the image was written to a temporary file
    back = pull_layout(registry.host, "src/daemon:v1", tmp_path / "back")
    manifest = pulled_manifest(registry, "src/daemon:v1")
    layers = [
        (back / "blobs" / "sha256" / layer["digest"].split(":")[1]).read_bytes()
        for layer in manifest["layers"]
    ]
    assert diff_ids(layers) == diff_ids(image.layers)


def test_push_of_a_gzipped_docker_archive_gives_the_same_image(
    registry: Registry, tmp_path: Path
) -> None:
    image = small_image("gzipped", layers=2)
    saved = tmp_path / "saved.tar"
    skopeo("copy", f"oci:{layout_of(tmp_path, image)}:v1", f"docker-archive:{saved}:demo/gz:v1")
    plain = stratus_push(f"docker-archive:{saved}", f"{registry.host}/src/plain:v1")
    packed = tmp_path / "saved.tar.gz"
    packed.write_bytes(gzip.compress(saved.read_bytes()))
    unmounted = {"STRATUS_PUSH_STATE": str(tmp_path / "state")}  # sent, not mounted
    streamed = stratus_push(f"docker-archive:{packed}", f"{registry.host}/src/gz:v1", env=unmounted)
    assert plain.returncode == 0 and streamed.returncode == 0, plain.stderr + streamed.stderr
    assert plain.stdout.split()[-1] == streamed.stdout.split()[-1]  # the same manifest digest


def test_push_of_an_image_the_engine_lacks_exits_3_naming_it(
    registry: Registry, engine: Engine
) -> None:
    env = {"DOCKER_HOST": f"unix://{engine.sock}"}
    done = stratus_push("docker-daemon:nope:v9", f"{registry.host}/src/nope:v1", env=env)
    assert done.returncode == 3
    assert "No such image: nope:v9" in done.stderr


def test_push_refuses_a_blob_that_does_not_match_its_digest(
    registry: Registry, tmp_path: Path
) -> None:
    image = small_image("corrupt", layers=1)
    layout = layout_of(tmp_path, image)
    layer = layout / "blobs" / "sha256" / sha256(image.layers[0]).split(":")[1]
    layer.write_bytes(layer.read_bytes()[:-1] + b"!")
    state = tmp_path / "state"
    env = {"STRATUS_PUSH_STATE": str(state)}
    done = stratus_push(f"oci:{layout}:v1", f"{registry.host}/src/corrupt:v1", env=env)
    assert done.returncode == 3, done.stderr
    assert "the source changed or is corrupt" in done.stderr
    head = requests.head(f"{registry.url}/v2/src/corrupt/blobs/{sha256(image.layers[0])}")
    assert head.status_code == 404
    assert requests.get(f"{registry.url}/v2/src/corrupt/manifests/v1").status_code == 404
    assert list(state.glob("*.json")) == []  # the upload is abandoned, not kept to resume


def test_push_skips_blobs_the_registry_already_has(registry: Registry, tmp_path: Path) -> None:
    image = small_image("again", layers=2)
    layout = layout_of(tmp_path, image)
    first = stratus_push(f"oci:{layout}:v1", f"{registry.host}/src/again:v1")
    assert first.returncode == 0, first.stderr
    for blob in (layout / "blobs" / "sha256").iterdir():  # emptied: any read would fail
        if f"sha256:{blob.name}" != image.digest:
            blob.write_bytes(b"")
    second = stratus_push(f"oci:{layout}:v1", f"{registry.host}/src/again:v2")
    assert second.returncode == 0, second.stderr
    tagged = requests.get(f"{registry.url}/v2/src/again/manifests/v2", timeout=30)
    assert tagged.content == image.manifest


def test_push_mounts_blobs_it_pushed_to_another_repository(
    registry: Registry, tmp_path: Path
) -> None:
    image = small_image("mount", layers=2)
    layout = layout_of(tmp_path, image)
    env = {"STRATUS_PUSH_STATE": str(tmp_path / "state")}
    first = stratus_push(f"oci:{layout}:v1", f"{registry.host}/src/mount-a:v1", env=env)
    assert first.returncode == 0, first.stderr
    for blob in (layout / "blobs" / "sha256").iterdir():  # emptied: only a mount can work
        if f"sha256:{blob.name}" != image.digest:
            blob.write_bytes(b"")
    second = stratus_push(
        f"oci:{layout}:v1", f"{registry.host}/src/mount-b:v1", env=env, quiet=False
    )
    assert second.returncode == 0, second.stderr
    assert second.stderr.count(": mounted") == 3  # two layers and the config
    for layer in image.layers:
        head = requests.head(f"{registry.url}/v2/src/mount-b/blobs/{sha256(layer)}", timeout=30)
        assert head.status_code == 200
