"""Integration tests drive `python -m chalicelib.local` (the `make run` server, with its
embedded moto) over real HTTP, with real clients: skopeo, the oras SDK, requests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import Server, start_moto, start_stratus

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@dataclass
class Registry(Server):
    environment: dict[str, str] | None = None
    external: dict[str, str] | None = None  # LocalStack or real AWS: delete what it made


# Where the integration registries keep their data: by default each embeds its own moto.
# STRATUS_TEST_AWS_ENDPOINT_URL=http://127.0.0.1:4566 runs them on LocalStack instead, and
# STRATUS_TEST_AWS=1 on real AWS (your credentials); each then gets tables and a bucket of
# its own, named stratus-test-<run>-<registry>-..., deleted when the session ends.
_TEST_RUN = f"{os.getpid():x}{int(time.time()) % 100000:x}"


def _external_aws(name: str) -> dict[str, str]:
    endpoint = os.environ.get("STRATUS_TEST_AWS_ENDPOINT_URL")
    if not endpoint and not os.environ.get("STRATUS_TEST_AWS"):
        return {}
    env = {
        "STRATUS_TABLE_PREFIX": f"stratus-test-{_TEST_RUN}-{name}-",
        "STRATUS_BUCKET": f"stratus-test-{_TEST_RUN}-{name}",
        "STRATUS_USE_AWS": "1",
    }
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def _start(tmp: Path, name: str, extra_env: dict[str, str]) -> Registry:
    """`python -m chalicelib.local` with its data in a folder of its own, never in the
    checkout's .stratus/; on its embedded moto unless the environment says otherwise."""
    env = {} if "AWS_ENDPOINT_URL" in extra_env else _external_aws(name)
    env.update(extra_env)
    started = start_stratus(tmp, name, env)
    registry = Registry(started.name, started.host, started.process, started.log)
    if env.get("STRATUS_USE_AWS") and env.get("STRATUS_TABLE_PREFIX", "").startswith(
        "stratus-test-"
    ):
        registry.external = env
    return registry


def _stop(registry: Registry) -> None:
    registry.stop()
    if registry.external:
        _delete_test_resources(registry.external)


def _delete_test_resources(env: dict[str, str]) -> None:
    import boto3

    endpoint = env.get("AWS_ENDPOINT_URL")
    bucket = boto3.resource("s3", endpoint_url=endpoint).Bucket(env["STRATUS_BUCKET"])
    bucket.object_versions.delete()
    for upload in bucket.multipart_uploads.all():
        upload.abort()
    bucket.delete()
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint)
    for table in dynamodb.list_tables()["TableNames"]:
        if table.startswith(env["STRATUS_TABLE_PREFIX"]):
            dynamodb.delete_table(TableName=table)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The local registry as `make run` starts it: no body limit."""
    started = _start(tmp_path_factory.mktemp("registry"), "open", {})
    yield started
    _stop(started)


LIMIT = 1024 * 1024


@pytest.fixture(scope="session")
def limited_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The local registry with a body limit on, as an AWS stage has (scaled down), and no
    direct-upload extension: what a client meets on a registry that is not Stratus."""
    started = _start(
        tmp_path_factory.mktemp("limited"),
        "limited",
        {
            "STRATUS_MAX_REQUEST_BYTES": str(LIMIT),
            "STRATUS_REQUEST_TIMEOUT_SECONDS": "29",
            "STRATUS_DIRECT_UPLOADS": "0",
        },
    )
    yield started
    _stop(started)


@pytest.fixture(scope="session")
def referrers_off_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """FEATURE_REFERRERS_API off: clients must fall back to the referrers tag schema."""
    started = _start(
        tmp_path_factory.mktemp("referrers-off"), "referrers-off", {"FEATURE_REFERRERS_API": "0"}
    )
    yield started
    _stop(started)


ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """`STRATUS_AUTH=1 make run`: private, with the bootstrap admin from the environment."""
    tmp = tmp_path_factory.mktemp("auth")
    started = _start(
        tmp,
        "auth",
        {
            "STRATUS_AUTH": "1",
            "STRATUS_ADMIN_USER": ADMIN,
            "STRATUS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "STRATUS_SIGNING_KEY_FILE": str(tmp / "signing-key.pem"),
        },
    )
    yield started
    _stop(started)


@pytest.fixture(scope="session")
def stack_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The registry on the tables and bucket infra/stratus.yaml creates (deployed into a moto
    server's CloudFormation), configured from the stack's outputs as a stage is, with its
    signing key and admin password in SSM as SecureStrings: no local provisioning at all."""
    import boto3

    from infra import deploy

    tmp = tmp_path_factory.mktemp("stack")
    moto = start_moto(tmp)
    endpoint = moto.url
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    outputs = deploy.deploy_stack(session.client("cloudformation", endpoint_url=endpoint), "dev")
    ssm = session.client("ssm", endpoint_url=endpoint)
    deploy.ensure_secrets(ssm, outputs)
    ssm.put_parameter(
        Name=outputs["AdminPasswordParameter"],
        Value=ADMIN_PASSWORD,
        Type="SecureString",
        Overwrite=True,
    )
    started = _start(
        tmp,
        "stack",
        {
            "AWS_ENDPOINT_URL": endpoint,
            "STRATUS_PROVISION": "0",
            "STRATUS_AUTH": "1",
            "STRATUS_TABLE_PREFIX": outputs["TablePrefix"],
            "STRATUS_BUCKET": outputs["Bucket"],
            "STRATUS_SIGNING_KEY_PARAMETER": outputs["SigningKeyParameter"],
            "STRATUS_ADMIN_USER": ADMIN,
            "STRATUS_ADMIN_PASSWORD_PARAMETER": outputs["AdminPasswordParameter"],
        },
    )
    started.environment = {  # for tools run against the same stage (cleanup)
        "AWS_ENDPOINT_URL": endpoint,
        "STRATUS_TABLE_PREFIX": outputs["TablePrefix"],
        "STRATUS_BUCKET": outputs["Bucket"],
    }
    yield started
    _stop(started)
    moto.stop()


SMALL_PAGE = 10


@pytest.fixture(scope="session")
def small_page_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Referrers pages of 10, so paging over HTTP needs only a few dozen pushes."""
    started = _start(
        tmp_path_factory.mktemp("small-page"),
        "small-page",
        {"STRATUS_REFERRERS_PAGE_SIZE": str(SMALL_PAGE)},
    )
    yield started
    _stop(started)


def admin_cli(registry: Registry, *args: str, stdin: str = "") -> str:
    """`bin/stratus admin` as the bootstrap admin against `registry`; its output."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chalicelib.admin",
            "--registry",
            registry.url,
            "--user",
            ADMIN,
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "STRATUS_PASSWORD": ADMIN_PASSWORD},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def skopeo(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run skopeo (required in CI); with `check`, fail the test on a non-zero exit."""
    done = subprocess.run(
        [require_tool("skopeo"), "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def require_tool(name: str) -> str:
    """CI must have the tool (it fails there without it); elsewhere the test is skipped."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return path
