"""Image sources, named as skopeo names them, read in place wherever the format allows.

| source | how it is read |
|---|---|
| `oci:DIR[:TAG]`, `dir:DIR` | blob files, read in place |
| `oci-archive:FILE.tar` | blobs read in place inside the (uncompressed) tar |
| `docker-archive:FILE.tar[:IMAGE]` | layers read in place inside the tar; uncompressed layers
  gzip-compressed on the fly, twice (once for the digest, once to send): no copy. A gzipped
  tar (`docker save | gzip`) is streamed twice instead, as the engine's export is |
| `docker-daemon:IMAGE` | `GET /images/{name}/get` from the Docker Engine API, streamed twice:
  once to learn the manifest (it comes last) and every layer's digest and size (which a
  direct upload must declare first), once to push: no copy, at the cost of a second export |
| `containers-storage:IMAGE` | `skopeo copy ... docker-archive:/dev/stdout`, streamed twice
  like the engine's export (containers/storage keeps layers unpacked; skopeo packs them) |
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import posixpath
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from . import engine
from .streams import READ_SIZE, Gzipped, Window

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
REF_NAME = "org.opencontainers.image.ref.name"
TRANSPORTS = (
    "oci",
    "dir",
    "oci-archive",
    "docker-archive",
    "docker-daemon",
    "containers-storage",
)


class SourceError(Exception):
    """The source cannot be read as the image it names (exit code 3)."""


@dataclass(frozen=True)
class Blob:
    """A blob to push: its digest and size as the source declares them, and a way to read it
    from the first byte (as often as needed: resuming re-reads up to where it stopped)."""

    digest: str
    size: int
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.body).hexdigest()


@dataclass
class Source:
    """Blobs by digest, child manifests (of an index, pushed by digest), the tagged manifest."""

    blobs: dict[str, Blob]
    children: list[Manifest]
    top: Manifest
    notes: list[str] = field(default_factory=list)  # e.g. where a temporary copy was made
    sequential: bool = False  # blobs readable only one at a time, in `blobs` order


def split_reference(name: str) -> tuple[str, str]:
    """`oci:path/x:tag` -> ("oci", "path/x:tag"); a bare path is a layout or dir: directory."""
    transport, colon, rest = name.partition(":")
    if colon and transport in TRANSPORTS:
        return transport, rest
    return "path", name


def _path_and_tag(rest: str) -> tuple[Path, str | None]:
    """skopeo's `PATH[:REFERENCE]`: the part after the last colon, unless it holds a slash."""
    path, colon, tag = rest.rpartition(":")
    if colon and "/" not in tag and path:
        return Path(path), tag
    return Path(rest), None


def _file_blob(digest: str, path: Path) -> Blob:
    if not path.is_file():
        raise SourceError(f"blob {digest} missing: {path}")
    return Blob(digest, path.stat().st_size, lambda: cast(BinaryIO, path.open("rb")))


def _descriptor_digests(manifest: bytes) -> list[str]:
    doc = json.loads(manifest)
    return [d["digest"] for d in [doc.get("config"), *doc.get("layers", [])] if d]


def _from_blob_store(
    entry: dict[str, Any], blob: Callable[[str], Blob], read: Callable[[str], bytes]
) -> Source:
    """An image or index named by `entry`, with every blob it references, from a store of
    blobs by digest (an OCI layout on disk or inside a tar)."""
    top = Manifest(read(entry["digest"]), entry["mediaType"])
    children: list[Manifest] = []
    images = [top]
    if top.media_type in INDEX_TYPES:
        children = [
            Manifest(read(d["digest"]), d["mediaType"]) for d in json.loads(top.body)["manifests"]
        ]
        images = children
    blobs = {d: blob(d) for image in images for d in _descriptor_digests(image.body)}
    return Source(blobs, children, top)


def _pick(entries: list[dict[str, Any]], tag: str | None, where: str) -> dict[str, Any]:
    if tag is not None:
        named = [e for e in entries if e.get("annotations", {}).get(REF_NAME) == tag]
        if not named:
            raise SourceError(f"{where}: no image tagged {tag!r}")
        return named[0]
    if len(entries) != 1:
        tags = sorted(e.get("annotations", {}).get(REF_NAME, "?") for e in entries)
        raise SourceError(f"{where} holds {len(entries)} images; name one of {tags} as :TAG")
    return entries[0]


def read_oci_layout(path: Path, tag: str | None = None) -> Source:
    """An OCI image layout directory (skopeo `oci:`, `docker buildx --output type=oci`)."""

    def locate(digest: str) -> Path:
        algorithm, encoded = digest.split(":", 1)
        return path / "blobs" / algorithm / encoded

    if not (path / "index.json").is_file():
        raise SourceError(f"{path}: not an OCI image layout (no index.json)")
    entries = json.loads((path / "index.json").read_text())["manifests"]
    entry = _pick(entries, tag, str(path))
    return _from_blob_store(
        entry, lambda d: _file_blob(d, locate(d)), lambda d: _file_blob(d, locate(d)).open().read()
    )


def read_dir(path: Path) -> Source:
    """A skopeo `dir:` directory: manifest.json and blobs named by their hex digest."""
    if not (path / "manifest.json").is_file():
        raise SourceError(f"{path}: not a skopeo dir: directory (no manifest.json)")
    body = (path / "manifest.json").read_bytes()
    doc = json.loads(body)
    top = Manifest(body, doc.get("mediaType") or OCI_MANIFEST)
    if top.media_type in INDEX_TYPES:
        raise SourceError(f"{path}: a dir: holding an index; push each image, or use oci:")
    blobs = {d: _file_blob(d, path / d.split(":", 1)[1]) for d in _descriptor_digests(body)}
    return Source(blobs, [], top)


class _Tar:
    """An uncompressed tar read in place: members by name, as windows into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path, mode="r:") as archive:
                self.members = {
                    m.name.removeprefix("./"): m for m in archive if m.isfile() or m.issym()
                }
        except (tarfile.ReadError, OSError) as error:
            raise SourceError(f"{path}: not an uncompressed tar archive ({error})") from error

    def has(self, name: str) -> bool:
        return name in self.members

    def member(self, name: str) -> tarfile.TarInfo:
        """The file `name` names, following symlinks (skopeo links `<id>/layer.tar`)."""
        for _ in range(8):
            if name not in self.members:
                raise SourceError(f"{self.path}: no {name} in the archive")
            info = self.members[name]
            if not info.issym():
                return info
            name = posixpath.normpath(posixpath.join(posixpath.dirname(name), info.linkname))
        raise SourceError(f"{self.path}: symlinks loop at {name}")

    def open(self, name: str) -> BinaryIO:
        info = self.member(name)
        return cast(BinaryIO, Window(self.path, info.offset_data, info.size))

    def read(self, name: str) -> bytes:
        with self.open(name) as stream:
            return stream.read()

    def blob(self, name: str, digest: str) -> Blob:
        return Blob(digest, self.member(name).size, lambda: self.open(name))


def read_oci_archive(path: Path, tag: str | None = None) -> Source:
    """An OCI layout in a tar (skopeo `oci-archive:`, `podman save --format oci-archive`)."""
    archive = _Tar(path)

    def name(digest: str) -> str:
        return "blobs/" + digest.replace(":", "/", 1)

    index = json.loads(archive.read("index.json"))
    entry = _pick(index["manifests"], tag, str(path))
    return _from_blob_store(
        entry, lambda d: archive.blob(name(d), d), lambda d: archive.read(name(d))
    )


def _sha256_and_size(open_stream: Callable[[], BinaryIO]) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    with open_stream() as stream:
        while chunk := stream.read(READ_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def _is_gzip(archive: _Tar, name: str) -> bool:
    with archive.open(name) as stream:
        return stream.read(2) == b"\x1f\x8b"


def _docker_layer(archive: _Tar, name: str) -> tuple[Blob, str]:
    """A docker-save layer as pushed: as stored when compressed, else gzip-compressed on the
    fly. The digest is that of the bytes written (a first compression pass computes it)."""
    if _is_gzip(archive, name):
        digest, size = _sha256_and_size(lambda: archive.open(name))
        return Blob(digest, size, lambda: archive.open(name)), DOCKER_LAYER_GZIP

    def compressed() -> BinaryIO:
        return cast(BinaryIO, Gzipped(archive.open(name)))

    digest, size = _sha256_and_size(compressed)
    return Blob(digest, size, compressed), DOCKER_LAYER_GZIP


def docker_entry(entries: list[dict[str, Any]], image: str | None, where: str) -> dict[str, Any]:
    if image is None:
        if len(entries) != 1:
            tags = [t for e in entries for t in e.get("RepoTags") or []]
            raise SourceError(f"{where} holds {len(entries)} images; name one of {tags}")
        return entries[0]
    if image.startswith("@") and image[1:].isdigit():
        return entries[int(image[1:])]
    for entry in entries:
        tags = entry.get("RepoTags") or []
        if image in tags or any(t.split("/")[-1] == image for t in tags):
            return entry
    if len(entries) == 1:  # docker save of an image id, or a name the daemon normalised
        return entries[0]
    raise SourceError(f"{where}: no image {image!r}")


def docker_source(config: Blob, config_body: bytes, layers: list[Blob]) -> Source:
    """A `docker save` image as pushed: its config, its gzip layers, a schema 2 manifest."""
    blobs = {config.digest: config, **{layer.digest: layer for layer in layers}}
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config_body), "digest": config.digest},
        "layers": [
            {"mediaType": DOCKER_LAYER_GZIP, "size": layer.size, "digest": layer.digest}
            for layer in layers
        ],
    }
    body = json.dumps(manifest, indent=3).encode()
    return Source(blobs, [], Manifest(body, DOCKER_MANIFEST))


def read_docker_archive(path: Path, image: str | None = None) -> Source:
    """A `docker save` tar (skopeo `docker-archive:`), read in place."""
    archive = _Tar(path)
    entries = json.loads(archive.read("manifest.json"))
    entry = docker_entry(entries, image, str(path))
    config_body = archive.read(entry["Config"])
    config_digest = "sha256:" + hashlib.sha256(config_body).hexdigest()
    layers = [_docker_layer(archive, name)[0] for name in entry["Layers"]]
    return docker_source(archive.blob(entry["Config"], config_digest), config_body, layers)


class _SkopeoExport(io.RawIOBase):
    """`skopeo copy containers-storage:IMAGE docker-archive:/dev/stdout`, read as it runs:
    containers/storage keeps layers unpacked, and skopeo packs them (byte for byte the same
    tar each time, from the stored tar-split), so no copy is written. Its failure, such as
    an unknown image, is raised with skopeo's own message."""

    def __init__(self, reference: str) -> None:
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise SourceError("containers-storage: needs skopeo (apt-get install skopeo)")
        self._reference = reference
        source, destination = f"containers-storage:{reference}", "docker-archive:/dev/stdout"
        self._process = subprocess.Popen(
            [skopeo, "--insecure-policy", "copy", "--quiet", source, destination],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self._stdout = self._process.stdout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self._stdout.readinto(buffer)  # type: ignore[attr-defined]
        if count == 0:
            self._check()
        return int(count or 0)

    def _check(self) -> None:
        if self._process.wait() != 0:
            assert self._process.stderr is not None
            message = self._process.stderr.read().decode(errors="replace").strip()
            raise SourceError(f"containers-storage:{self._reference}: {message}")

    def close(self) -> None:
        if not self.closed:
            self._stdout.close()
            if self._process.poll() is None:
                self._process.kill()  # closed early: the second pass stops at the last blob
            self._process.wait()
        super().close()


@contextlib.contextmanager
def open_source(name: str) -> Iterator[Source]:
    """The image `name` names (a context, so that sources may hold resources)."""
    transport, rest = split_reference(name)
    try:
        source = _read(transport, rest)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise SourceError(f"{name}: unreadable ({type(error).__name__}: {error})") from error
    yield source


def _read(transport: str, rest: str) -> Source:
    if transport == "path":
        path = Path(rest)
        return read_oci_layout(path) if (path / "oci-layout").exists() else read_dir(path)
    if transport == "dir":
        return read_dir(Path(rest))
    if transport == "oci":
        return read_oci_layout(*_path_and_tag(rest))
    if transport == "oci-archive":
        return read_oci_archive(*_path_and_tag(rest))
    from . import tarstream  # it builds on this module

    if transport == "docker-archive":
        path, image = _archive_and_image(rest)
        if _is_compressed(path):
            return tarstream.read_docker_stream(lambda: _decompressed(path), image, str(path))
        return read_docker_archive(path, image)
    if transport == "docker-daemon":
        return tarstream.read_docker_stream(
            lambda: engine.export(rest), None, f"docker-daemon:{rest}"
        )
    where = f"containers-storage:{rest}"
    return tarstream.read_docker_stream(lambda: _export(rest), None, where)


def _export(reference: str) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(_SkopeoExport(reference), 1024 * 1024))


def _is_compressed(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(2) == b"\x1f\x8b"
    except OSError as error:
        raise SourceError(f"{path}: {error}") from error


def _decompressed(path: Path) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb"))


def _archive_and_image(rest: str) -> tuple[Path, str | None]:
    """skopeo's `docker-archive:PATH[:NAME:TAG|:@INDEX]`: the path is the part up to `.tar`."""
    for suffix in (".tar", ".tar.gz", ".tgz"):
        at = rest.find(suffix + ":")
        if at != -1:
            return Path(rest[: at + len(suffix)]), rest[at + len(suffix) + 1 :]
    return Path(rest), None
