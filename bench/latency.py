"""Latency per operation, p50 and p99 in milliseconds: in process (the Chalice app called
with API Gateway events) and over HTTP (the local server, `make run`, over loopback).

    python -m bench latency [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import percentile, report
from tests import servers

LATENCY_OPS = [
    ("GET /v2/", "GET", "/v2/"),
    ("manifest GET by tag", "GET", "/v2/lat/app/manifests/v1"),
    ("manifest HEAD by digest", "HEAD", "/v2/lat/app/manifests/{digest}"),
    ("blob HEAD", "HEAD", "/v2/lat/app/blobs/{blob}"),
    ("blob GET (307)", "GET", "/v2/lat/app/blobs/{blob}"),
    ("tags list", "GET", "/v2/lat/app/tags/list"),
]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 (the median) and p99 (nearest rank)."""
    return statistics.median(samples), percentile(samples, 0.99) or 0.0


def latency_in_process(iterations: int) -> dict[str, tuple[float, float]]:
    """The Chalice app called with API Gateway events, moto in process."""
    from moto import mock_aws

    from tests.client import Client
    from tests.images import make_image, random_layer, sha256

    out = {}
    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        from app import app

        client = Client(app)
        image = make_image([random_layer(2048, "lat")])
        for blob in (image.config, *image.layers):
            client.push_blob("lat/app", blob)
        client.must_push("lat/app", "v1", image.manifest)
        values = {"digest": image.digest, "blob": sha256(image.layers[0])}
        for label, method, path in LATENCY_OPS:
            target = path.format(**values)
            samples = []
            for _ in range(iterations):
                began = time.perf_counter()
                client.request(method, target)
                samples.append((time.perf_counter() - began) * 1000)
            out[label] = _percentiles(samples)
    return out


def latency_over_http(registry: str, iterations: int) -> dict[str, tuple[float, float]]:
    """The same operations through the local server (`make run`) over loopback."""
    import requests

    from tests.images import make_image, random_layer, sha256

    session = requests.Session()
    image = make_image([random_layer(2048, "lat-http")])
    for blob in (image.config, *image.layers):
        answer = session.post(
            f"{registry}/v2/lat/app/blobs/uploads/?digest={sha256(blob)}", data=blob, timeout=30
        )
        assert answer.status_code == 201, answer.text
    answer = session.put(
        f"{registry}/v2/lat/app/manifests/v1",
        data=image.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    values = {"digest": image.digest, "blob": sha256(image.layers[0])}
    out = {}
    for label, method, path in LATENCY_OPS:
        url = registry + path.format(**values)
        samples = []
        for _ in range(iterations):
            began = time.perf_counter()
            session.request(method, url, allow_redirects=False, timeout=30)
            samples.append((time.perf_counter() - began) * 1000)
        out[label] = _percentiles(samples)
    return out


def measure(iterations: int = 200) -> dict[str, Any]:
    """{"in_process": {op: [p50, p99]}, "http": {op: [p50, p99]}}."""
    in_process = latency_in_process(iterations)
    with tempfile.TemporaryDirectory(prefix="stratus-bench-latency-") as scratch:
        registry = servers.start_stratus(Path(scratch))
        try:
            over_http = latency_over_http(registry.url, iterations)
        finally:
            registry.stop()
    return {"iterations": iterations, "in_process": in_process, "http": over_http}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 samples instead of 200")
    args = parser.parse_args()
    text = report.latency_section(measure(30 if args.quick else 200))
    report.write_section("latency", text)
    print(text)
