"""The admin CLI's policy verbs (`stratus admin ...`), clients of the policy API.

A resource is "acme/" for a namespace and "acme/app" for a repository, as for `grant`:

    stratus admin policies acme/                      # immutability and auto-prune
    stratus admin add-immutability-policy acme/app --pattern '^v[0-9]'
    stratus admin add-autoprune-policy acme/ number_of_tags 50 --pattern '^pr-'
    stratus admin delete-policy acme/ autoprune <uuid>
    stratus admin prune-preview acme/app
    stratus admin set-quota acme 10GB --reject 100 --warning 80   # superusers
    stratus admin quota acme                          # the quota, its limits and usage
    stratus admin usage acme/app                      # a repository's usage
    stratus admin usage-repair acme [--dry-run]       # recount from the links
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
        "set-quota",
        "quota",
        "delete-quota",
        "usage",
        "usage-repair",
    }
)
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


def parse_size(text: str) -> int:
    """ "10GB", "512MiB", "1000": bytes (decimal units as in the usage messages)."""
    number = text.strip().upper().rstrip("S")
    digits = number.rstrip("KMGTIB")
    unit = number[len(digits) :]
    if unit not in _UNITS or not digits.replace(".", "", 1).isdigit():
        raise SystemExit(f"error: {text!r} is not a size like 10GB or 512MiB")
    return int(float(digits) * _UNITS[unit])


def base_path(resource: str) -> str:
    if resource.endswith("/"):
        return f"/api/v1/organization/{resource[:-1]}"
    return f"/api/v1/repository/{resource}"


def _pattern(args: argparse.Namespace) -> dict[str, Any]:
    if args.pattern is None:
        return {}
    return {"tagPattern": args.pattern, "tagPatternMatches": not args.not_matching}


def _quota_command(api: Any, args: argparse.Namespace) -> Any:
    command = args.command
    if command == "usage":
        if "/" in args.resource:
            return api.call("GET", f"/api/v1/repository/{args.resource}/usage")
        return api.call("GET", f"/api/v1/organization/{args.resource}/quota/usage")
    base = f"/api/v1/organization/{args.resource}/quota"
    if command == "usage-repair":
        return api.call("POST", f"{base}/repair" + ("?dry_run=true" if args.dry_run else ""))
    quotas = api.call("GET", base)
    if command == "quota":
        usage = api.call("GET", f"{base}/usage")
        return {"quota": quotas[0] if quotas else None, "used_bytes": usage["used_bytes"]}
    if command == "delete-quota":
        if quotas:
            api.call("DELETE", f"{base}/{quotas[0]['id']}")
        return {"deleted": bool(quotas)}
    # set-quota: create or change the limit, then make the thresholds what was asked
    limit_bytes = parse_size(args.limit)
    if quotas:
        quota_id = quotas[0]["id"]
        api.call("PUT", f"{base}/{quota_id}", {"limit_bytes": limit_bytes})
    else:
        api.call("POST", base, {"limit_bytes": limit_bytes})
        quota_id = api.call("GET", base)[0]["id"]
    wanted = {"Reject": args.reject, "Warning": args.warning}
    for limit in api.call("GET", f"{base}/{quota_id}/limit"):
        if wanted.get(limit["type"]) is not None:
            api.call("DELETE", f"{base}/{quota_id}/limit/{limit['id']}")
    for kind, percent in wanted.items():
        if percent is not None:
            body = {"type": kind, "threshold_percent": percent}
            api.call("POST", f"{base}/{quota_id}/limit", body)
    return api.call("GET", f"{base}/{quota_id}")


def run(api: Any, args: argparse.Namespace) -> Any:
    """The command's answer (JSON-able), for the verbs in COMMANDS."""
    if args.command in {"set-quota", "quota", "delete-quota", "usage", "usage-repair"}:
        return _quota_command(api, args)
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
    quota = commands.add_parser("set-quota", help="set a namespace's quota (superusers)")
    quota.add_argument("resource", metavar="namespace")
    quota.add_argument("limit", help="bytes, or a size like 10GB or 512MiB")
    quota.add_argument("--reject", type=int, metavar="PERCENT", help="refuse pushes over this")
    quota.add_argument("--warning", type=int, metavar="PERCENT", help="log pushes over this")
    for name, text in (
        ("quota", "show a namespace's quota and usage"),
        ("delete-quota", "remove a namespace's quota (superusers)"),
    ):
        commands.add_parser(name, help=text).add_argument("resource", metavar="namespace")
    commands.add_parser(
        "usage", help="bytes used by a namespace or a repository (namespace/name)"
    ).add_argument("resource")
    repair = commands.add_parser("usage-repair", help="recount a namespace's usage from its links")
    repair.add_argument("resource", metavar="namespace")
    repair.add_argument("--dry-run", action="store_true", help="only report the recount")
