"""`python -m chalicelib.admin`: the operator's command line, over the management API.

    python -m chalicelib.admin --registry http://127.0.0.1:5000 tags org/app [--all]

Users, organizations and permissions join it with the auth work.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any


def _get(registry: str, path: str) -> Any:
    with urllib.request.urlopen(registry.rstrip("/") + path, timeout=30) as answer:
        return json.load(answer)


def tag_rows(registry: str, repository: str, include_expired: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    last = None
    while True:
        query = {"limit": "100", "onlyActiveTags": "false" if include_expired else "true"}
        if last:
            query["last"] = last
        page = _get(
            registry, f"/api/v1/repository/{repository}/tag/?{urllib.parse.urlencode(query)}"
        )
        rows += page["tags"]
        if not page["has_additional"] or not page["tags"]:
            return rows
        last = page["tags"][-1]["name"]


def _expires(row: dict[str, Any]) -> str:
    if "end_ts" not in row:
        return "never"
    when = datetime.fromtimestamp(row["end_ts"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{when} (expired)" if row["expired"] else when


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stratus-admin", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default="http://127.0.0.1:5000")
    commands = parser.add_subparsers(dest="command", required=True)
    tags = commands.add_parser("tags", help="list a repository's tags with their expiry")
    tags.add_argument("repository")
    tags.add_argument("--all", action="store_true", help="include expired tags not yet removed")
    args = parser.parse_args(argv)
    try:
        rows = tag_rows(args.registry, args.repository, args.all)
    except urllib.error.HTTPError as error:
        print(f"error: {error.code} {error.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    print(f"{'TAG':<32} {'DIGEST':<71} EXPIRES")
    for row in rows:
        print(f"{row['name']:<32} {row['manifest_digest']:<71} {_expires(row)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
