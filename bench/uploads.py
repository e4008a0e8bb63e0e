"""Upload benchmark: AWS calls per GB for chunked and direct pushes, and the throughput of
the resumable SHA-256. Writes docs/bench-uploads.md (generated: do not edit by hand).

    python -m bench uploads [--quick] [-- --megabytes 256]

Calls are counted at botocore (bench/calls.py), so every DynamoDB and S3 request the
registry makes is seen, for one blob of the given size (1 GiB by default). The registry
runs in process on moto; wall times on moto say nothing about AWS and are not reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections import Counter
from typing import Any

from bench import DOCS, calls, report

MIB = 1024 * 1024
GIB = 1024 * MIB


def chunked_push(client, data: bytes, chunk: int) -> None:
    from tests.images import sha256

    location = client.post("/v2/bench/chunked/blobs/uploads/").header("Location")
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        answer = client.patch(
            location,
            body=piece,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
            },
        )
        assert answer.status == 202, answer.body
        location = answer.header("Location")
    assert client.put(f"{location}?digest={sha256(data)}").status == 201


def direct_push(client, data: bytes, part_size: int) -> Counter[str]:
    """Returns the client's own S3 part PUTs, counted apart: they bypass the registry."""
    import requests

    from tests.images import sha256

    session = client.post(
        f"/v2/bench/direct/_stratus/direct/uploads/?size={len(data)}&part_size={part_size}"
    ).json()
    urls = client.get(f"{session['location']}?parts=1-{session['part_count']}").json()["parts"]
    parts = []
    for part in urls:
        begin = (part["number"] - 1) * session["part_size"]
        answer = requests.put(part["url"], data=data[begin : begin + session["part_size"]])
        parts.append({"number": part["number"], "etag": answer.headers["ETag"]})
    done = client.put(
        f"{session['location']}?digest={sha256(data)}", body=json.dumps({"parts": parts}).encode()
    )
    assert done.status == 201, done.body
    return Counter({"s3.UploadPart (client, presigned)": len(parts)})


def hash_throughput(megabytes: int) -> tuple[float, float]:
    from chalicelib.registry.digests import ResumableHash

    data = os.urandom(megabytes * MIB)
    start = time.perf_counter()
    state = ResumableHash().state()
    for offset in range(0, len(data), 4 * MIB):  # state saved and restored per chunk
        hasher = ResumableHash.from_state("sha256", state)
        hasher.update(data[offset : offset + 4 * MIB])
        state = hasher.state()
    resumable = len(data) / (time.perf_counter() - start) / 1e6
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    plain = len(data) / (time.perf_counter() - start) / 1e6
    return resumable, plain


def measure(megabytes: int = 1024) -> dict[str, Any]:
    """{"megabytes": n, "pushes": {how: {call: count}}, "hash_mb_s": {"resumable", "plain"}}."""
    import dataclasses

    from chalicelib import config

    data = os.urandom(megabytes * MIB)
    # The direct push's digest check within its request, counted with it (a stage checks
    # blobs over STRATUS_SYNC_VERIFY_BYTES in its verify_upload function: the same calls).
    saved = config.settings
    config.settings = dataclasses.replace(saved, sync_verify_bytes=len(data))
    try:
        pushes = _push_all(data)
    finally:
        config.settings = saved
    resumable, plain = hash_throughput(min(megabytes, 512))
    return {
        "megabytes": megabytes,
        "pushes": pushes,
        "hash_mb_s": {"resumable": resumable, "plain": plain},
    }


def _push_all(data: bytes) -> dict[str, dict[str, int]]:
    """Each way of pushing `data`, with the calls it made."""
    from moto import mock_aws

    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        from app import app
        from tests.client import Client

        client = Client(app)
        pushes: dict[str, dict[str, int]] = {}
        for label, chunk in (
            ("chunked, 4.5 MB chunks (an AWS stage)", 4_500_000),
            ("chunked, 16 MiB chunks (oras default, local)", 16 * MIB),
        ):
            before = calls.snapshot()
            chunked_push(client, data, chunk)
            pushes[label] = calls.since(before).detail
        before = calls.snapshot()
        client_calls = direct_push(client, data, 64 * MIB)
        pushes["direct, 64 MiB parts (`stratus push`)"] = {
            **calls.since(before).detail,
            **client_calls,
        }
    return pushes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=None, help="the blob (1024)")
    parser.add_argument("--quick", action="store_true", help="a 256 MiB blob")
    args = parser.parse_args()
    text = report.uploads_report(measure(args.megabytes or (256 if args.quick else 1024)))
    (DOCS / "bench-uploads.md").write_text(text)
    print(text)
