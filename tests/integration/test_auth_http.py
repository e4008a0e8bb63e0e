"""Auth over real HTTP with real clients: skopeo (`--creds`, `skopeo login`), podman login,
the oras SDK, and the admin CLI, against `STRATUS_AUTH=1 make run`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import oras.client
import pytest
import requests

from tests.images import Image, image_layout, make_image, random_layer, sha256
from tests.integration.conftest import (
    Registry,
    admin_cli,
    require_tool,
    skopeo,
)

pytestmark = pytest.mark.integration
PASSWORD = "password-1234"


@pytest.fixture(scope="module")
def accounts(auth_registry: Registry) -> dict[str, str]:
    """Made with the admin CLI: user dev (write on team/app), org team owned by lead, robot
    team+ci (write on the namespace), user outsider."""
    for user in ("dev", "lead", "outsider"):
        admin_cli(auth_registry, "create-user", user, "--password-stdin", stdin=PASSWORD + "\n")
    admin_cli(auth_registry, "create-org", "team", "--owner", "lead")
    robot = json.loads(admin_cli(auth_registry, "create-robot", "team", "ci"))
    admin_cli(auth_registry, "grant", "team/", "team+ci", "write")
    admin_cli(auth_registry, "grant", "team/app", "dev", "write")
    listed = json.loads(admin_cli(auth_registry, "permissions", "team/app"))
    assert listed["permissions"] == {"dev": "write"}
    return {"dev": PASSWORD, "outsider": PASSWORD, robot["name"]: robot["token"]}


def image_of(seed: str, layers: int) -> Image:
    return make_image([random_layer(4096, f"{seed}-{i}") for i in range(layers)])


def push_new(
    registry: Registry, tmp_path: Path, seed: str, ref: str, *auth: str, layers: int = 1
) -> Image:
    """A fresh image pushed by skopeo with the given credentials flags."""
    image = image_of(seed, layers)
    push(image_layout(tmp_path / "src", image), registry, ref, *auth)
    return image


def push(layout: Path, registry: Registry, ref: str, *auth: str, check: bool = True):
    return skopeo(
        "copy",
        "--dest-tls-verify=false",
        *auth,
        f"oci:{layout}:latest",
        f"docker://{registry.host}/{ref}",
        check=check,
    )


def test_skopeo_pushes_and_pulls_with_creds(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    image = push_new(
        auth_registry,
        tmp_path,
        "auth-creds",
        "team/app:v1",
        "--dest-creds",
        f"dev:{PASSWORD}",
        layers=2,
    )
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        f"dev:{PASSWORD}",
        f"docker://{auth_registry.host}/team/app:v1",
        f"oci:{tmp_path / 'out'}:pulled",
    )
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest


def test_skopeo_without_creds_is_told_to_authenticate(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    """An anonymous caller gets 401 and the challenge, not a bare 403, so clients say
    "authentication required" and offer to log in."""
    image = image_of("auth-anon", 1)
    done = push(image_layout(tmp_path / "src", image), auth_registry, "team/app:anon", check=False)
    assert done.returncode != 0
    assert "401" in done.stderr  # a HEAD: the status, and no body to show
    assert "403 (forbidden)" not in done.stderr.lower()  # (the port may hold "403")
    pulled = skopeo(
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        f"docker://{auth_registry.host}/team/app:anon",
        check=False,
    )
    assert pulled.returncode != 0
    assert "unauthorized: authentication required" in pulled.stderr
    assert "403 (forbidden)" not in pulled.stderr.lower()


def test_skopeo_login_then_push_with_the_stored_credentials(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    authfile = tmp_path / "auth.json"
    skopeo(
        "login",
        "--tls-verify=false",
        "--authfile",
        str(authfile),
        "-u",
        "dev",
        "-p",
        PASSWORD,
        auth_registry.host,
    )
    assert auth_registry.host in json.loads(authfile.read_text())["auths"]
    push_new(auth_registry, tmp_path, "auth-login", "team/app:login", "--authfile", str(authfile))


def test_skopeo_login_with_a_wrong_password_fails(
    auth_registry: Registry, accounts, tmp_path
) -> None:
    done = skopeo(
        "login",
        "--tls-verify=false",
        "--authfile",
        str(tmp_path / "auth.json"),
        "-u",
        "dev",
        "-p",
        "wrong-password",
        auth_registry.host,
        check=False,
    )
    assert done.returncode != 0


def test_podman_login_credentials_push_through_skopeo(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    podman = require_tool("podman")
    authfile = tmp_path / "podman-auth.json"
    done = subprocess.run(
        [
            podman,
            "login",
            "--tls-verify=false",
            "--authfile",
            str(authfile),
            "-u",
            "team+ci",
            "--password-stdin",
            auth_registry.host,
        ],
        input=accounts["team+ci"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "Login Succeeded" in done.stdout
    push_new(auth_registry, tmp_path, "auth-robot", "team/robot:v1", "--authfile", str(authfile))


def test_outsider_cannot_pull_a_private_repository(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    push_new(
        auth_registry,
        tmp_path,
        "auth-private",
        "team/app:private",
        "--dest-creds",
        f"dev:{PASSWORD}",
    )
    done = skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"outsider:{PASSWORD}",
        f"docker://{auth_registry.host}/team/app:private",
        check=False,
    )
    assert done.returncode != 0


def test_public_repository_is_pulled_anonymously(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    image = push_new(
        auth_registry,
        tmp_path,
        "auth-public",
        "team/open:v1",
        "--dest-creds",
        f"team+ci:{accounts['team+ci']}",
    )
    admin_cli(auth_registry, "visibility", "team/open", "public")
    done = skopeo(
        "inspect", "--tls-verify=false", "--no-creds", f"docker://{auth_registry.host}/team/open:v1"
    )
    assert json.loads(done.stdout)["Digest"] == image.digest


def test_oras_sdk_pushes_with_a_pull_token_first_and_pulls(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path, monkeypatch
) -> None:
    """The SDK keeps its pull token for the upload; our 403 `insufficient_scope` makes it
    fetch a push token (oras/provider.py do_request retries once on 403)."""
    monkeypatch.chdir(tmp_path)
    Path("chart.tgz").write_bytes(b"chart bytes")
    client = oras.client.OrasClient(hostname=auth_registry.host, insecure=True)
    client.login(
        username="dev",
        password=PASSWORD,
        hostname=auth_registry.host,
        tls_verify=False,
        config_path=str(tmp_path / "config.json"),
    )
    target = f"{auth_registry.host}/team/app:chart"
    assert client.push(target=target, files=["chart.tgz:application/x-tar"]).status_code == 201
    files = client.pull(target=target, outdir=str(tmp_path / "out"))
    assert [Path(f).read_bytes() for f in files] == [b"chart bytes"]


def test_pull_token_used_for_upload_gets_403_then_push_token_works(
    auth_registry: Registry, accounts: dict[str, str]
) -> None:
    def token(scope: str) -> str:
        answer = requests.get(
            f"{auth_registry.url}/v2/auth",
            params={"service": "stratus", "scope": scope},
            auth=("dev", PASSWORD),
            timeout=10,
        )
        assert answer.status_code == 200
        return answer.json()["token"]

    url = f"{auth_registry.url}/v2/team/app/blobs/uploads/"
    pull = token("repository:team/app:pull")
    refused = requests.post(url, headers={"Authorization": f"Bearer {pull}"}, timeout=10)
    assert refused.status_code == 403
    challenge = refused.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert challenge.startswith(f'Bearer realm="{auth_registry.url}/v2/auth"')
    push_token = token("repository:team/app:pull,push")
    accepted = requests.post(url, headers={"Authorization": f"Bearer {push_token}"}, timeout=10)
    assert accepted.status_code == 202


def test_catalog_shows_each_caller_its_repositories(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    push_new(
        auth_registry, tmp_path, "auth-catalog", "team/app:cat", "--dest-creds", f"dev:{PASSWORD}"
    )

    def catalog(user: str) -> list[str]:
        answer = requests.get(
            f"{auth_registry.url}/v2/auth",
            params={"service": "stratus", "scope": "registry:catalog:*"},
            auth=(user, accounts.get(user, PASSWORD)),
            timeout=10,
        )
        token = answer.json()["token"]
        listed = requests.get(
            f"{auth_registry.url}/v2/_catalog",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        return listed.json()["repositories"]

    assert "team/app" in catalog("dev")
    assert "team/app" not in catalog("outsider")


def test_blob_pull_redirect_needs_a_token_but_the_presigned_url_does_not(
    auth_registry: Registry, accounts: dict[str, str], tmp_path: Path
) -> None:
    image = push_new(
        auth_registry, tmp_path, "auth-blob", "team/app:blob", "--dest-creds", f"dev:{PASSWORD}"
    )
    layer = image.layers[0]
    url = f"{auth_registry.url}/v2/team/app/blobs/{sha256(layer)}"
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 401
