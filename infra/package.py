"""Chalice, building a Lambda package that carries only what Lambda runs:
`python -m infra.package deploy|package ...` takes `chalice`'s own arguments.

Chalice ships chalicelib/ whole and has no setting to leave anything out, while the
repository keeps all code in chalicelib/, the operator CLI, `stratus push` and local mode
included. None of those is imported by a handler, so they are left out of the zip here, as
are bytecode caches (compiled by the developer's Python, not necessarily the runtime's).
`infra.deploy up` and the package tests build through this; a plain `chalice deploy` still
ships them, unused (docs/operations.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

# Paths in the zip that no Lambda handler imports.
LOCAL_ONLY = (
    "chalicelib/admin.py",
    "chalicelib/policies/cli.py",  # the admin CLI's policy verbs
    "chalicelib/push/",
    "chalicelib/local/",
)


def shipped(zip_path: str) -> bool:
    """Whether a file of chalicelib/ belongs in the Lambda package."""
    if "/__pycache__/" in zip_path or zip_path.endswith(".pyc"):
        return False
    return not zip_path.startswith(LOCAL_ONLY)


def leave_out_local_code() -> None:
    """Make Chalice's packager skip what `shipped` refuses, in its package and its deploy
    alike (both collect chalicelib/ through this one method, for the zip and its hash)."""
    from chalice.deploy.packager import BaseLambdaDeploymentPackager as Packager

    collect = Packager._iter_chalice_lib_if_needed

    def collect_shipped(self: Packager, project_dir: str) -> Iterator[tuple[str, str]]:
        for full_path, zip_path in collect(self, project_dir):
            if shipped(zip_path):
                yield full_path, zip_path

    Packager._iter_chalice_lib_if_needed = collect_shipped  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    from chalice.cli import main as chalice

    leave_out_local_code()
    sys.argv = ["chalice", *(sys.argv[1:] if argv is None else argv)]
    return int(chalice() or 0)


if __name__ == "__main__":
    sys.exit(main())
