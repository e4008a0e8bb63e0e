"""The admin CLI's policy verbs (`stratus admin ...`), clients of the policy API.

A resource is "acme/" for a namespace and "acme/app" for a repository, as for `grant`:

    stratus admin policies acme/                      # immutability and auto-prune
    stratus admin add-immutability-policy acme/app --pattern '^v[0-9]'
    stratus admin add-autoprune-policy acme/ number_of_tags 50 --pattern '^pr-'
    stratus admin delete-policy acme/ autoprune <uuid>
    stratus admin prune-preview acme/app
"""

from __future__ import annotations

import argparse
from typing import Any

SEGMENTS = {"immutability": "immutabilitypolicy", "autoprune": "autoprunepolicy"}
COMMANDS = frozenset(
    {
        "policies",
        "add-immutability-policy",
        "add-autoprune-policy",
        "delete-policy",
        "prune-preview",
    }
)


def base_path(resource: str) -> str:
    if resource.endswith("/"):
        return f"/api/v1/organization/{resource[:-1]}"
    return f"/api/v1/repository/{resource}"


def _pattern(args: argparse.Namespace) -> dict[str, Any]:
    if args.pattern is None:
        return {}
    return {"tagPattern": args.pattern, "tagPatternMatches": not args.not_matching}


def run(api: Any, args: argparse.Namespace) -> Any:
    """The command's answer (JSON-able), for the verbs in COMMANDS."""
    base = base_path(args.resource)
    command = args.command
    if command == "policies":
        return {
            kind: api.call("GET", f"{base}/{segment}/")["policies"]
            for kind, segment in SEGMENTS.items()
        }
    if command == "add-immutability-policy":
        return api.call("POST", f"{base}/immutabilitypolicy/", _pattern(args))
    if command == "add-autoprune-policy":
        value: int | str = int(args.value) if args.method == "number_of_tags" else args.value
        body = {"method": args.method, "value": value, **_pattern(args)}
        return api.call("POST", f"{base}/autoprunepolicy/", body)
    if command == "delete-policy":
        return api.call("DELETE", f"{base}/{SEGMENTS[args.kind]}/{args.uuid}")
    if command == "prune-preview":
        return api.call("GET", f"{base}/autoprunepolicy/preview")
    raise SystemExit(f"unknown command {command}")


def add_commands(commands: Any) -> None:
    """Register the verbs on the admin CLI's subparsers."""
    listing = commands.add_parser("policies", help="list a namespace/'s or repository's policies")
    listing.add_argument("resource")
    immutable = commands.add_parser(
        "add-immutability-policy", help="make tags (all, or --pattern) immutable"
    )
    immutable.add_argument("resource")
    prune = commands.add_parser("add-autoprune-policy", help="prune tags by count or age")
    prune.add_argument("resource")
    prune.add_argument("method", choices=["number_of_tags", "creation_date"])
    prune.add_argument("value", help="a count (number_of_tags) or an age like 30d")
    for command in (immutable, prune):
        command.add_argument("--pattern", help="a regex matched at the tag's start")
        command.add_argument(
            "--not-matching", action="store_true", help="the policy covers the other tags"
        )
    delete = commands.add_parser("delete-policy", help="delete a policy by its uuid")
    delete.add_argument("resource")
    delete.add_argument("kind", choices=sorted(SEGMENTS))
    delete.add_argument("uuid")
    commands.add_parser(
        "prune-preview", help="list what auto-prune would delete now (a dry run)"
    ).add_argument("resource")
