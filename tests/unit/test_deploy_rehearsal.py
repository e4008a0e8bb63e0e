"""A deploy rehearsal: `python -m infra.deploy up --stage dev` and `down`, end to end, against
a moto server, then what AWS would hold checked resource by resource.

The deploy runs in a subprocess (its calls are ops-side, not the registry's, so they stay out
of the recorded calls the IAM policy check reads) on a copy of the project: `up` writes the
stage's configuration into .chalice/ and Chalice its deployed state, which must not touch
the shared working tree.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra import policies
from tests import servers

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("app.py", "requirements.txt", "chalicelib", "infra")
ACCOUNT = "123456789012"  # moto's
API_FUNCTION = "stratus-dev"  # Chalice names the API's function after the app and stage
# function -> (handler, its role's generated policy); `audit_export` only with
# STRATUS_AUDIT_EXPORT on (tests/unit/test_audit_export.py), off here.
FUNCTIONS = {
    API_FUNCTION: ("app.app", policies.api_policy("dev")),
    "stratus-dev-verify_upload": ("app.verify_upload", policies.api_policy("dev")),
    "stratus-dev-cleanup": ("app.cleanup", policies.cleanup_policy("dev")),
    "stratus-dev-tag_changes": ("app.tag_changes", policies.cleanup_policy("dev")),
    "stratus-dev-manifest_changes": ("app.manifest_changes", policies.cleanup_policy("dev")),
    "stratus-dev-gc_segment": ("app.gc_segment", policies.cleanup_policy("dev")),
    "stratus-dev-webhooks": ("app.webhooks", policies.cleanup_policy("dev")),
    "stratus-dev-proxycache_copy": ("app.proxycache_copy", policies.api_policy("dev")),
}
RETAINED_TABLES = {  # DeletionPolicy: Retain; uploads and v1-images are transient
    f"stratus-dev-{name}"
    for name in (
        "repositories",
        "tags",
        "manifests",
        "blobs",
        "blob-objects",
        "referrers",
        "accounts",
        "audit",
    )
}
ALL_TABLES = RETAINED_TABLES | {
    "stratus-dev-uploads",
    "stratus-dev-v1-images",
    "stratus-dev-gc-candidates",
}
BUCKET = f"stratus-dev-blobs-{ACCOUNT}"
PARAMETERS = {"/stratus/dev/signing-keys", "/stratus/dev/admin-password"}


@dataclass
class Stage:
    """One moto server (the account) and one copy of the project deployed to it."""

    endpoint: str
    project: Path
    log: Path

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client(service, endpoint_url=self.endpoint)

    def deploy(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`python -m infra.deploy ARGS --stage dev` as an operator runs it, on moto."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.pop("STRATUS_RECORD_AWS_CALLS", None)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
        )
        done = subprocess.run(
            [sys.executable, "-m", "infra.deploy", *args, "--stage", "dev"],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def tables(self) -> set[str]:
        return set(self.client("dynamodb").list_tables()["TableNames"])

    def buckets(self) -> set[str]:
        return {b["Name"] for b in self.client("s3").list_buckets()["Buckets"]}

    def parameters(self) -> set[str]:
        return {p["Name"] for p in self.client("ssm").describe_parameters()["Parameters"]}

    def functions(self) -> dict[str, dict]:
        return {f["FunctionName"]: f for f in self.client("lambda").list_functions()["Functions"]}


def _copy_project(target: Path) -> Path:
    """The files `chalice deploy` reads, and .chalice/ without any deployed state (its cache
    of dependency zips, keyed by requirements.txt, comes along: it only saves time)."""
    ignore = shutil.ignore_patterns("__pycache__", "deployed")
    for name in PROJECT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy(source, target / name)
    shutil.copytree(ROOT / ".chalice", target / ".chalice", ignore=ignore)
    return target


StageFactory = Callable[[], Stage]
Deployed = tuple[Stage, str]  # the stage, and what `up` printed


@pytest.fixture(scope="module")
def stage_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StageFactory]:
    """Fresh stages (each its own moto server), stopped when the module ends."""
    started: list[servers.Server] = []

    def make() -> Stage:
        tmp = tmp_path_factory.mktemp("stage")
        moto = servers.start_moto(tmp)
        started.append(moto)
        project = tmp / "project"
        project.mkdir()
        return Stage(moto.url, _copy_project(project), moto.log)

    yield make
    for moto in started:
        moto.stop()


@pytest.fixture(scope="module")
def deployed(stage_factory: StageFactory) -> Deployed:
    """A dev stage after `up`, and what `up` printed."""
    stage = stage_factory()
    return stage, stage.deploy("up").stdout


def _outputs(stage: Stage) -> dict[str, str]:
    stack = stage.client("cloudformation").describe_stacks(StackName="stratus-dev-storage")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0]["Outputs"]}


def test_deploy_up_creates_the_stacks_tables_and_bucket(deployed: Deployed) -> None:
    stage, _ = deployed
    assert stage.tables() == ALL_TABLES
    assert stage.buckets() == {BUCKET}
    assert _outputs(stage)["Bucket"] == BUCKET


def test_deploy_up_stores_the_secrets_and_prints_the_admin_password_once(
    deployed: Deployed,
) -> None:
    stage, printed = deployed
    assert stage.parameters() == PARAMETERS
    ssm = stage.client("ssm")
    stored = ssm.get_parameter(Name="/stratus/dev/admin-password", WithDecryption=True)
    assert stored["Parameter"]["Type"] == "SecureString"
    shown = re.search(r"bootstrap admin: admin / (\S+)", printed)
    assert shown and shown.group(1) == stored["Parameter"]["Value"]
    ring = ssm.get_parameter(Name="/stratus/dev/signing-keys", WithDecryption=True)
    assert "PRIVATE KEY" in ring["Parameter"]["Value"]


def test_deploy_up_creates_functions_with_their_environment(deployed: Deployed) -> None:
    stage, _ = deployed
    functions = stage.functions()
    assert set(functions) == set(FUNCTIONS)
    for name, (handler, _) in FUNCTIONS.items():
        function = functions[name]
        env = function["Environment"]["Variables"]
        assert function["Handler"] == handler, name
        assert function["TracingConfig"]["Mode"] == "Active", name
        assert env["STRATUS_TABLE_PREFIX"] == "stratus-dev-", name
        assert env["STRATUS_BUCKET"] in stage.buckets(), name
        assert env["STRATUS_VERIFY_FUNCTION"] in functions, name
        assert {
            env["STRATUS_SIGNING_KEY_PARAMETER"],
            env["STRATUS_ADMIN_PASSWORD_PARAMETER"],
        } == stage.parameters(), name
        assert env["STRATUS_AUTH"] == "1", name
        assert env["STRATUS_MAX_REQUEST_BYTES"] == "4500000", name


def test_deploy_up_schedules_cleanup(deployed: Deployed) -> None:
    stage, _ = deployed
    events = stage.client("events")
    rules = events.list_rules()["Rules"]
    assert [(r["Name"], r["ScheduleExpression"]) for r in rules] == [
        ("stratus-dev-cleanup-event", "rate(60 minutes)")
    ]
    targets = events.list_targets_by_rule(Rule="stratus-dev-cleanup-event")["Targets"]
    assert [t["Arn"] for t in targets] == [stage.functions()["stratus-dev-cleanup"]["FunctionArn"]]


def test_deploy_up_maps_the_streams_and_the_segment_queue_to_their_functions(
    deployed: Deployed,
) -> None:
    stage, _ = deployed
    functions = stage.functions()
    mappings = stage.client("lambda").list_event_source_mappings()["EventSourceMappings"]
    by_function = {m["FunctionArn"]: m["EventSourceArn"] for m in mappings}
    dynamodb = stage.client("dynamodb")
    for function, table in (("tag_changes", "tags"), ("manifest_changes", "manifests")):
        stream = dynamodb.describe_table(TableName=f"stratus-dev-{table}")["Table"]
        arn = functions[f"stratus-dev-{function}"]["FunctionArn"]
        assert by_function[arn] == stream["LatestStreamArn"], function
    segment = functions["stratus-dev-gc_segment"]["FunctionArn"]
    assert by_function[segment].endswith(":stratus-dev-gc-segments")
    env = functions["stratus-dev-cleanup"]["Environment"]["Variables"]
    assert env["STRATUS_GC_SEGMENT_QUEUE"].endswith("/stratus-dev-gc-segments")


def test_deploy_up_gives_each_role_exactly_its_generated_policy(deployed: Deployed) -> None:
    stage, _ = deployed
    iam = stage.client("iam")
    for name, (_, policy) in FUNCTIONS.items():
        role = stage.functions()[name]["Role"].rsplit("/", 1)[1]
        inline = iam.list_role_policies(RoleName=role)["PolicyNames"]
        documents = [
            iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"] for p in inline
        ]
        assert documents == [policy], name
        assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == [], name


def test_each_functions_role_may_write_its_own_log_group(deployed: Deployed) -> None:
    stage, _ = deployed
    iam = stage.client("iam")
    for name, function in stage.functions().items():
        role = function["Role"].rsplit("/", 1)[1]
        (policy,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        statements = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        stream = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/{name}:log-stream:x"
        logs = [s for s in statements["Statement"] if "logs:PutLogEvents" in s["Action"]]
        patterns = [
            r
            for s in logs
            for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
        ]
        assert any(fnmatch.fnmatchcase(stream, pattern) for pattern in patterns), name


def test_deploy_up_routes_the_api_to_the_api_function(deployed: Deployed) -> None:
    stage, _ = deployed
    apigateway = stage.client("apigateway")
    (api,) = apigateway.get_rest_apis()["items"]
    resources = {r["path"]: r["id"] for r in apigateway.get_resources(restApiId=api["id"])["items"]}
    assert {"/v2", "/v2/{proxy+}", "/api/v1/{proxy+}", "/v1/{proxy+}"} <= set(resources)
    integration = apigateway.get_integration(
        restApiId=api["id"], resourceId=resources["/v2/{proxy+}"], httpMethod="PUT"
    )
    assert stage.functions()[API_FUNCTION]["FunctionArn"] in integration["uri"]
    assert [s["stageName"] for s in apigateway.get_stages(restApiId=api["id"])["item"]] == ["api"]


def test_deploy_up_again_upgrades_in_place_without_a_new_password(deployed: Deployed) -> None:
    stage, _ = deployed
    before = {name: f["FunctionArn"] for name, f in stage.functions().items()}
    printed = stage.deploy("up").stdout
    assert "bootstrap admin" not in printed
    assert {name: f["FunctionArn"] for name, f in stage.functions().items()} == before


def test_deploy_from_a_checkout_without_the_deployment_record_refuses(
    deployed: Deployed, tmp_path: Path
) -> None:
    stage, _ = deployed
    elsewhere = Stage(stage.endpoint, _copy_project(tmp_path), stage.log)
    apis = stage.client("apigateway").get_rest_apis()["items"]
    for command in ("up", "down"):
        refused = elsewhere.deploy(command, check=False)
        assert refused.returncode != 0, command
        assert ".chalice/deployed/dev.json" in refused.stderr, command
    assert stage.client("apigateway").get_rest_apis()["items"] == apis  # no second API
    assert set(stage.functions()) == set(FUNCTIONS)


def test_deploy_down_removes_the_app_and_keeps_the_data(stage_factory: StageFactory) -> None:
    stage = stage_factory()
    stage.deploy("up")
    stage.client("s3").put_object(Bucket=BUCKET, Key="blobs/sha256/x", Body=b"kept")
    stage.deploy("down")
    assert stage.functions() == {}
    assert stage.client("apigateway").get_rest_apis()["items"] == []
    assert stage.client("events").list_rules()["Rules"] == []
    assert stage.client("lambda").list_event_source_mappings()["EventSourceMappings"] == []
    roles = [r["RoleName"] for r in stage.client("iam").list_roles()["Roles"]]
    assert [r for r in roles if r.startswith("stratus-dev")] == []
    assert stage.client("cloudformation").describe_stacks()["Stacks"] == []
    assert stage.tables() == RETAINED_TABLES
    assert stage.parameters() == PARAMETERS
    kept = stage.client("s3").get_object(Bucket=BUCKET, Key="blobs/sha256/x")
    assert kept["Body"].read() == b"kept"
    # A new stack cannot create tables that exist: `up` says so instead of failing halfway.
    refused = stage.deploy("up", check=False)
    assert refused.returncode != 0
    assert "stratus-dev-tags" in refused.stderr and "--delete-data" in refused.stderr
    # The retained data can still be deleted once the stack is gone.
    stage.deploy("down", "--delete-data")
    assert (stage.tables(), stage.buckets(), stage.parameters()) == (set(), set(), set())


def test_deploy_down_with_delete_data_deletes_the_data(stage_factory: StageFactory) -> None:
    stage = stage_factory()
    stage.deploy("up")
    s3 = stage.client("s3")
    s3.put_object(Bucket=BUCKET, Key="blobs/sha256/x", Body=b"one")
    s3.put_object(Bucket=BUCKET, Key="blobs/sha256/x", Body=b"two")  # a noncurrent version
    stage.deploy("down", "--delete-data")
    assert stage.functions() == {}
    assert (stage.tables(), stage.buckets(), stage.parameters()) == (set(), set(), set())
