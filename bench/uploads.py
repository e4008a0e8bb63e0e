"""Upload benchmark: AWS calls per GB for chunked and direct pushes, and the throughput of
the resumable SHA-256. Writes docs/bench-uploads.md (generated: do not edit by hand).

    .venv/bin/python bench/uploads.py [--megabytes 256]

Calls are counted at botocore's `_make_api_call`, so every DynamoDB and S3 request the
registry makes is seen, for one blob of the given size (1 GiB by default). The registry
runs in process on moto; wall times on moto say nothing about AWS and are not reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for key, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(key, value)
os.environ.pop("AWS_ENDPOINT_URL", None)

MIB = 1024 * 1024
GIB = 1024 * MIB


class CallCounter:
    """Counts (service, operation) for every botocore API call while active."""

    def __init__(self) -> None:
        import botocore.client

        self.calls: Counter[str] = Counter()
        self._client = botocore.client.BaseClient
        self._original = self._client._make_api_call

    def __enter__(self) -> CallCounter:
        original, calls = self._original, self.calls

        def counted(client, operation, params):
            calls[f"{client.meta.service_model.service_name}:{operation}"] += 1
            return original(client, operation, params)

        self._client._make_api_call = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self._client._make_api_call = self._original


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
    return Counter({"s3:UploadPart (client, presigned)": len(parts)})


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


def table(calls: Counter[str]) -> list[str]:
    rows = ["| call | count |", "|---|---:|"]
    rows += [f"| {name} | {count} |" for name, count in sorted(calls.items())]
    rows.append(f"| **total** | **{sum(calls.values())}** |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args()
    size = args.megabytes * MIB
    data = os.urandom(size)

    from moto import mock_aws

    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        from app import app
        from tests.client import Client

        client = Client(app)
        results = {}
        for label, chunk in (
            ("chunked, 4.5 MB chunks (an AWS stage)", 4_500_000),
            ("chunked, 16 MiB chunks (oras default, local)", 16 * MIB),
        ):
            with CallCounter() as counter:
                chunked_push(client, data, chunk)
            results[label] = counter.calls
        with CallCounter() as counter:
            client_calls = direct_push(client, data, 64 * MIB)
        results["direct, 64 MiB parts (`stratus push`)"] = counter.calls + client_calls

    resumable, plain = hash_throughput(min(args.megabytes, 512))
    lines = [
        "# Upload benchmark",
        "",
        "Generated by `bench/uploads.py`; do not edit by hand.",
        f"AWS calls to push one blob of {args.megabytes} MiB, counted at botocore, with the "
        "registry in process on moto.",
        "",
    ]
    for label, calls in results.items():
        lines += [f"## {label}", "", *table(calls), ""]
    lines += [
        "## Resumable SHA-256",
        "",
        "| hash | MB/s |",
        "|---|---:|",
        f"| `ResumableHash`, state saved and restored every 4 MiB | {resumable:,.0f} |",
        f"| `hashlib.sha256`, one pass | {plain:,.0f} |",
        "",
        "Direct uploads verify the digest by reading the blob back from S3: one GetObject per "
        "blob, streamed through the registry at S3's throughput, plus the hashing above. "
        "S3-to-Lambda throughput is not measured here (no AWS account); the hashing part costs "
        f"{GIB / (plain * 1e6):.2f} s per GiB on this machine.",
        "",
    ]
    out = ROOT / "docs" / "bench-uploads.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
