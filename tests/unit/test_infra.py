"""Deployment, checked offline: the infra template and `chalice package` output pass cfn-lint,
the template's tables are the models' tables, and the deploy tool's steps work on moto."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from pynamodb.attributes import TTLAttribute

from chalicelib.storage.models import ALL_MODELS
from infra import deploy, policies

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "stratus.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (`!Sub`, `!If`...) read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *map(str, paths)],
        capture_output=True,
        text=True,
    )


def test_infra_template_passes_cfn_lint() -> None:
    done = cfn_lint(TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_chalice_package_for_each_stage_passes_cfn_lint(stage: str, tmp_path: Path) -> None:
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(Path.home()),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "chalice"),
            "package",
            "--stage",
            stage,
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sam = tmp_path / "out" / "sam.json"
    linted = cfn_lint(sam)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    resources = json.loads(sam.read_text())["Resources"]
    api = resources["RestAPI"]["Properties"]["DefinitionBody"]
    assert api["x-amazon-apigateway-binary-media-types"] == ["*/*"]
    assert resources["APIHandler"]["Properties"]["Tracing"] == "Active"
    assert {"Cleanup", "VerifyUpload"} <= set(resources)
    # Our least-privilege policies, not Chalice's generated ones.
    role = resources["ApiHandlerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert role == policies.api_policy(stage)
    cleanup_role = resources["CleanupRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert cleanup_role == policies.cleanup_policy(stage)
    # The stream consumer and the collector's backstop segments, with the cleanup's role.
    for function in ("TagChanges", "ManifestChanges", "GcSegment"):
        role = resources[f"{function}Role"]["Properties"]["Policies"][0]["PolicyDocument"]
        assert role == policies.cleanup_policy(stage), function
    (stream,) = resources["TagChanges"]["Properties"]["Events"].values()
    assert stream["Type"] == "DynamoDB"
    (segments,) = resources["GcSegment"]["Properties"]["Events"].values()
    assert (segments["Type"], segments["Properties"]["BatchSize"]) == ("SQS", 1)
    if stage == "prod":
        assert "ApiGatewayCustomDomain" in resources


def test_policy_files_are_generated_from_infra_policies() -> None:
    for path, policy in policies.files().items():
        assert path.read_text() == policies.render(policy), f"run python -m infra.policies ({path})"


def test_policy_check_reports_a_call_without_permission() -> None:
    assert policies.missing({("api", "dynamodb", "Scan")}) == [
        "api: dynamodb.Scan needs dynamodb:Scan"
    ]
    assert policies.missing({("cleanup", "dynamodb", "Scan")}) == []
    assert policies.missing({("api", "s3", "PutBucketPolicy")})


def test_only_the_stream_consumer_may_put_registry_events() -> None:
    assert policies.missing({("cleanup", "events", "PutEvents")}) == []
    assert policies.missing({("api", "events", "PutEvents")}) == [
        "api: events.PutEvents needs events:PutEvents"
    ]
    (statement,) = [
        s for s in policies.cleanup_policy("prod")["Statement"] if s["Sid"] == "RegistryEvents"
    ]
    assert statement["Resource"] == [
        "arn:aws:events:*:*:event-bus/default",
        "arn:aws:events:*:*:event-bus/stratus-prod-*",
    ]


def _key_schema(entries: list) -> list[tuple[str, str]]:
    return sorted((e["AttributeName"], e["KeyType"]) for e in entries)


def _indexes(entries: list | None) -> dict[str, tuple]:
    return {
        i["IndexName"]: (_key_schema(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in entries or []
    }


@pytest.fixture
def stack(aws: None) -> dict[str, str]:
    return deploy.deploy_stack(boto3.client("cloudformation"), "dev")


def test_infra_tables_match_the_models(stack: dict[str, str]) -> None:
    dynamodb = boto3.client("dynamodb")
    resources = template()["Resources"]
    ttl_in_template = {  # by logical name: table names are !Sub expressions
        name: (r["Properties"].get("TimeToLiveSpecification") or {}).get("AttributeName")
        for name, r in resources.items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    assert stack["TablePrefix"] == "stratus-dev-"
    for model in ALL_MODELS:
        suffix = model.Meta.table_name.removeprefix("stratus-")
        table = dynamodb.describe_table(TableName=f"stratus-dev-{suffix}")["Table"]
        schema = model._get_schema()
        assert _key_schema(table["KeySchema"]) == _key_schema(schema["key_schema"]), suffix
        expected_gsis = {
            i["index_name"]: (_key_schema(i["key_schema"]), i["projection"]["ProjectionType"])
            for i in schema["global_secondary_indexes"]
        }
        assert _indexes(table.get("GlobalSecondaryIndexes")) == expected_gsis, suffix
        expected_lsis = {
            i["index_name"]: (_key_schema(i["key_schema"]), i["projection"]["ProjectionType"])
            for i in schema["local_secondary_indexes"]
        }
        assert _indexes(table.get("LocalSecondaryIndexes")) == expected_lsis, suffix
        # moto does not apply TimeToLiveSpecification: compare with the template itself.
        ttl = {
            name
            for cls in (model, *model.__subclasses__())
            for name, attribute in cls.get_attributes().items()
            if isinstance(attribute, TTLAttribute)
        }
        logical = "".join(part.capitalize() for part in suffix.split("-")) + "Table"
        assert {ttl_in_template[logical]} - {None} == ttl, suffix


def test_bucket_is_private_encrypted_and_aborts_stale_multipart_uploads(stack) -> None:
    bucket = template()["Resources"]["BlobBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert "AbortIncompleteMultipartUpload" in rules["abort-incomplete-multipart-uploads"]
    assert stack["Bucket"].startswith("stratus-dev-blobs-")
    assert stack["Bucket"] in {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}


def test_deploy_creates_secrets_once_and_configures_the_stage(stack, tmp_path: Path) -> None:
    ssm = boto3.client("ssm")
    password = deploy.ensure_secrets(ssm, stack)
    assert password and len(password) >= 24
    assert deploy.ensure_secrets(ssm, stack) is None  # never overwritten
    stored = ssm.get_parameter(Name=stack["SigningKeyParameter"], WithDecryption=True)
    assert stored["Parameter"]["Type"] == "SecureString"
    config = tmp_path / "config.json"
    shutil.copy(ROOT / ".chalice" / "config.json", config)
    deploy.configure_stage("dev", stack, config)
    env = json.loads(config.read_text())["stages"]["dev"]["environment_variables"]
    assert env["STRATUS_BUCKET"] == stack["Bucket"]
    assert env["STRATUS_TABLE_PREFIX"] == "stratus-dev-"


def test_rotate_key_puts_a_new_key_first_and_keeps_the_previous(stack) -> None:
    from chalicelib.auth import keys

    ssm = boto3.client("ssm")
    deploy.ensure_secrets(ssm, stack)
    name = stack["SigningKeyParameter"]

    def ring():
        return keys.parse_ring(
            ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        )

    first = ring().signing.kid
    second = deploy.rotate_key(ssm, "dev")
    assert ring().signing.kid == second != first
    assert set(ring().by_kid) == {first, second}
    third = deploy.rotate_key(ssm, "dev")
    assert set(ring().by_kid) == {second, third}  # the oldest is dropped
