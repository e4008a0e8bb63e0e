"""`stratus push [options] SOURCE HOST[:PORT]/REPOSITORY[:TAG]`: push an image from docker,
podman, an archive, an OCI image layout or a skopeo `dir:` directory.

Exit codes: 0 pushed; 1 the registry refused or failed; 2 usage; 3 the source cannot be
read; 4 authentication or permission; 5 the registry or S3 unreachable after retries;
130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import requests

from . import credentials
from .progress import Progress
from .sources import SourceError, open_source
from .state import Store
from .transport import Backoff, Client, PushError
from .upload import DEFAULT_PART, Pusher

SOURCES_HELP = """sources, named as skopeo names them:
  docker-daemon:IMAGE          from the Docker engine (DOCKER_HOST or /var/run/docker.sock)
  containers-storage:IMAGE     podman, buildah (through skopeo)
  docker-archive:FILE.tar      docker save
  oci-archive:FILE.tar         an OCI image layout in a tar
  oci:DIR[:TAG]                an OCI image layout
  dir:DIR                      a skopeo dir: directory
  DIR                          an OCI image layout or a skopeo dir: directory
"""


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        prog="stratus push",
        description="Push an image (an OCI image layout, an archive, docker or podman storage)"
        " to a registry; layers of any size through Stratus's direct uploads.",
        epilog=SOURCES_HELP + "\n" + (__doc__ or "").split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    made.add_argument("source", help="what to push (see below)")
    made.add_argument("destination", help="HOST[:PORT]/REPOSITORY[:TAG] (docker:// optional)")
    made.add_argument("--plain-http", action="store_true", help="http, not https")
    made.add_argument("--jobs", "-j", type=int, default=4, help="parts in flight (4)")
    made.add_argument("--part-size", type=int, default=DEFAULT_PART, help="direct-upload part")
    made.add_argument("--chunk-size", type=int, help="chunk size for standard uploads")
    made.add_argument("--creds", help="USER:PASSWORD (a robot: ORG+NAME:TOKEN)")
    made.add_argument("--authfile", type=Path, help="an auth.json or docker config.json")
    made.add_argument("--digestfile", type=Path, help="write the manifest's digest there")
    made.add_argument("--retries", type=int, default=6, help="tries per request (6)")
    made.add_argument("--no-direct", action="store_true", help="standard uploads only")
    made.add_argument("--quiet", "-q", action="store_true", help="no progress")
    return made


def split_destination(destination: str, plain_http: bool) -> tuple[str, str, str]:
    """(base URL, repository, tag) from `[docker://]HOST[:PORT]/REPO[:TAG]`."""
    destination = destination.removeprefix("docker://")
    scheme = "http" if plain_http else "https"
    if "://" in destination:
        scheme, destination = destination.split("://", 1)
    host, _, rest = destination.partition("/")
    if not rest:
        raise ValueError(f"{destination}: expected HOST[:PORT]/REPOSITORY[:TAG]")
    name, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:
        name, tag = rest, "latest"
    return f"{scheme}://{host}", name, tag


def _fail(code: int, message: str) -> int:
    sys.stderr.write(f"stratus push: error: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["push"]:  # the installed `stratus push ...`
        arguments = arguments[1:]
    args = parser().parse_args(arguments)
    try:
        base, repository, tag = split_destination(args.destination, args.plain_http)
        found = credentials.find(base.split("://", 1)[1], args.creds, args.authfile)
    except (ValueError, credentials.CredentialError) as error:
        return _fail(4 if isinstance(error, credentials.CredentialError) else 2, str(error))
    progress = Progress.choose(args.quiet)
    client = Client(base, repository, found, Backoff(attempts=max(args.retries, 1)), args.jobs)
    pusher = Pusher(
        client,
        progress,
        Store(),
        jobs=max(args.jobs, 1),
        part_size=args.part_size,
        chunk_size=args.chunk_size,
        direct=False if args.no_direct else None,
    )
    try:
        with open_source(args.source) as source:
            for note in source.notes:
                progress.note(note)
            digest = pusher.push(source, tag)
    except SourceError as error:
        return _fail(3, str(error))
    except PushError as error:
        return _fail(error.exit_code, str(error))
    except requests.RequestException as error:  # e.g. an invalid URL; not retried
        return _fail(5, f"{type(error).__name__}: {error}")
    except OSError as error:  # reading the source while pushing
        return _fail(3, f"reading the source: {error}")
    except KeyboardInterrupt:
        return _fail(130, "interrupted; run the same command again to resume")
    if args.digestfile:
        args.digestfile.write_text(digest)
    print(f"pushed {repository}:{tag} {digest}")
    return 0
