"""`python -m chalicelib.admin` (`bin/stratus admin`): the operator's command line, a client of
the management API (`/api/v1`, chalicelib/endpoints/accounts.py).

    stratus admin --registry https://registry.example.com --user root users
    stratus admin create-user alice            # asks for alice's password
    stratus admin create-org acme --owner alice
    stratus admin create-robot acme ci         # prints acme+ci's token, once
    stratus admin regenerate-robot acme ci     # a new token; the old one stops working
    stratus admin grant acme/app alice write   # "acme/" grants on the whole namespace
    stratus admin visibility acme/app public
    stratus admin tags acme/app --all
    stratus admin logs acme/app --since 2026-01-01   # the audit log; "acme/": the namespace
    stratus admin set-proxycache hub docker.io --username bob --password-stdin
    stratus admin validate-proxycache hub docker.io    # tries the upstream first
    stratus admin proxycache hub                       # the configuration, no secrets
    stratus admin delete-proxycache hub

The caller's password comes from STRATUS_PASSWORD or a prompt; with auth off (local mode's
default) no credentials are needed.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from chalicelib.policies import cli as policy_cli


class Api:
    def __init__(self, registry: str, user: str | None, password: str | None) -> None:
        self.registry = registry.rstrip("/")
        self.authorization = None
        if user:
            secret = f"{user}:{password or ''}".encode()
            self.authorization = "Basic " + base64.b64encode(secret).decode()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.registry + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None


def tag_rows(api: Api, repository: str, include_expired: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    last = None
    while True:
        query = {"limit": "100", "onlyActiveTags": "false" if include_expired else "true"}
        if last:
            query["last"] = last
        page = api.call(
            "GET", f"/api/v1/repository/{repository}/tag/?{urllib.parse.urlencode(query)}"
        )
        rows += page["tags"]
        if not page["has_additional"] or not page["tags"]:
            return rows
        last = page["tags"][-1]["name"]


def _logs_path(target: str | None) -> str:
    """`acme/app` a repository, `acme/` a namespace, nothing: your own (or --performer's)."""
    if not target:
        return "/api/v1/user/logs"
    if target.endswith("/"):
        return f"/api/v1/organization/{target[:-1]}/logs"
    return f"/api/v1/repository/{target}/logs"


def log_rows(api: Api, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every entry in the range, following `next_page` (at most `--max`)."""
    query = {"limit": "100"}
    for name, value in (
        ("starttime", args.since),
        ("endtime", args.until),
        ("performer", args.performer),
    ):
        if value:
            query[name] = value
    rows: list[dict[str, Any]] = []
    while len(rows) < args.max:
        page = api.call("GET", f"{_logs_path(args.target)}?{urllib.parse.urlencode(query)}")
        rows += page["logs"]
        if not page.get("next_page"):
            break
        query["next_page"] = page["next_page"]
    return rows[: args.max]


def print_logs(rows: list[dict[str, Any]]) -> None:
    print(f"{'TIME':<31} {'KIND':<28} {'RESULT':<8} {'WHO':<24} {'IP':<16} WHAT")
    for row in rows:
        who = (row.get("performer") or {}).get("name") or "(anonymous)"
        what = " ".join(
            str(part)
            for part in (row.get("repository"), row.get("reference"), row.get("reason"))
            if part
        )
        print(
            f"{row['datetime']:<31} {row['kind']:<28} {row['result']:<8} {who:<24} "
            f"{row.get('ip') or '-':<16} {what}"
        )


def _expires(row: dict[str, Any]) -> str:
    if "end_ts" not in row:
        return "never"
    when = datetime.fromtimestamp(row["end_ts"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{when} (expired)" if row["expired"] else when


def _ask(prompt: str, instead: str) -> str:
    """A secret typed at the terminal; without one, getpass would fail with a traceback."""
    if not sys.stdin.isatty():
        raise SystemExit(f"error: no terminal to ask for {prompt.rstrip(': ')}; {instead}")
    return getpass.getpass(prompt)


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    instead = "pipe it in with --password-stdin"
    first = _ask(f"password for {args.name}: ", instead)
    if _ask("again: ", instead) != first:
        raise SystemExit("error: the passwords differ")
    return first


def _permission_path(resource: str, principal: str = "") -> str:
    """`acme/` is the namespace, anything else a repository (Quay's paths)."""
    if resource.endswith("/"):
        return f"/api/v1/organization/{resource[:-1]}/permissions/{principal}"
    suffix = f"user/{principal}" if principal else ""
    return f"/api/v1/repository/{resource}/permissions/{suffix}"


def _proxycache_body(args: argparse.Namespace) -> dict[str, Any]:
    """Quay's proxycache fields; the upstream password from stdin or a prompt."""
    body: dict[str, Any] = {
        "upstream_registry": args.upstream,
        "expiration_s": args.expiration,
        "insecure": args.insecure,
    }
    if args.username:
        body["upstream_registry_username"] = args.username
        if args.password_stdin:
            body["upstream_registry_password"] = sys.stdin.readline().rstrip("\n")
        else:
            prompt = f"{args.username}'s password at {args.upstream}: "
            body["upstream_registry_password"] = _ask(prompt, "pipe it in with --password-stdin")
    return body


def run(api: Api, args: argparse.Namespace) -> Any:
    """The command's answer, as JSON, or None for commands that print their own."""
    command = args.command
    if command == "tags":
        rows = tag_rows(api, args.repository, args.all)
        print(f"{'TAG':<32} {'DIGEST':<71} EXPIRES")
        for row in rows:
            print(f"{row['name']:<32} {row['manifest_digest']:<71} {_expires(row)}")
        return None
    if command == "logs":
        print_logs(log_rows(api, args))
        return None
    if command == "users":
        return api.call("GET", "/api/v1/users")
    if command == "create-user":
        body = {"username": args.name, "password": _new_password(args)}
        return api.call("POST", "/api/v1/users", {**body, "superuser": args.superuser})
    if command == "passwd":
        return api.call("PUT", f"/api/v1/users/{args.name}", {"password": _new_password(args)})
    if command == "delete-user":
        return api.call("DELETE", f"/api/v1/users/{args.name}")
    if command == "orgs":
        return api.call("GET", "/api/v1/organizations")
    if command == "create-org":
        return api.call("POST", "/api/v1/organizations", {"name": args.name, "owners": args.owner})
    if command == "robots":
        return api.call("GET", f"/api/v1/organization/{args.namespace}/robots")
    if command == "create-robot":
        return api.call("PUT", f"/api/v1/organization/{args.namespace}/robots/{args.shortname}")
    if command == "regenerate-robot":
        path = f"/api/v1/organization/{args.namespace}/robots/{args.shortname}/regenerate"
        return api.call("POST", path)
    if command == "delete-robot":
        return api.call("DELETE", f"/api/v1/organization/{args.namespace}/robots/{args.shortname}")
    if command == "grant":
        return api.call("PUT", _permission_path(args.resource, args.principal), {"role": args.role})
    if command == "revoke":
        return api.call("DELETE", _permission_path(args.resource, args.principal))
    if command == "permissions":
        return api.call("GET", _permission_path(args.resource))
    if command == "visibility":
        path = f"/api/v1/repository/{args.repository}/changevisibility"
        return api.call("POST", path, {"visibility": args.visibility})
    if command == "proxycache":
        return api.call("GET", f"/api/v1/organization/{args.namespace}/proxycache")
    if command == "set-proxycache":
        path = f"/api/v1/organization/{args.namespace}/proxycache"
        return api.call("POST", path, _proxycache_body(args))
    if command == "validate-proxycache":
        path = f"/api/v1/organization/{args.namespace}/validateproxycache"
        return api.call("POST", path, _proxycache_body(args))
    if command == "delete-proxycache":
        return api.call("DELETE", f"/api/v1/organization/{args.namespace}/proxycache")
    if command in policy_cli.COMMANDS:
        return policy_cli.run(api, args)
    raise SystemExit(f"unknown command {command}")


def parser() -> argparse.ArgumentParser:
    assert __doc__ is not None
    summary, _, examples = __doc__.partition("\n\n")
    root = argparse.ArgumentParser(
        prog="stratus-admin",
        description=" ".join(summary.split()),
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument(
        "--registry", default=os.environ.get("STRATUS_REGISTRY", "http://127.0.0.1:5000")
    )
    root.add_argument("--user", default=os.environ.get("STRATUS_USER"), help="who you are")
    commands = root.add_subparsers(dest="command", required=True)
    tags = commands.add_parser("tags", help="list a repository's tags with their expiry")
    tags.add_argument("repository")
    tags.add_argument("--all", action="store_true", help="include expired tags not yet removed")
    logs = commands.add_parser("logs", help="the audit log of a repository, namespace/ or you")
    logs.add_argument("target", nargs="?", help="org/app, or org/ for the whole namespace")
    logs.add_argument("--since", help="MM/DD/YYYY or ISO 8601 (default: a day ago)")
    logs.add_argument("--until", help="MM/DD/YYYY or ISO 8601 (default: now)")
    logs.add_argument("--performer", help="only this account's entries")
    logs.add_argument("--max", type=int, default=1000, help="at most this many entries")
    commands.add_parser("users", help="list users")
    for name, text in (("create-user", "create a user"), ("passwd", "set a user's password")):
        command = commands.add_parser(name, help=text)
        command.add_argument("name")
        command.add_argument("--password-stdin", action="store_true")
        if name == "create-user":
            command.add_argument("--superuser", action="store_true")
    commands.add_parser("delete-user", help="delete a user").add_argument("name")
    commands.add_parser("orgs", help="list organizations")
    org = commands.add_parser("create-org", help="create an organization")
    org.add_argument("name")
    org.add_argument("--owner", action="append", default=[], help="repeatable")
    commands.add_parser("robots", help="list a namespace's robots").add_argument("namespace")
    for name in ("create-robot", "regenerate-robot", "delete-robot"):
        robot = commands.add_parser(name, help=f"{name.split('-')[0]} namespace+shortname")
        robot.add_argument("namespace")
        robot.add_argument("shortname")
    grant = commands.add_parser("grant", help="give a role on a repository or namespace/")
    grant.add_argument("resource")
    grant.add_argument("principal")
    grant.add_argument("role", choices=["read", "write", "admin"])
    revoke = commands.add_parser("revoke", help="take a grant away")
    revoke.add_argument("resource")
    revoke.add_argument("principal")
    commands.add_parser("permissions", help="list grants").add_argument("resource")
    visibility = commands.add_parser("visibility", help="make a repository public or private")
    visibility.add_argument("repository")
    visibility.add_argument("visibility", choices=["public", "private"])
    commands.add_parser(
        "proxycache", help="show an organization's pull-through cache"
    ).add_argument("namespace")
    for name, text in (
        ("set-proxycache", "make an organization a pull-through cache of an upstream"),
        ("validate-proxycache", "try an upstream and its credentials"),
    ):
        cache = commands.add_parser(name, help=text)
        cache.add_argument("namespace")
        cache.add_argument("upstream", help="host[:port][/path], e.g. docker.io")
        cache.add_argument("--expiration", type=int, default=86400, help="seconds (86400)")
        cache.add_argument("--insecure", action="store_true", help="plain HTTP upstream")
        cache.add_argument("--username", help="upstream user (password: prompt or stdin)")
        cache.add_argument("--password-stdin", action="store_true")
    commands.add_parser(
        "delete-proxycache", help="stop caching (cached content stays until GC)"
    ).add_argument("namespace")
    policy_cli.add_commands(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    password = None
    if args.user:
        password = os.environ.get("STRATUS_PASSWORD") or _ask(
            f"{args.user}'s password: ", "set STRATUS_PASSWORD"
        )
    try:
        answer = run(Api(args.registry, args.user, password), args)
    except urllib.error.HTTPError as error:
        print(f"error: {error.code} {error.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    if answer is not None:
        print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
