"""Side by side with CNCF Distribution: skopeo push and pull of the same images to
Stratus (local mode) and Distribution 2.8 (Debian `docker-registry`, S3 driver with
redirects), both on one moto server; median wall seconds.

    python -m bench sidebyside [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import DOCS, report
from chalicelib.local.stack import free_port
from tests import servers

DISTRIBUTION = "Distribution 2.8"


def start_distribution(work: Path, storage: dict[str, Any]) -> servers.Server | None:
    """Distribution 2.8 with `storage` (its config's storage section), or None when
    `docker-registry` is not installed."""
    binary = shutil.which("docker-registry")
    if not binary:
        return None
    host = f"127.0.0.1:{free_port()}"
    config = work / "distribution.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {**storage, "cache": {"blobdescriptor": "inmemory"}},
                "http": {"addr": host},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    command = [binary, "serve", str(config)]
    return servers.spawn("distribution", command, env, work, f"http://{host}/v2/", host)


def _s3_storage(endpoint: str) -> dict[str, Any]:
    """Distribution's S3 driver on the moto server at `endpoint`, redirects on."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="distribution")
    return {
        "s3": {
            "accesskey": "bench",
            "secretkey": "bench",
            "region": "us-east-1",
            "regionendpoint": endpoint,
            "bucket": "distribution",
            "secure": False,
            "v4auth": True,
            "rootdirectory": "/registry",
        },
        "redirect": {"disable": False},
    }


def _skopeo(*args: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["skopeo", "--insecure-policy", *args], check=True, capture_output=True, timeout=600
    )
    return time.perf_counter() - began


def side_by_side(
    registries: dict[str, str], work: Path, rounds: int
) -> dict[str, dict[str, float]]:
    from tests.images import (
        OCI_LAYER_TAR,
        image_layout,
        index_layout,
        make_image,
        make_index,
        random_layer,
    )

    mib = 1024 * 1024
    multi_arch_images = [
        make_image(
            [random_layer(mib, f"ma-{arch}-{i}", compress=False) for i in range(2)],
            architecture=arch,
            layer_type=OCI_LAYER_TAR,
        )
        for arch in ("amd64", "arm64")
    ]
    layouts = {
        "small (1 layer, 4 KiB)": (
            image_layout(work / "small", make_image([random_layer(4096, "small")])),
            [],
        ),
        "multi-layer (5 x 6 MiB)": (
            image_layout(
                work / "big",
                make_image(
                    [random_layer(6 * mib, f"big-{i}", compress=False) for i in range(5)],
                    layer_type=OCI_LAYER_TAR,
                ),
            ),
            [],
        ),
        "multi-arch (2 x 2 x 1 MiB)": (
            index_layout(
                work / "multiarch",
                multi_arch_images,
                make_index(multi_arch_images, [("linux", "amd64"), ("linux", "arm64")]),
            ),
            ["--all"],
        ),
    }
    results: dict[str, dict[str, float]] = {}
    for image_label, (layout, extra) in layouts.items():
        for name, host in registries.items():
            pushes, pulls = [], []
            for round_ in range(rounds):
                repo = f"bench/{abs(hash(image_label)) % 10000}-{round_}"
                pushes.append(
                    _skopeo(
                        "copy",
                        "--dest-tls-verify=false",
                        *extra,
                        f"oci:{layout}:latest",
                        f"docker://{host}/{repo}:v1",
                    )
                )
                out = work / f"pull-{name.split()[0]}-{round_}-{abs(hash(image_label))}"
                pulls.append(
                    _skopeo(
                        "copy",
                        "--src-tls-verify=false",
                        *extra,
                        f"docker://{host}/{repo}:v1",
                        f"oci:{out}:pulled",
                    )
                )
                shutil.rmtree(out, ignore_errors=True)
            results.setdefault(image_label, {})[f"{name} push"] = statistics.median(pushes)
            results[image_label][f"{name} pull"] = statistics.median(pulls)
    return results


def measure(rounds: int = 3) -> dict[str, Any]:
    """{"rounds": n, "images": {image: {"<registry> push"|"<registry> pull": seconds}}};
    without Distribution installed, Stratus's numbers only."""
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-side-"))
    started: list[servers.Server] = []
    try:
        moto = servers.start_moto(work)
        started.append(moto)
        stratus = servers.start_stratus(work, env={"AWS_ENDPOINT_URL": moto.url})
        started.append(stratus)
        registries = {"Stratus": stratus.host}
        distribution = start_distribution(work, _s3_storage(moto.url))
        if distribution is not None:
            started.append(distribution)
            registries[DISTRIBUTION] = distribution.host
        return {"rounds": rounds, "images": side_by_side(registries, work, rounds)}
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round instead of 3")
    args = parser.parse_args()
    data = measure(1 if args.quick else 3)
    plotted = report.plot_side_by_side(data["images"], DOCS / "bench-side-by-side.png")
    text = report.sidebyside_section(data, plotted)
    report.write_section("sidebyside", text)
    print(text)
