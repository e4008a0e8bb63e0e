"""Pull-through cache: skopeo's pull time directly from an upstream, then through the cache
(first pull: a miss; second: cached), and the AWS calls one cached pull costs.

The upstream is Distribution 2.8 (Debian `docker-registry`) on 127.0.0.1 with htpasswd, so
every blob miss is the slowest case (copied first: the upstream serves bytes only with our
credentials). Times: `python -m chalicelib.local` over HTTP, skopeo copying to an OCI
layout. Calls: the app in-process on moto, counting every botocore call of one cached pull
(manifest by tag, then each blob's redirect), as a client pulls.

    python -m bench.proxycache [--layers 3] [--layer-mib 8] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

USER, PASSWORD = "bench", "bench-password-1"


def _distribution(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    from chalicelib.local.stack import free_port
    from tests.servers import answers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    (work / "htpasswd").write_text(f"{USER}:{hashed}\n")
    host = f"127.0.0.1:{free_port()}"
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(work / "upstream")}},
        "http": {"addr": host},
        "auth": {"htpasswd": {"realm": "upstream", "path": str(work / "htpasswd")}},
    }
    (work / "config.yml").write_text(json.dumps(config))
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    process = subprocess.Popen([binary, "serve", str(work / "config.yml")])
    deadline = time.monotonic() + 30
    while answers(f"http://{host}/v2/") is None:
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("docker-registry did not start")
        time.sleep(0.1)
    return process, host


def _skopeo(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run(["skopeo", "--insecure-policy", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def _image(work: Path, layers: int, layer_mib: int) -> Path:
    from tests.images import generated_layout

    layout, _ = generated_layout(work / "layout", [layer_mib * 1024 * 1024] * layers)
    return layout


def _times(work: Path, upstream: str, layout: Path) -> dict[str, float]:
    import urllib.request

    from tests.servers import start_stratus

    _skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--dest-creds={USER}:{PASSWORD}",
        f"oci:{layout}:v1",
        f"docker://{upstream}/bench/app:v1",
    )
    server = start_stratus(work, "cache", {"STRATUS_PROXYCACHE_PRIVATE_UPSTREAMS": "1"})
    try:
        for path, document in (
            ("/api/v1/organizations", {"name": "mirror"}),
            (
                "/api/v1/organization/mirror/proxycache",
                {
                    "upstream_registry": upstream,
                    "insecure": True,
                    "upstream_registry_username": USER,
                    "upstream_registry_password": PASSWORD,
                },
            ),
        ):
            request = urllib.request.Request(
                server.url + path, data=json.dumps(document).encode(), method="POST"
            )
            urllib.request.urlopen(request, timeout=30).close()

        def pull(source: str, into: str, *creds: str) -> float:
            target = f"oci:{work / into}:x"
            return _skopeo("copy", "--src-tls-verify=false", *creds, source, target)

        return {
            "direct_s": pull(
                f"docker://{upstream}/bench/app:v1", "direct", f"--src-creds={USER}:{PASSWORD}"
            ),
            "first_through_cache_s": pull(f"docker://{server.host}/mirror/bench/app:v1", "first"),
            "second_through_cache_s": pull(f"docker://{server.host}/mirror/bench/app:v1", "second"),
        }
    finally:
        server.stop()


def _calls(upstream: str) -> dict[str, Any]:
    """AWS calls of one cached pull, the app in-process on moto."""
    from moto import mock_aws

    from chalicelib import proxycache
    from chalicelib.local import moto_patches
    from chalicelib.storage import calls
    from tests.client import Client

    moto_patches.install()
    calls.install()
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with mock_aws():
        import dataclasses

        from chalicelib import config
        from chalicelib.local.stack import provision

        saved = config.settings
        config.settings = dataclasses.replace(saved, proxycache_private_upstreams=True)
        try:
            provision()
            from app import app

            client = Client(app)
            client.post("/api/v1/organizations", body=b'{"name": "mirror"}')
            document = {
                "upstream_registry": upstream,
                "insecure": True,
                "upstream_registry_username": USER,
                "upstream_registry_password": PASSWORD,
            }
            client.post(
                "/api/v1/organization/mirror/proxycache", body=json.dumps(document).encode()
            )
            path = "/v2/mirror/bench/app"

            def pull() -> int:
                manifest = client.get(f"{path}/manifests/v1", headers=accept)
                document = json.loads(manifest.body)
                digests = [document["config"]["digest"]] + [
                    layer["digest"] for layer in document["layers"]
                ]
                for digest in digests:
                    assert client.get(f"{path}/blobs/{digest}").status == 307
                return 1 + len(digests)

            pull()  # the miss: copies everything
            proxycache._memo.clear()  # as a container past the 10 s memo would
            before = Counter(calls.counter)
            requests = pull()
            used = Counter(calls.counter)
            used.subtract(before)
            per_operation = {f"{s}.{o}": n for (s, o), n in sorted(used.items()) if n}
            return {
                "requests_per_pull": requests,
                "aws_calls_per_cached_pull": sum(per_operation.values()),
                "aws_calls_by_operation": per_operation,
            }
        finally:
            config.settings = saved


def measure(layers: int = 3, layer_mib: int = 8) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-proxycache-"))
    process, upstream = _distribution(work)
    try:
        layout = _image(work, layers, layer_mib)
        result: dict[str, Any] = {"layers": layers, "layer_mib": layer_mib}
        result.update(_times(work, upstream, layout))
        result.update(_calls(upstream))
        return result
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxycache")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-mib", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one 1 MiB layer")
    args = parser.parse_args()
    layers, size = (1, 1) if args.quick else (args.layers, args.layer_mib)
    print(json.dumps(measure(layers, size), indent=2))


if __name__ == "__main__":
    main()
