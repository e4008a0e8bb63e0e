"""A `docker save` tar that can only be read front to back (the Docker engine's export, a
gzipped archive), pushed without a temporary copy by reading it twice.

The first pass learns what the push must declare before sending anything: the manifest
(`manifest.json` comes last), and each layer's digest and size as pushed (gzip-compressed on
the fly when stored uncompressed). The second pass pushes the blobs in the order the tar
holds them, each read as it streams by; the pusher checks every byte against the first
pass's digest, so an image that changed in between is refused, not pushed wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from .sources import Blob, Source, SourceError, docker_entry, docker_source
from .streams import GZIP_LEVEL, READ_SIZE, Gzipped

SMALL = 4 * 1024 * 1024  # members kept in memory by the first pass (json, configs)


@dataclass
class _Member:
    """What the first pass learned of one file in the tar."""

    gzipped: bool
    digest: str  # of the bytes as pushed: as stored if gzipped, else compressed on the fly
    size: int
    body: bytes | None  # small files only


def _measure(stream: IO[bytes], keep: bool) -> _Member:
    """Digest and size as pushed, without storing the (possibly large) member."""
    first = stream.read(READ_SIZE)
    gzipped = first[:2] == b"\x1f\x8b"
    hasher, size = hashlib.sha256(), 0
    compressor = None if gzipped else zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    kept = bytearray() if keep else None
    chunk = first
    while chunk:
        if kept is not None:
            kept += chunk
        out = chunk if compressor is None else compressor.compress(chunk)
        hasher.update(out)
        size += len(out)
        chunk = stream.read(READ_SIZE)
    if compressor is not None:
        tail = compressor.flush()
        hasher.update(tail)
        size += len(tail)
    body = bytes(kept) if kept is not None else None
    return _Member(gzipped, "sha256:" + hasher.hexdigest(), size, body)


def survey(opener: Callable[[], BinaryIO], where: str) -> tuple[dict[str, _Member], dict[str, str]]:
    """Pass one: every file's measure, and every symlink's target."""
    members: dict[str, _Member] = {}
    links: dict[str, str] = {}
    with opener() as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r|") as archive:
                for info in archive:
                    name = info.name.removeprefix("./")
                    if info.issym():
                        links[name] = posixpath.normpath(
                            posixpath.join(posixpath.dirname(name), info.linkname)
                        )
                    elif info.isfile():
                        stream = archive.extractfile(info)
                        assert stream is not None
                        members[name] = _measure(stream, info.size <= SMALL)
        except tarfile.TarError as error:
            raise SourceError(f"{where}: not a docker save tar ({error})") from error
    return members, links


class _Replay:
    """Pass two: hands out members as the tar streams by, in the order the pusher asks."""

    def __init__(self, opener: Callable[[], BinaryIO], where: str) -> None:
        self._opener, self._where = opener, where
        self._archive: tarfile.TarFile | None = None
        self._lock = threading.Lock()

    def open(self, name: str) -> BinaryIO:
        with self._lock:
            if self._archive is None:
                # Open for the whole push: members are handed out as it streams by.
                self._archive = tarfile.open(fileobj=self._opener(), mode="r|")  # noqa: SIM115
            for info in self._archive:
                if info.name.removeprefix("./") == name:
                    stream = self._archive.extractfile(info)
                    assert stream is not None
                    return cast(BinaryIO, stream)
        raise SourceError(f"{self._where}: {name} missing on the second read (did it change?)")


def read_docker_stream(opener: Callable[[], BinaryIO], image: str | None, where: str) -> Source:
    """A streamed `docker save` tar as a Source whose blobs must be read in `blobs` order."""
    members, links = survey(opener, where)

    def resolve(name: str) -> str:
        for _ in range(8):
            name = links.get(name, name)
        if name not in members:
            raise SourceError(f"{where}: no {name} in the tar")
        return name

    manifest = members.get("manifest.json")
    if manifest is None or manifest.body is None:
        raise SourceError(f"{where}: no manifest.json (not a docker save tar)")
    entry = docker_entry(json.loads(manifest.body), image, where)
    config = members[resolve(entry["Config"])]
    if config.body is None:
        raise SourceError(f"{where}: config {entry['Config']} too large")
    config_body = config.body
    config_digest = "sha256:" + hashlib.sha256(config_body).hexdigest()
    config_blob = Blob(config_digest, len(config_body), lambda: io.BytesIO(config_body))
    replay = _Replay(opener, where)
    order = {name: index for index, name in enumerate(members)}
    layers = []
    for name in sorted({resolve(n) for n in entry["Layers"]}, key=order.__getitem__):
        layers.append(_layer_blob(replay, name, members[name]))
    by_digest = {layer.digest: layer for layer in layers}
    wanted = [by_digest[members[resolve(n)].digest] for n in entry["Layers"]]
    source = docker_source(config_blob, config_body, wanted)
    # The pusher must read the layers in tar order, one at a time.
    source.blobs = {config_digest: config_blob, **{layer.digest: layer for layer in layers}}
    source.sequential = True
    return source


def _layer_blob(replay: _Replay, name: str, member: _Member) -> Blob:
    if member.gzipped:
        return Blob(member.digest, member.size, lambda: replay.open(name))
    return Blob(member.digest, member.size, lambda: cast(BinaryIO, Gzipped(replay.open(name))))
