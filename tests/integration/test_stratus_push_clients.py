"""`stratus push` against a private Stratus (credentials found as docker and podman find
them, robots) and against Distribution 2.8, which has no `_stratus` extension."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chalicelib.local.stack import free_port
from tests.images import make_image, random_layer
from tests.integration.conftest import (
    Registry,
    admin_cli,
    require_tool,
)
from tests.integration.push_helpers import (
    layout_of,
    pull_layout,
    small_image,
    stratus_push,
)

pytestmark = pytest.mark.integration

PASSWORD = "push-password-1234"


@pytest.fixture(scope="module")
def robot(auth_registry: Registry) -> tuple[str, str]:
    """Robot pushers+ci with write on the pushers/ namespace: (name, token)."""
    admin_cli(auth_registry, "create-user", "pushlead", "--password-stdin", stdin=PASSWORD + "\n")
    admin_cli(auth_registry, "create-org", "pushers", "--owner", "pushlead")
    made = json.loads(admin_cli(auth_registry, "create-robot", "pushers", "ci"))
    admin_cli(auth_registry, "grant", "pushers/", "pushers+ci", "write")
    return made["name"], made["token"]


@pytest.fixture
def clean_home(tmp_path: Path) -> dict[str, str]:
    """No logins but the ones a test writes: HOME, XDG and DOCKER_CONFIG in tmp_path."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    return {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "DOCKER_CONFIG": str(home / ".docker"),
        "REGISTRY_AUTH_FILE": "",
        "STRATUS_USER": "",
        "STRATUS_PASSWORD": "",
        "STRATUS_PUSH_STATE": str(tmp_path / "state"),
    }


def auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_push_reads_credentials_from_podmans_auth_file(
    auth_registry: Registry, robot: tuple[str, str], clean_home: dict[str, str], tmp_path: Path
) -> None:
    auth_file = Path(clean_home["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    auth_file.write_text(json.dumps({"auths": {auth_registry.host: auth_entry(*robot)}}))
    image = small_image("authfile")
    done = stratus_push(
        f"oci:{layout_of(tmp_path, image)}:v1",
        f"{auth_registry.host}/pushers/authfile:v1",
        env=clean_home,
    )
    assert done.returncode == 0, done.stderr
    assert image.digest in done.stdout


def test_push_asks_dockers_credential_helper(
    auth_registry: Registry, robot: tuple[str, str], clean_home: dict[str, str], tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    answer = json.dumps({"Username": robot[0], "Secret": robot[1]})
    helper.write_text(
        f'#!/bin/sh\n[ "$1" = get ] && [ "$(cat)" = {auth_registry.host} ] && '
        f"echo '{answer}' && exit 0\necho 'credentials not found' ; exit 1\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    config = Path(clean_home["DOCKER_CONFIG"]) / "config.json"
    config.write_text(json.dumps({"credHelpers": {auth_registry.host: "fake"}}))
    env = {**clean_home, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    image = small_image("helper")
    done = stratus_push(
        f"oci:{layout_of(tmp_path, image)}:v1", f"{auth_registry.host}/pushers/helper:v1", env=env
    )
    assert done.returncode == 0, done.stderr


def test_push_with_a_robot_token_from_the_environment(
    auth_registry: Registry, robot: tuple[str, str], clean_home: dict[str, str], tmp_path: Path
) -> None:
    env = {**clean_home, "STRATUS_USER": robot[0], "STRATUS_PASSWORD": robot[1]}
    image = small_image("robot-env")
    done = stratus_push(
        f"oci:{layout_of(tmp_path, image)}:v1", f"{auth_registry.host}/pushers/env:v1", env=env
    )
    assert done.returncode == 0, done.stderr


def test_push_without_credentials_exits_4_saying_so(
    auth_registry: Registry, clean_home: dict[str, str], tmp_path: Path
) -> None:
    done = stratus_push(
        f"oci:{layout_of(tmp_path, small_image('anon'))}:v1",
        f"{auth_registry.host}/pushers/anon:v1",
        env=clean_home,
    )
    assert done.returncode == 4
    assert "401" in done.stderr and "anonymously" in done.stderr


def test_push_with_a_wrong_token_exits_4_naming_where_it_came_from(
    auth_registry: Registry, robot: tuple[str, str], clean_home: dict[str, str], tmp_path: Path
) -> None:
    done = stratus_push(
        f"oci:{layout_of(tmp_path, small_image('wrong'))}:v1",
        f"{auth_registry.host}/pushers/wrong:v1",
        "--creds",
        f"{robot[0]}:not-the-token",
        env=clean_home,
    )
    assert done.returncode == 4
    assert "token refused from --creds" in done.stderr


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Distribution 2.8 (Debian `docker-registry`) on the filesystem: its host:port."""
    binary = require_tool("docker-registry")
    work = tmp_path_factory.mktemp("distribution")
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(work / "data")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    log = (work / "log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, (work / "log").read_text()
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_push_to_distribution_uses_standard_chunked_and_monolithic_uploads(
    distribution: str, tmp_path: Path
) -> None:
    layers = [random_layer(3 * 1024 * 1024, "big"), random_layer(2000, "small")]
    image = make_image(layers)
    done = stratus_push(
        f"oci:{layout_of(tmp_path, image)}:v1",
        f"{distribution}/fallback/app:v1",
        "--chunk-size",
        str(1024 * 1024),  # the big layer in 1 MiB PATCHes, the rest in one PUT each
        env={"STRATUS_PUSH_STATE": str(tmp_path / "state")},
    )
    assert done.returncode == 0, done.stderr
    served = requests.get(
        f"http://{distribution}/v2/fallback/app/manifests/v1",
        headers={"Accept": image.media_type},
        timeout=30,
    )
    assert served.content == image.manifest
    pull_layout(distribution, "fallback/app:v1", tmp_path / "back")


def test_push_with_a_token_mounts_from_another_repository_it_may_pull(
    auth_registry: Registry, robot: tuple[str, str], clean_home: dict[str, str], tmp_path: Path
) -> None:
    env = {**clean_home, "STRATUS_USER": robot[0], "STRATUS_PASSWORD": robot[1]}
    layout = f"oci:{layout_of(tmp_path, small_image('auth-mount'))}:v1"
    first = stratus_push(layout, f"{auth_registry.host}/pushers/mount-a:v1", env=env)
    assert first.returncode == 0, first.stderr
    second = stratus_push(layout, f"{auth_registry.host}/pushers/mount-b:v1", env=env, quiet=False)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count(": mounted") == 3  # two layers and the config


def test_push_uses_a_docker_identity_token_with_the_refresh_grant(
    auth_registry: Registry, robot: tuple[str, str], clean_home: dict[str, str], tmp_path: Path
) -> None:
    offline = requests.get(
        f"{auth_registry.url}/v2/auth",
        params={"service": "stratus", "offline_token": "true", "client_id": "test"},
        auth=robot,
        timeout=30,
    ).json()
    config = {"auths": {auth_registry.host: {"identitytoken": offline["refresh_token"]}}}
    (Path(clean_home["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps(config))
    done = stratus_push(
        f"oci:{layout_of(tmp_path, small_image('identity'))}:v1",
        f"{auth_registry.host}/pushers/identity:v1",
        env=clean_home,
    )
    assert done.returncode == 0, done.stderr
