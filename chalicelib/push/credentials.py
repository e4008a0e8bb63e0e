"""Credentials found as other clients find them, first match wins:

1. `--creds USER:PASSWORD` (a robot: `--creds acme+ci:<token>`);
2. `STRATUS_USER` / `STRATUS_PASSWORD`;
3. auth files: `--authfile`, `REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`
   (podman, skopeo, buildah), `~/.config/containers/auth.json`, then docker's
   `${DOCKER_CONFIG:-~/.docker}/config.json`: an `auths` entry, or a credential helper
   (`credHelpers` for the host, else `credsStore`) run as `docker-credential-<name> get`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str  # or, with `refresh`, an OAuth2 refresh token (docker's identitytoken)
    origin: str  # where they came from, for messages (never the secret)
    refresh: bool = False


class CredentialError(Exception):
    """Credentials named but unusable (exit code 4)."""


def auth_files(explicit: Path | None = None) -> list[Path]:
    """Where podman, skopeo and docker keep logins, in the order they read them."""
    env = os.environ
    files = [explicit] if explicit else []
    if env.get("REGISTRY_AUTH_FILE"):
        files.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files.append(config_home / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
    files.append(docker_dir / "config.json")
    return files


def _host_keys(host: str) -> list[str]:
    """The spellings an auth file may use for one registry."""
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"{host}/v2/"]


def _from_auth_entry(entry: dict[str, Any], origin: str) -> Credentials | None:
    if entry.get("auth"):
        username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return Credentials(username, password, origin)
    if entry.get("username"):
        return Credentials(entry["username"], entry.get("password", ""), origin)
    if entry.get("identitytoken"):
        return Credentials("", entry["identitytoken"], origin, refresh=True)
    return None


def from_helper(helper: str, host: str) -> Credentials | None:
    """Ask `docker-credential-<helper> get`, as docker does."""
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run(
            [program, "get"], input=host, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError as error:
        raise CredentialError(f"credential helper {program} is not installed") from error
    if done.returncode != 0:
        return None  # "credentials not found in native keychain": no login for this host
    answer = json.loads(done.stdout)
    username, secret = answer.get("Username", ""), answer.get("Secret", "")
    # docker's helpers mark an identity (refresh) token with the user name "<token>".
    return Credentials(username, secret, program, refresh=username == "<token>")


def from_auth_file(path: Path, host: str) -> Credentials | None:
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text() or "{}")
    except ValueError as error:
        raise CredentialError(f"{path}: not JSON ({error})") from error
    auths = doc.get("auths", {})
    for key in _host_keys(host):
        if key in auths:
            found = _from_auth_entry(auths[key], str(path))
            if found:
                return found
    helper = doc.get("credHelpers", {}).get(host) or doc.get("credsStore")
    return from_helper(helper, host) if helper else None


def find(host: str, creds: str | None = None, authfile: Path | None = None) -> Credentials | None:
    """The credentials for `host` (HOST[:PORT]), or None to go anonymous."""
    if creds:
        username, colon, password = creds.partition(":")
        if not colon:
            raise CredentialError("--creds must be USER:PASSWORD")
        return Credentials(username, password, "--creds")
    if os.environ.get("STRATUS_USER"):
        password = os.environ.get("STRATUS_PASSWORD", "")
        return Credentials(os.environ["STRATUS_USER"], password, "STRATUS_USER")
    for path in auth_files(authfile):
        found = from_auth_file(path, host)
        if found:
            return found
    return None
