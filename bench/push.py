"""`stratus push` throughput: MB/s with 1, 4 and 8 parts in flight, into a local registry
with the AWS stages' body limit (STRATUS_MAX_REQUEST_BYTES=4500000), beside `skopeo copy`
into a local registry without a limit (skopeo could not push these layers through the limit).
Writes docs/bench-push.md (generated: do not edit by hand).

    python -m bench push [--quick] [-- --megabytes 512 --layers 4]

Both registries run `python -m chalicelib.local` on this machine: moto stands in for S3 and
serialises its requests, and everything shares the same cores, so the numbers compare the
clients on one stand-in; they do not predict throughput to AWS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import DOCS, ROOT, report
from tests import servers
from tests.images import generated_layout

MB = 1000 * 1000
OUTPUT = DOCS / "bench-push.md"


def make_layout(path: Path, total: int, layers: int) -> Path:
    """An OCI layout of `layers` uncompressible layers, `total` bytes in all."""
    return generated_layout(path, [total // layers] * layers)[0]


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]}: {done.stderr}")
    return time.monotonic() - started


def stratus_push(layout: Path, host: str, repository: str, jobs: int, state: Path) -> float:
    command = [str(ROOT / "bin" / "stratus"), "push", "--plain-http", "--quiet"]
    command += ["--jobs", str(jobs), f"oci:{layout}:v1", f"{host}/{repository}:v1"]
    return timed(command, {"STRATUS_PUSH_STATE": str(state)})


def skopeo_copy(layout: Path, host: str, repository: str) -> float:
    return timed(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            f"docker://{host}/{repository}:v1",
        ]
    )


def measure(megabytes: int = 512, layers: int = 4) -> dict[str, Any]:
    """{"megabytes", "layers", "rows": [[client, registry, MB/s]]}."""
    total = megabytes * MB
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-push-") as scratch:
        work = Path(scratch)
        layout = make_layout(work / "layout", total, layers)
        limited = servers.start_stratus(work, "limited", {"STRATUS_MAX_REQUEST_BYTES": "4500000"})
        try:
            for jobs in (1, 4, 8):
                state = work / f"state-{jobs}"  # its own: no resumes, no mounts from others
                seconds = stratus_push(layout, limited.host, f"bench/jobs{jobs}", jobs, state)
                rows.append(
                    (f"`stratus push --jobs {jobs}`", "body limit 4.5 MB", total / MB / seconds)
                )
                print(rows[-1], flush=True)
        finally:
            limited.stop()
        if shutil.which("skopeo"):
            registry = servers.start_stratus(work, "open")
            try:
                seconds = skopeo_copy(layout, registry.host, "bench/skopeo")
                rows.append(("`skopeo copy` (reference)", "no body limit", total / MB / seconds))
                print(rows[-1], flush=True)
            finally:
                registry.stop()
    return {"megabytes": megabytes, "layers": layers, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=None, help="the image (512)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a 128 MB image")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    data = measure(args.megabytes or (128 if args.quick else 512), args.layers)
    args.output.write_text(report.push_report(data))
    print(f"wrote {args.output}")
