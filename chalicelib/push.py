"""`stratus push`: push an OCI image layout or a skopeo `dir:` directory to a registry.

    stratus push [--plain-http] SOURCE HOST[:PORT]/REPOSITORY:TAG

Layers go straight to S3 through the registry's `_stratus` direct-upload extension when it
has one (discovered at `/v2/<name>/_oci/ext/discover`), so their size is not bound by the
request limit of API Gateway and Lambda. Against any other registry it falls back to the
standard chunked upload (POST, PATCH..., PUT), in chunks the registry accepts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
DEFAULT_CHUNK = 16 * 1024 * 1024


@dataclass
class Manifest:
    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.body).hexdigest()


@dataclass
class Source:
    """What to push: blobs by digest, child manifests (by digest), and the tagged manifest."""

    blobs: dict[str, Path]
    children: list[Manifest]
    top: Manifest


def _media_type(body: bytes, default: str) -> str:
    return json.loads(body).get("mediaType") or default


def read_source(path: Path) -> Source:
    if (path / "oci-layout").exists():
        return _read_oci_layout(path)
    if (path / "manifest.json").exists():
        body = (path / "manifest.json").read_bytes()
        top = Manifest(body, _media_type(body, "application/vnd.oci.image.manifest.v1+json"))
        blobs = {f"sha256:{p.name}": p for p in path.iterdir() if len(p.name) == 64}
        return Source(blobs, [], top)
    raise SystemExit(f"{path}: neither an OCI image layout nor a skopeo dir: directory")


def _read_oci_layout(path: Path) -> Source:
    def blob(digest: str) -> Path:
        algorithm, encoded = digest.split(":", 1)
        return path / "blobs" / algorithm / encoded

    entry = json.loads((path / "index.json").read_text())["manifests"][0]
    top = Manifest(blob(entry["digest"]).read_bytes(), entry["mediaType"])
    children: list[Manifest] = []
    images = [top]
    if top.media_type in INDEX_TYPES:
        children = [
            Manifest(blob(d["digest"]).read_bytes(), d["mediaType"])
            for d in json.loads(top.body)["manifests"]
        ]
        images = children
    blobs: dict[str, Path] = {}
    for image in images:
        doc = json.loads(image.body)
        for descriptor in [doc.get("config"), *doc.get("layers", [])]:
            if descriptor:
                blobs[descriptor["digest"]] = blob(descriptor["digest"])
    return Source(blobs, children, top)


class Progress:
    """One line per blob on stderr: a bar, the percentage and the rate."""

    def __init__(self, label: str, total: int, quiet: bool) -> None:
        self.label, self.total, self.quiet = label, max(total, 1), quiet
        self.done = 0
        self.started = time.monotonic()

    def advance(self, amount: int) -> None:
        self.done += amount
        if self.quiet:
            return
        fraction = min(self.done / self.total, 1.0)
        rate = self.done / max(time.monotonic() - self.started, 1e-6) / 1e6
        bar = "#" * int(fraction * 30)
        sys.stderr.write(f"\r{self.label[:19]} [{bar:<30}] {fraction:6.1%} {rate:8.1f} MB/s")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Pusher:
    def __init__(self, base: str, repository: str, *, quiet: bool = False, workers: int = 4):
        self.base, self.repository = base.rstrip("/"), repository
        self.quiet, self.workers = quiet, workers
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def _check(self, answer: requests.Response, *expected: int) -> requests.Response:
        if answer.status_code not in expected:
            raise SystemExit(
                f"{answer.request.method} {answer.url}: {answer.status_code} {answer.text}"
            )
        return answer

    def has_direct_uploads(self) -> bool:
        answer = self.http.get(self.url(f"/v2/{self.repository}/_oci/ext/discover"), timeout=30)
        if answer.status_code != 200:
            return False
        names = {e.get("name") for e in answer.json().get("extensions", [])}
        return "_stratus" in names

    def has_blob(self, digest: str) -> bool:
        answer = self.http.head(self.url(f"/v2/{self.repository}/blobs/{digest}"), timeout=30)
        return answer.status_code == 200

    def push_direct(self, digest: str, path: Path) -> None:
        size = path.stat().st_size
        started = self._check(
            self.http.post(
                self.url(f"/v2/{self.repository}/_stratus/direct/uploads/"),
                params={"size": size},
                timeout=60,
            ),
            201,
        ).json()
        location, part_size, count = (
            started["location"],
            started["part_size"],
            started["part_count"],
        )
        progress = Progress(digest, size, self.quiet)
        urls: list[dict[str, Any]] = []
        for first in range(1, count + 1, 1000):
            last = min(first + 999, count)
            page = self.http.get(
                self.url(location), params={"parts": f"{first}-{last}"}, timeout=60
            )
            urls += self._check(page, 200).json()["parts"]

        def send(part: dict[str, Any]) -> dict[str, Any]:
            with path.open("rb") as handle:
                handle.seek((part["number"] - 1) * part_size)
                data = handle.read(part_size)
            answer = self._check(requests.put(part["url"], data=data, timeout=600), 200)
            progress.advance(len(data))
            return {"number": part["number"], "etag": answer.headers["ETag"]}

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            parts = sorted(pool.map(send, urls), key=lambda p: p["number"])
        if size == 0:
            progress.advance(0)
        done = self.http.put(
            self.url(location), params={"digest": digest}, json={"parts": parts}, timeout=900
        )
        while done.status_code == 202:  # a large blob: the registry verifies it meanwhile
            time.sleep(float(done.headers.get("Retry-After") or 2))
            done = self.http.get(self.url(location), timeout=60)
        self._check(done, 201)

    def push_chunked(self, digest: str, path: Path, chunk_size: int | None) -> None:
        size = path.stat().st_size
        started = self._check(
            self.http.post(self.url(f"/v2/{self.repository}/blobs/uploads/"), timeout=60), 202
        )
        chunk = chunk_size or int(started.headers.get("OCI-Chunk-Max-Length") or DEFAULT_CHUNK)
        location = started.headers["Location"]
        progress = Progress(digest, size, self.quiet)
        offset = 0
        with path.open("rb") as handle:
            while data := handle.read(chunk):
                answer = self.http.patch(
                    self.url(location),
                    data=data,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(data) - 1}",
                    },
                    timeout=600,
                )
                location = self._check(answer, 202).headers["Location"]
                offset += len(data)
                progress.advance(len(data))
        separator = "&" if "?" in location else "?"
        self._check(
            self.http.put(self.url(f"{location}{separator}digest={digest}"), timeout=600), 201
        )

    def put_manifest(self, reference: str, manifest: Manifest) -> None:
        answer = self.http.put(
            self.url(f"/v2/{self.repository}/manifests/{reference}"),
            data=manifest.body,
            headers={"Content-Type": manifest.media_type},
            timeout=60,
        )
        self._check(answer, 201)


def push(source: Source, pusher: Pusher, tag: str, chunk_size: int | None = None) -> str:
    """Push every blob not already there, the child manifests, then the tagged manifest."""
    direct = pusher.has_direct_uploads()
    for digest, path in source.blobs.items():
        if pusher.has_blob(digest):
            continue
        if direct:
            pusher.push_direct(digest, path)
        else:
            pusher.push_chunked(digest, path, chunk_size)
    for child in source.children:
        pusher.put_manifest(child.digest, child)
    pusher.put_manifest(tag, source.top)
    return source.top.digest


def _split_destination(destination: str, plain_http: bool) -> tuple[str, str, str]:
    scheme = "http" if plain_http else "https"
    if "://" in destination:
        scheme, destination = destination.split("://", 1)
    host, _, rest = destination.partition("/")
    repository, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "latest")
    return f"{scheme}://{host}", repository, tag or "latest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stratus push", description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="an OCI image layout or a skopeo dir: directory")
    parser.add_argument("destination", help="HOST[:PORT]/REPOSITORY[:TAG]")
    parser.add_argument("--plain-http", action="store_true", help="http, not https")
    parser.add_argument("--chunk-size", type=int, help="chunk size for the fallback upload")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    base, repository, tag = _split_destination(args.destination, args.plain_http)
    digest = push(
        read_source(args.source), Pusher(base, repository, quiet=args.quiet), tag, args.chunk_size
    )
    print(f"pushed {repository}:{tag} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
