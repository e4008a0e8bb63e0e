"""`pip install ./clients` gives a `stratus` command that needs none of the server's
dependencies: the wheel holds only the push package, requires only `requests`, and pushes
with boto3, botocore, chalice, pynamodb and moto made unimportable."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Registry
from tests.integration.push_helpers import layout_of, small_image

pytestmark = pytest.mark.integration

SERVER_ONLY = ("boto3", "botocore", "chalice", "pynamodb", "moto", "chalicelib")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of clients/ and chalicelib/push/ (the tree stays clean)."""
    work = tmp_path_factory.mktemp("package")
    shutil.copytree(ROOT / "clients", work / "clients")
    shutil.copytree(
        ROOT / "chalicelib" / "push",
        work / "chalicelib" / "push",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(work / "clients"),
            "-w",
            str(work / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (built,) = (work / "dist").glob("stratus_push-*.whl")
    return built


def test_the_wheel_requires_only_requests_and_installs_a_stratus_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist")]
    assert requires == ["Requires-Dist: requests>=2.28"]
    assert b"stratus = stratus_push.cli:main" in entry_points
    assert {n.split("/")[0] for n in names} == {
        "stratus_push",
        wheel.name.split("-py3")[0] + ".dist-info",
    }


def test_the_packaged_command_pushes_without_any_server_dependency(
    wheel: Path, registry: Registry, tmp_path: Path
) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    image = small_image("packaged")
    script = (
        "import sys\n"
        f"for name in {SERVER_ONLY!r}: sys.modules[name] = None  # unimportable\n"
        f"sys.path = [{str(unpacked)!r}] + [p for p in sys.path if p != {str(ROOT)!r}]\n"
        "from stratus_push.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "push",
            "--plain-http",
            "--quiet",
            f"oci:{layout_of(tmp_path, image)}:v1",
            f"{registry.host}/packaged/app:v1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert image.digest in done.stdout
