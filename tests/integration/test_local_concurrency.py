"""`make run` under concurrent clients: what it acknowledges stays written, and conditional
writes hold as on AWS. Each test stages one of the races local mode used to lose."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256
from tests.integration.conftest import Registry


def _push_blob(session: requests.Session, registry: Registry, repo: str, data: bytes) -> int:
    answer = session.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/",
        params={"digest": sha256(data)},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    return answer.status_code


def _manifest(layer: bytes, config: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()


def _put_manifest(
    session: requests.Session, registry: Registry, repo: str, tag: str, manifest: bytes
) -> int:
    return session.put(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        data=manifest,
        headers={"Content-Type": OCI_MANIFEST},
        timeout=60,
    ).status_code


def _push_image(registry: Registry, repo: str, tag: str) -> tuple[int, bytes]:
    """A one-layer image; the manifest PUT's status and the manifest."""
    with requests.Session() as session:
        layer = f"layer {repo} {tag} {uuid.uuid4()}".encode()
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        assert _push_blob(session, registry, repo, layer) == 201
        assert _push_blob(session, registry, repo, config) == 201
        manifest = _manifest(layer, config)
        return _put_manifest(session, registry, repo, tag, manifest), manifest


def _push_broken_image(registry: Registry, repo: str, tag: str) -> int:
    """A manifest whose layer was never uploaded: its transaction fails (400)."""
    with requests.Session() as session:
        config = json.dumps({"broken": tag}).encode()
        assert _push_blob(session, registry, repo, config) == 201
        missing = f"never uploaded {uuid.uuid4()}".encode()
        return _put_manifest(session, registry, repo, tag, _manifest(missing, config))


def test_acknowledged_pushes_survive_concurrent_failed_pushes(registry: Registry) -> None:
    run = uuid.uuid4().hex[:8]
    stop = threading.Event()

    def pusher(worker: int) -> list[tuple[str, str, bytes]]:
        done = []
        for n in range(6):
            repo, tag = f"race-{run}/ok-{worker}", f"v{n}"
            status, manifest = _push_image(registry, repo, tag)
            assert status == 201
            done.append((repo, tag, manifest))
        return done

    def breaker(worker: int) -> int:
        failures = 0
        while not stop.is_set():
            assert _push_broken_image(registry, f"race-{run}/bad-{worker}", f"b{failures}") == 400
            failures += 1
        return failures

    with ThreadPoolExecutor(14) as pool:
        breakers = [pool.submit(breaker, w) for w in range(6)]
        pushers = [pool.submit(pusher, w) for w in range(8)]
        pushed = [image for future in pushers for image in future.result()]
        stop.set()
        assert all(future.result() > 0 for future in breakers)

    assert len(pushed) == 48
    for repo, tag, manifest in pushed:
        for reference in (tag, sha256(manifest)):
            answer = requests.get(
                f"{registry.url}/v2/{repo}/manifests/{reference}",
                headers={"Accept": OCI_MANIFEST},
                timeout=30,
            )
            assert answer.status_code == 200, (repo, reference)
            assert answer.content == manifest
    tags = requests.get(f"{registry.url}/v2/race-{run}/ok-0/tags/list", timeout=30).json()
    assert sorted(tags["tags"]) == [f"v{n}" for n in range(6)]


def test_concurrent_patches_at_one_offset_accept_exactly_one(registry: Registry) -> None:
    repo = f"race-{uuid.uuid4().hex[:8]}/patches"
    for attempt in range(8):
        start = requests.post(f"{registry.url}/v2/{repo}/blobs/uploads/", timeout=30)
        assert start.status_code == 202
        location = registry.url + start.headers["Location"]
        chunks = [f"chunk {attempt} from {n} ".encode() * 50 for n in range(2)]
        barrier = threading.Barrier(2)

        def patch(chunk: bytes, location: str = location, barrier=barrier) -> int:
            barrier.wait()
            return requests.patch(
                location,
                data=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"0-{len(chunk) - 1}",
                },
                timeout=30,
            ).status_code

        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(patch, chunks))
        assert sorted(statuses) == [202, 416], statuses
        accepted = chunks[statuses.index(202)]
        status = requests.get(location, timeout=30)
        assert status.headers["Range"] == f"0-{len(accepted) - 1}"
        close = requests.put(location, params={"digest": sha256(accepted)}, timeout=30)
        assert close.status_code == 201
        pulled = requests.get(f"{registry.url}/v2/{repo}/blobs/{sha256(accepted)}", timeout=30)
        assert pulled.content == accepted


def test_simultaneous_monolithic_uploads_of_one_blob_all_succeed(registry: Registry) -> None:
    data = hashlib.sha256(uuid.uuid4().bytes).digest() * 40_000  # 1.25 MB
    repo = f"race-{uuid.uuid4().hex[:8]}/same-blob"
    barrier = threading.Barrier(20)

    def upload(n: int) -> int:
        with requests.Session() as session:
            barrier.wait()
            return _push_blob(session, registry, f"{repo}-{n % 4}", data)

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(upload, range(20))) == [201] * 20
    pulled = requests.get(f"{registry.url}/v2/{repo}-0/blobs/{sha256(data)}", timeout=30)
    assert pulled.content == data


def test_fifty_simultaneous_clients_are_all_answered(registry: Registry) -> None:
    host, port = registry.host.split(":")
    barrier = threading.Barrier(50)

    def ask(_: int) -> bytes:
        barrier.wait()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {registry.host}\r\n\r\n".encode())
            return sock.recv(64)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(ask, range(50)))
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers
