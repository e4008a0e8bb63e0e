"""Deploy or tear down a Stratus stage: `python -m infra.deploy up|down|rotate-key --stage dev`.

`up` runs, in order: the infra stack (infra/stratus.yaml: tables, bucket), the SSM
SecureStrings CloudFormation cannot create (the signing key ring, the bootstrap admin's
password, generated when missing), the stage's configuration from the stack's outputs
(.chalice/config.json), then `chalice deploy` without the code Lambda never runs
(infra/package.py).
Re-running it upgrades in place. `down` deletes the Chalice app and the stack; tables,
bucket and secrets are retained (DeletionPolicy) unless `--delete-data` is given, for dev
only (also after a plain `down`). `up` refuses to start over retained tables: CloudFormation
cannot create a stack whose tables already exist (docs/operations.md, "Take a stage down").
`rotate-key` puts a new signing key first in the ring and keeps the old ones (docs/auth.md).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "stratus.yaml"
CONFIG = ROOT / ".chalice" / "config.json"


def stack_name(stage: str) -> str:
    return f"stratus-{stage}-storage"


def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("cloudformation"), boto3.client("ssm")


def deploy_stack(cloudformation: Any, stage: str) -> dict[str, str]:
    """Create or update the infra stack; its outputs by key."""
    name = stack_name(stage)
    arguments = {
        "StackName": name,
        "TemplateBody": TEMPLATE.read_text(),
        "Parameters": [{"ParameterKey": "Stage", "ParameterValue": stage}],
    }
    try:
        cloudformation.describe_stacks(StackName=name)
        exists = True
    except cloudformation.exceptions.ClientError:
        exists = False
    if exists:
        try:
            cloudformation.update_stack(**arguments)
            cloudformation.get_waiter("stack_update_complete").wait(StackName=name)
        except cloudformation.exceptions.ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
    else:
        cloudformation.create_stack(**arguments)
        cloudformation.get_waiter("stack_create_complete").wait(StackName=name)
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def _put_secret(ssm: Any, name: str, value: str, overwrite: bool = False) -> None:
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=overwrite)


def ensure_secrets(ssm: Any, outputs: dict[str, str]) -> str | None:
    """The key ring and admin password, created once; the new password, to show once."""
    from chalicelib.auth.keys import new_private_pem

    try:
        ssm.get_parameter(Name=outputs["SigningKeyParameter"])
    except ssm.exceptions.ParameterNotFound:
        _put_secret(ssm, outputs["SigningKeyParameter"], new_private_pem())
    try:
        ssm.get_parameter(Name=outputs["AdminPasswordParameter"])
    except ssm.exceptions.ParameterNotFound:
        password = secrets.token_urlsafe(24)
        _put_secret(ssm, outputs["AdminPasswordParameter"], password)
        return password
    return None


def stage_environment(outputs: dict[str, str]) -> dict[str, str]:
    """The stage's variables that come from the stack."""
    return {
        "STRATUS_TABLE_PREFIX": outputs["TablePrefix"],
        "STRATUS_BUCKET": outputs["Bucket"],
        "STRATUS_SIGNING_KEY_PARAMETER": outputs["SigningKeyParameter"],
        "STRATUS_ADMIN_PASSWORD_PARAMETER": outputs["AdminPasswordParameter"],
        "STRATUS_GC_SEGMENT_QUEUE": outputs["GcSegmentQueueUrl"],
        "STRATUS_WEBHOOK_QUEUE": outputs["WebhookQueueUrl"],
        "STRATUS_WEBHOOK_DEAD_LETTER_QUEUE": outputs["WebhookDeadLetterQueueUrl"],
        "STRATUS_WEBHOOK_SECRET_PREFIX": outputs["WebhookSecretPrefix"],
    }


def deploy_environment(outputs: dict[str, str]) -> dict[str, str]:
    """What `chalice deploy` reads from the stack while it imports app.py: the event
    sources of the stream and segment functions."""
    return {
        "STRATUS_TAGS_STREAM_ARN": outputs["TagsStreamArn"],
        "STRATUS_MANIFESTS_STREAM_ARN": outputs["ManifestsStreamArn"],
        "STRATUS_GC_SEGMENT_QUEUE_NAME": outputs["GcSegmentQueueName"],
        "STRATUS_WEBHOOK_QUEUE_NAME": outputs["WebhookQueueName"],
        "STRATUS_AUDIT_STREAM_ARN": outputs["AuditStreamArn"],
    }


# The audit export's settings: given to `up` in its environment, kept in the stage's
# configuration, and read by `chalice deploy` too (the export's function exists only on).
AUDIT_EXPORT = (
    "STRATUS_AUDIT_EXPORT",
    "STRATUS_AUDIT_EXPORT_BUCKET",
    "STRATUS_AUDIT_EXPORT_PREFIX",
)


def audit_export_environment(stage: str, path: Path = CONFIG) -> dict[str, str]:
    """The stage's audit export settings, as its configuration holds them."""
    env = json.loads(path.read_text())["stages"][stage].get("environment_variables", {})
    return {name: env[name] for name in AUDIT_EXPORT if name in env}


def configure_stage(stage: str, outputs: dict[str, str], path: Path = CONFIG) -> None:
    """Write the stack's outputs into the stage's environment in .chalice/config.json."""
    config = json.loads(path.read_text())
    env = config["stages"][stage].setdefault("environment_variables", {})
    env.update(stage_environment(outputs))
    env.update({name: os.environ[name] for name in AUDIT_EXPORT if name in os.environ})
    path.write_text(json.dumps(config, indent=2) + "\n")


def rotate_key(ssm: Any, stage: str, keep: int = 2) -> str:
    """A new signing key first; the newest `keep - 1` old keys stay to verify live tokens."""
    from chalicelib.auth.keys import new_private_pem, parse_ring, pem_blocks

    name = f"/stratus/{stage}/signing-keys"
    current = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    old = pem_blocks(current)[: keep - 1]
    ring_text = "\n".join([new_private_pem(), *old]) + "\n"
    parse_ring(ring_text)  # never write a ring the registry could not read
    _put_secret(ssm, name, ring_text, overwrite=True)
    return parse_ring(ring_text).signing.kid


def _chalice(*args: str, env: dict[str, str]) -> None:
    """Chalice, packaging only what Lambda runs (infra/package.py)."""
    command = [sys.executable, "-m", "infra.package", *args]
    subprocess.run(command, cwd=ROOT, env=env, check=True)


def retained_tables(cloudformation: Any, stage: str) -> list[str]:
    """The stage's tables left by `down` when no stack holds them (empty while one does)."""
    import boto3

    try:
        cloudformation.describe_stacks(StackName=stack_name(stage))
        return []
    except cloudformation.exceptions.ClientError:
        pass
    prefix = f"stratus-{stage}-"
    pages = boto3.client("dynamodb").get_paginator("list_tables").paginate()
    return [t for page in pages for t in page["TableNames"] if t.startswith(prefix)]


def check_deployment_record(stage: str) -> None:
    """Refuse to deploy or delete the app from a checkout without Chalice's record of it
    (.chalice/deployed/<stage>.json) while the app exists: `chalice deploy` would create a
    second API beside it, and `chalice delete` would leave it in place."""
    import boto3

    if (CONFIG.parent / "deployed" / f"{stage}.json").exists():
        return
    functions = boto3.client("lambda")
    try:
        functions.get_function(FunctionName=f"stratus-{stage}")
    except functions.exceptions.ResourceNotFoundException:
        return
    sys.exit(
        f"stage {stage} is deployed, but .chalice/deployed/{stage}.json is not here: copy it "
        "from the checkout that deployed it (docs/operations.md, Deploy)"
    )


def up(stage: str) -> None:
    check_deployment_record(stage)
    cloudformation, ssm = _clients()
    retained = retained_tables(cloudformation, stage)
    if retained:
        sys.exit(
            f"{', '.join(retained)} remain from an earlier `down` and a new stack cannot "
            f"create them: import them into a stack or delete them (`down --stage {stage} "
            "--delete-data`); docs/operations.md, Take a stage down"
        )
    outputs = deploy_stack(cloudformation, stage)
    password = ensure_secrets(ssm, outputs)
    configure_stage(stage, outputs)
    deploying = {**deploy_environment(outputs), **audit_export_environment(stage)}
    _chalice("deploy", "--stage", stage, env={**os.environ, **deploying})
    if password:
        print(
            f"bootstrap admin: admin / {password} (stored in {outputs['AdminPasswordParameter']})"
        )


def stage_resources(cloudformation: Any, stage: str) -> dict[str, str]:
    """The stack's outputs; once the stack is gone (an earlier `down`), the names the
    template gives them, so `down --delete-data` still finds the data it retained."""
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name(stage))["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    except cloudformation.exceptions.ClientError:
        import boto3

        account = boto3.client("sts").get_caller_identity()["Account"]
        return {
            "TablePrefix": f"stratus-{stage}-",
            "Bucket": f"stratus-{stage}-blobs-{account}",
            "SigningKeyParameter": f"/stratus/{stage}/signing-keys",
            "AdminPasswordParameter": f"/stratus/{stage}/admin-password",
        }


def delete_data(resources: dict[str, str]) -> None:
    """The bucket (every version), the stage's tables and its secrets: dev only."""
    import boto3

    s3 = boto3.resource("s3")
    bucket = s3.Bucket(resources["Bucket"])
    if bucket.name in {b.name for b in s3.buckets.all()}:
        bucket.object_versions.delete()
        bucket.delete()
    dynamodb = boto3.client("dynamodb")
    for page in dynamodb.get_paginator("list_tables").paginate():
        for table in page["TableNames"]:
            if table.startswith(resources["TablePrefix"]):
                dynamodb.delete_table(TableName=table)
    names = [resources["SigningKeyParameter"], resources["AdminPasswordParameter"]]
    boto3.client("ssm").delete_parameters(Names=names)


def down(stage: str, delete_data_too: bool) -> None:
    check_deployment_record(stage)
    _chalice("delete", "--stage", stage, env=dict(os.environ))
    cloudformation, _ = _clients()
    resources = stage_resources(cloudformation, stage)
    cloudformation.delete_stack(StackName=stack_name(stage))
    cloudformation.get_waiter("stack_delete_complete").wait(StackName=stack_name(stage))
    if delete_data_too and stage != "prod":
        delete_data(resources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infra.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "rotate-key"])
    parser.add_argument("--stage", required=True, choices=["dev", "prod"])
    parser.add_argument("--delete-data", action="store_true", help="down: also tables, bucket")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args.stage)
    elif args.command == "down":
        down(args.stage, args.delete_data)
    else:
        print("new signing key:", rotate_key(_clients()[1], args.stage))
    return 0


if __name__ == "__main__":
    sys.exit(main())
