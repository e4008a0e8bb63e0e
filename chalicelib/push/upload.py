"""Getting blobs and manifests into the registry.

Per blob: skipped when the registry has it (HEAD), mounted when this machine pushed it to
another repository of the same registry (and the registry agrees), else uploaded: through
the `_stratus` direct-upload extension when the registry has one (parts in parallel, straight
to S3, resumable), or the standard way otherwise (one PUT for a blob that fits in a chunk,
else chunked PATCHes). Every byte read from the source is hashed, and a blob that does not
match the digest the source declared is never completed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

import requests

from .progress import Progress
from .sources import Blob, Manifest, Source, SourceError
from .state import Store, Upload
from .streams import read_exactly
from .transport import Client, PushError, describe, send

DEFAULT_PART = 16 * 1024 * 1024
DEFAULT_CHUNK = 16 * 1024 * 1024
URLS_PER_CALL = 1000


class _Digesting:
    """Hashes what is read from a blob's stream, to check it against the declared digest."""

    def __init__(self, blob: Blob, stream: BinaryIO) -> None:
        self.blob, self.stream = blob, stream
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, size: int) -> bytes:
        data = read_exactly(self.stream, size)
        self.hasher.update(data)
        self.size += len(data)
        return data

    def verify(self) -> None:
        if self.stream.read(1):
            self.size += 1
        digest = "sha256:" + self.hasher.hexdigest()
        if digest != self.blob.digest or self.size != self.blob.size:
            raise SourceError(
                f"source blob {self.blob.digest} ({self.blob.size} B) reads as {digest}"
                f" ({self.size} B): the source changed or is corrupt; nothing was completed"
            )


class Pusher:
    """Pushes a Source's blobs and manifests with `jobs` parts (or blobs) in flight."""

    def __init__(
        self,
        client: Client,
        progress: Progress,
        store: Store | None = None,
        *,
        jobs: int = 4,
        part_size: int = DEFAULT_PART,
        chunk_size: int | None = None,
        direct: bool | None = None,
    ) -> None:
        self.client, self.progress, self.store = client, progress, store or Store()
        self.jobs, self.part_size, self.chunk_size = jobs, part_size, chunk_size
        self.direct = direct
        self._parts = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="part")
        self._buffered = threading.BoundedSemaphore(2 * jobs)  # parts held in memory at once

    # -- the whole image ------------------------------------------------------------------

    def push(self, source: Source, tag: str) -> str:
        """Every blob the registry lacks, then child manifests, then the tagged manifest."""
        if self.direct is None:
            self.direct = self.has_direct_uploads()
        for blob in source.blobs.values():
            self.progress.add(blob.digest, blob.size)
        ordered = sorted(source.blobs.values(), key=lambda b: b.size)
        blob_jobs = self.jobs
        if source.sequential:  # a stream: one blob after another, in the stream's order
            ordered, blob_jobs = list(source.blobs.values()), 1
        try:
            with ThreadPoolExecutor(max_workers=blob_jobs, thread_name_prefix="blob") as pool:
                futures = [pool.submit(self.push_blob, blob) for blob in ordered]
                try:
                    for done in futures:
                        done.result()
                except BaseException:
                    for future in futures:  # fail fast: start no other blob
                        future.cancel()
                    raise
        finally:
            self._parts.shutdown(wait=True, cancel_futures=True)
        self.store.remember(self.client.base, self.client.repository, list(source.blobs))
        for child in source.children:
            self.put_manifest(child.digest, child)
        self.put_manifest(tag, source.top)
        return source.top.digest

    def has_direct_uploads(self) -> bool:
        path = f"/v2/{self.client.repository}/_oci/ext/discover"
        answer = self.client.request("GET", path, timeout=30)
        if answer.status_code != 200:
            return False
        try:
            names = {e.get("name") for e in answer.json().get("extensions", [])}
        except (ValueError, AttributeError):
            return False
        return "_stratus" in names

    def put_manifest(self, reference: str, manifest: Manifest) -> None:
        self.client.request(
            "PUT",
            f"/v2/{self.client.repository}/manifests/{reference}",
            201,
            data=manifest.body,
            headers={"Content-Type": manifest.media_type},
            timeout=60,
        )

    # -- one blob -------------------------------------------------------------------------

    def push_blob(self, blob: Blob) -> None:
        if self.has_blob(blob.digest):
            self._drop_kept(blob)
            self.progress.finish(blob.digest, "exists")
            return
        if self.mount(blob.digest):
            self._drop_kept(blob)
            self.progress.finish(blob.digest, "mounted")
            return
        if self.direct:
            self.push_direct(blob)
        else:
            self.push_standard(blob)
        self.progress.finish(blob.digest, "pushed")

    def _drop_kept(self, blob: Blob) -> None:
        """Forget an upload an earlier run left, now that the blob is in (an interrupted run
        may have completed it, or been killed while the registry verified it)."""
        base, repository = self.client.base, self.client.repository
        kept = self.store.load(base, repository, blob.digest)
        if kept is None:
            return
        self.store.forget(base, repository, blob.digest)

    def has_blob(self, digest: str) -> bool:
        path = f"/v2/{self.client.repository}/blobs/{digest}"
        return self.client.request("HEAD", path, timeout=30).status_code == 200

    def mount(self, digest: str) -> bool:
        """Mount the blob from the repository this machine last pushed it to, if any."""
        origin = self.store.pushed_to(self.client.base, digest)
        if origin is None or origin == self.client.repository:
            return False
        self.client.add_pull_scope(origin)
        path = f"/v2/{self.client.repository}/blobs/uploads/"
        answer = self.client.request("POST", path, params={"mount": digest, "from": origin})
        if answer.status_code == 201:
            return True
        if answer.status_code == 202 and "Location" in answer.headers:
            self.client.request("DELETE", answer.headers["Location"])  # an ordinary session
        return False

    # -- the _stratus direct-upload extension ---------------------------------------------

    def push_direct(self, blob: Blob) -> None:
        """Parts straight to S3, `jobs` at a time; finished parts are recorded, so a rerun
        after an interruption sends only the rest."""
        upload = self._resume_or_start(blob)
        if upload is None:
            return  # an earlier run's completion, which the registry finished meanwhile
        pending = [n for n in range(1, upload.part_count + 1) if n not in upload.etags]
        urls = self._part_urls(upload.location, pending)
        futures: list[Future[None]] = []
        with blob.open() as raw:
            stream = _Digesting(blob, raw)
            for number in range(1, upload.part_count + 1):
                data = stream.read(upload.part_size)
                if number in upload.etags:
                    self.progress.advance(blob.digest, len(data), sent=False)
                    continue
                self._buffered.acquire()
                futures.append(
                    self._parts.submit(self._send_part, blob, upload, number, urls[number], data)
                )
                if any(f.done() and f.exception() for f in futures):
                    break
            for future in futures:
                future.result()
            try:
                stream.verify()
            except SourceError:
                self._abandon(blob, upload)  # its parts hold the wrong bytes
                raise
        self.progress.mark(blob.digest, "verifying")
        self._complete(blob, upload)

    def _abandon(self, blob: Blob, upload: Upload) -> None:
        self.store.forget(self.client.base, self.client.repository, blob.digest)
        self.client.request("DELETE", upload.location, timeout=60)

    def _resume_or_start(self, blob: Blob) -> Upload | None:
        """The kept upload to continue, a new one, or None when the kept one turns out to
        have been completed (its run was killed while the registry verified the blob)."""
        base, repository = self.client.base, self.client.repository
        kept = self.store.load(base, repository, blob.digest)
        if kept and kept.kind == "direct" and kept.size == blob.size:
            status = self.client.request("GET", kept.location, params={"parts": "1-1"}, timeout=60)
            if status.status_code == 200:
                self.progress.note(f"{blob.digest}: resuming, {len(kept.etags)} parts sent")
                return kept
            if status.status_code in (201, 202):
                self._await_verification(blob, kept, status)
                return None
        started = self.client.request(
            "POST",
            f"/v2/{repository}/_stratus/direct/uploads/",
            201,
            params={"size": blob.size, "part_size": self.part_size},
            timeout=60,
        ).json()
        upload = Upload(started["location"], started["part_size"], started["part_count"], blob.size)
        self.store.save(base, repository, blob.digest, upload)
        return upload

    def _part_urls(self, location: str, numbers: list[int]) -> dict[int, str]:
        urls: dict[int, str] = {}
        if not numbers:
            return urls
        for first in range(min(numbers), max(numbers) + 1, URLS_PER_CALL):
            last = min(first + URLS_PER_CALL - 1, max(numbers))
            page = self.client.request(
                "GET", location, 200, params={"parts": f"{first}-{last}"}, timeout=60
            )
            urls.update({p["number"]: p["url"] for p in page.json()["parts"]})
        return urls

    def _send_part(self, blob: Blob, upload: Upload, number: int, url: str, data: bytes) -> None:
        try:
            answer = self._put_part(url, data)
            if answer.status_code == 403:  # the presigned URL expired: ask for a fresh one
                url = self._part_urls(upload.location, [number])[number]
                answer = self._put_part(url, data)
            if answer.status_code != 200:
                raise PushError(f"part {number} of {blob.digest}: {describe(answer)}")
            upload.etags[number] = answer.headers["ETag"]
            self.store.save(self.client.base, self.client.repository, blob.digest, upload)
            self.progress.advance(blob.digest, len(data))
        finally:
            self._buffered.release()

    def _put_part(self, url: str, data: bytes) -> requests.Response:
        """One part to S3; S3's `400 RequestTimeout` (a stalled upload) is retried too."""
        delays = self.client.backoff.delays()
        while True:
            answer = send(self.client.s3, self.client.backoff, "PUT", url, data=data, timeout=600)
            delay = next(delays, None)
            if answer.status_code != 400 or b"RequestTimeout" not in answer.content or not delay:
                return answer
            time.sleep(delay)

    def _complete(self, blob: Blob, upload: Upload) -> None:
        parts = [{"number": n, "etag": upload.etags[n]} for n in sorted(upload.etags)]
        done = self.client.request(
            "PUT", upload.location, params={"digest": blob.digest}, json={"parts": parts}
        )
        if done.status_code not in (201, 202):
            # A retried PUT whose first try went through (a 504 while the function ran on)
            # finds the upload completed: its location tells how that ended.
            status = self.client.request("GET", upload.location, timeout=60)
            done = status if status.status_code in (201, 202) else done
        self._await_verification(blob, upload, done)

    def _await_verification(self, blob: Blob, upload: Upload, done: requests.Response) -> None:
        """Poll while the registry verifies a large blob (202), then forget the upload."""
        while done.status_code == 202:
            time.sleep(float(done.headers.get("Retry-After") or 2))
            done = self.client.request("GET", upload.location, timeout=60)
        self.store.forget(self.client.base, self.client.repository, blob.digest)
        if done.status_code != 201 and not self.has_blob(blob.digest):
            raise PushError(describe(done))

    # -- the standard upload API ----------------------------------------------------------

    def push_standard(self, blob: Blob) -> None:
        """Monolithic (POST, then PUT with the bytes) when the blob fits in one chunk, else
        chunked (POST, PATCH..., PUT), in chunks the registry says it accepts. A chunked
        upload interrupted earlier continues from the offset the registry reports."""
        upload = self._chunked_session(blob)
        with blob.open() as raw:
            stream = _Digesting(blob, raw)
            if blob.size <= upload.part_size and upload.offset == 0:
                data = stream.read(upload.part_size)
                stream.verify()
                self._close(upload.location, blob, data)
                return
            skipped = 0
            while skipped < upload.offset:  # hashed again, not sent again
                skipped += len(stream.read(min(upload.part_size, upload.offset - skipped)))
            self.progress.advance(blob.digest, skipped, sent=False)
            while data := stream.read(upload.part_size):
                upload.location = self._patch(upload.location, upload.offset, data)
                upload.offset += len(data)
                self.store.save(self.client.base, self.client.repository, blob.digest, upload)
                self.progress.advance(blob.digest, len(data))
            stream.verify()
        self._close(upload.location, blob, b"")
        self.store.forget(self.client.base, self.client.repository, blob.digest)

    def _chunked_session(self, blob: Blob) -> Upload:
        """The kept chunked session, if the registry still has it, else a new one."""
        base, repository = self.client.base, self.client.repository
        kept = self.store.load(base, repository, blob.digest)
        if kept and kept.kind == "chunked" and kept.size == blob.size:
            answer = self.client.request("GET", kept.location, timeout=60)
            if answer.status_code == 204 and "Range" in answer.headers:
                last = int(answer.headers["Range"].rpartition("-")[2])
                # "0-0" is what registries say for no bytes as well as for one.
                kept.offset = 0 if last == 0 and kept.offset == 0 else last + 1
                kept.location = answer.headers.get("Location", kept.location)
                self.progress.note(f"{blob.digest}: resuming at byte {kept.offset}")
                return kept
        started = self.client.request("POST", f"/v2/{repository}/blobs/uploads/", 202, timeout=60)
        limit = started.headers.get("OCI-Chunk-Max-Length")
        chunk = self.chunk_size or min(int(limit or DEFAULT_CHUNK), DEFAULT_CHUNK)
        upload = Upload(started.headers["Location"], chunk, 0, blob.size, kind="chunked")
        if blob.size > chunk:
            self.store.save(base, repository, blob.digest, upload)
        return upload

    def _patch(self, location: str, offset: int, data: bytes) -> str:
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        }
        answer = self.client.request("PATCH", location, data=data, headers=headers)
        if answer.status_code == 416 and self._acked(location) == offset + len(data):
            return location  # a retried chunk whose first try went through
        if answer.status_code != 202:
            raise PushError(describe(answer))
        return str(answer.headers["Location"])

    def _acked(self, location: str) -> int | None:
        """The bytes the registry holds for an upload session (its `Range`), if it says."""
        answer = self.client.request("GET", location, timeout=60)
        last = answer.headers.get("Range", "").rpartition("-")[2]
        return int(last) + 1 if answer.status_code == 204 and last.isdigit() else None

    def _close(self, location: str, blob: Blob, data: bytes) -> None:
        separator = "&" if "?" in location else "?"
        headers: dict[str, Any] = {"Content-Type": "application/octet-stream"}
        self.client.request(
            "PUT", f"{location}{separator}digest={blob.digest}", 201, data=data, headers=headers
        )
