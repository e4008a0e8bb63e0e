"""Build real OCI image layouts on disk (layers, configs, manifests, indexes) for tests.

skopeo reads these with the `oci:` transport, so the integration tests push genuine images
without any network or container engine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def random_layer(size: int, seed: str, *, compress: bool = True) -> bytes:
    content = b"".join(
        hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(size // 32 + 1)
    )[:size]
    tar = layer_tar({f"data/{seed}.bin": content})
    return gzip_bytes(tar) if compress else tar


@dataclass
class Image:
    manifest: bytes
    config: bytes
    layers: list[bytes]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def make_image(
    layers: list[bytes],
    *,
    architecture: str = "amd64",
    labels: dict[str, str] | None = None,
    layer_type: str = OCI_LAYER_GZIP,
    annotations: dict[str, str] | None = None,
    history: list[dict] | None = None,
) -> Image:
    diff_ids = [
        sha256(gzip.decompress(layer) if layer_type == OCI_LAYER_GZIP else layer)
        for layer in layers
    ]
    config_doc = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if history is not None:
        config_doc["history"] = history
    config = json.dumps(config_doc, sort_keys=True).encode()
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": layer_type, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    if annotations:
        manifest_doc["annotations"] = annotations
    return Image(json.dumps(manifest_doc, indent=2).encode(), config, layers)


def make_index(images: list[Image], platforms: list[tuple[str, str]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": image.media_type,
                    "digest": image.digest,
                    "size": len(image.manifest),
                    "platform": {"os": os_name, "architecture": arch},
                }
                for image, (os_name, arch) in zip(images, platforms, strict=True)
            ],
        },
        indent=2,
    ).encode()


def write_layout(path: Path, blobs: list[bytes], top: bytes, top_type: str, tag: str) -> Path:
    """An OCI image layout whose index.json tags `top` (a manifest or an index)."""
    blob_dir = path / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in [*blobs, top]:
        (blob_dir / sha256(blob).split(":", 1)[1]).write_bytes(blob)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": top_type,
                "digest": sha256(top),
                "size": len(top),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (path / "index.json").write_text(json.dumps(index))
    return path


def generated_layout(path: Path, layer_sizes: list[int]) -> tuple[Path, bytes]:
    """An OCI layout of uncompressible layers of these sizes, streamed to disk."""
    blob_dir = path / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    descriptors = []
    block = os.urandom(4 * 1024 * 1024)
    for index, size in enumerate(layer_sizes):
        hasher, staging = hashlib.sha256(), path / "staging"
        with staging.open("wb") as out:
            for offset in range(0, size, len(block)):
                piece = (index, offset).__repr__().encode().ljust(32) + block[32:]
                piece = piece[: min(len(block), size - offset)]
                out.write(piece)
                hasher.update(piece)
        staging.rename(blob_dir / hasher.hexdigest())
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{hasher.hexdigest()}",
                "size": size,
            }
        )
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": str(block[:8])}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": descriptors,
        }
    ).encode()
    write_layout(path, [config], manifest, OCI_MANIFEST, "v1")
    return path, manifest


def image_layout(path: Path, image: Image, tag: str = "latest") -> Path:
    return write_layout(path, [image.config, *image.layers], image.manifest, OCI_MANIFEST, tag)


def index_layout(path: Path, images: list[Image], index: bytes, tag: str = "latest") -> Path:
    blobs: list[bytes] = []
    for image in images:
        blobs += [image.config, *image.layers, image.manifest]
    return write_layout(path, blobs, index, OCI_INDEX, tag)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


def oci_index(manifests: list[bytes], **fields: object) -> bytes:
    """An OCI index of these OCI image manifests (bytes), with any extra top-level fields."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": sha256(m), "size": len(m)} for m in manifests
            ],
            **fields,
        }
    ).encode()
