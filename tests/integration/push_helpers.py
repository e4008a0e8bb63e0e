"""Shared by the `stratus push` tests: images from fixtures, the CLI, pulling back."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from tests.images import (
    Image,
    image_layout,
    make_image,
    random_layer,
)
from tests.integration.conftest import ROOT, Registry, skopeo

MIB = 1024 * 1024
# Where tests' pushes keep their state unless a test names its own: never the user's cache.
STATE = tempfile.mkdtemp(prefix="stratus-push-state-")


def small_image(seed: str, layers: int = 2) -> Image:
    return make_image([random_layer(3000 + 1000 * i, f"{seed}-{i}") for i in range(layers)])


def layout_of(tmp_path: Path, image: Image, tag: str = "v1") -> Path:
    return image_layout(tmp_path / "layout", image, tag)


def stratus_push(
    source: str,
    destination: str,
    *extra: str,
    env: dict[str, str] | None = None,
    quiet: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`bin/stratus push --plain-http [--quiet] ...`, as a user runs it."""
    return subprocess.run(
        [
            str(ROOT / "bin" / "stratus"),
            "push",
            "--plain-http",
            *(["--quiet"] if quiet else []),
            *extra,
            source,
            destination,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "STRATUS_PUSH_STATE": STATE, **(env or {})},
    )


def pull_layout(registry_host: str, reference: str, into: Path) -> Path:
    """skopeo pulls the image back (it checks every blob's digest on the way)."""
    skopeo(
        "copy", "--src-tls-verify=false", f"docker://{registry_host}/{reference}", f"oci:{into}:x"
    )
    return into


def pulled_manifest(registry: Registry, reference: str) -> dict:
    out = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{reference}")
    return json.loads(out.stdout)


def diff_ids(layers: list[bytes]) -> list[str]:
    return ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in layers]
