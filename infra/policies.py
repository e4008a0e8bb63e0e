"""The stages' IAM policies, generated: `python -m infra.policies` writes .chalice/policy-*.json.

Least privilege: each function gets only the actions its code makes (tests/unit/
test_iam_policy.py records the calls and checks them against these), on only its stage's
tables, indexes, streams, bucket and parameters. The request handlers cannot Scan or list
the bucket; only the cleanup functions can.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypedDict

STAGES = ("dev", "prod")
CHALICE = Path(__file__).resolve().parents[1] / ".chalice"

# API operations -> IAM actions, for the recorded-calls check.
S3_ACTIONS = {
    "GetObject": ["s3:GetObject"],
    "HeadObject": ["s3:GetObject"],
    "PutObject": ["s3:PutObject"],
    "CopyObject": ["s3:GetObject", "s3:PutObject"],
    "CreateMultipartUpload": ["s3:PutObject"],
    "UploadPart": ["s3:PutObject"],
    "UploadPartCopy": ["s3:GetObject", "s3:PutObject"],
    "CompleteMultipartUpload": ["s3:PutObject"],
    "AbortMultipartUpload": ["s3:AbortMultipartUpload"],
    "ListParts": ["s3:ListMultipartUploadParts"],
    "DeleteObject": ["s3:DeleteObject"],
    "DeleteObjects": ["s3:DeleteObject"],
    "ListObjectsV2": ["s3:ListBucket"],
    "ListMultipartUploads": ["s3:ListBucketMultipartUploads"],
}
OTHER_ACTIONS = {
    ("ssm", "GetParameter"): ["ssm:GetParameter"],
    ("ssm", "PutParameter"): ["ssm:PutParameter"],
    ("ssm", "DeleteParameter"): ["ssm:DeleteParameter"],
    ("lambda", "Invoke"): ["lambda:InvokeFunction"],
    ("events", "PutEvents"): ["events:PutEvents"],
    ("sqs", "ReceiveMessage"): ["sqs:ReceiveMessage"],
    ("sqs", "DeleteMessage"): ["sqs:DeleteMessage"],
    ("sqs", "ChangeMessageVisibility"): ["sqs:ChangeMessageVisibility"],
    ("sqs", "GetQueueUrl"): ["sqs:GetQueueUrl"],
    ("sqs", "SendMessage"): ["sqs:SendMessage"],
    ("sqs", "SendMessageBatch"): ["sqs:SendMessage"],
}

API_DYNAMODB = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
]
API_S3_OBJECTS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
]


# "Sid", "Effect", "Action", "Resource": a string or a list of them each.
PolicyStatement = dict[str, str | list[str]]


class Policy(TypedDict):
    Version: str
    Statement: list[PolicyStatement]


def _allow(sid: str, actions: list[str], resource: str | list[str]) -> PolicyStatement:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


def _tables(stage: str) -> list[str]:
    base = f"arn:aws:dynamodb:*:*:table/stratus-{stage}-*"
    return [base, base + "/index/*"]


def _bucket(stage: str) -> str:
    return f"arn:aws:s3:::stratus-{stage}-blobs-*"


def _common(stage: str, dynamodb: list[str]) -> list[PolicyStatement]:
    """Logs, traces, the stage's tables and its blob objects: what every function needs.

    TransactWriteItems is authorized per item action (PutItem, UpdateItem, DeleteItem,
    ConditionCheckItem), as DynamoDB documents; X-Ray has no resource-level permissions.
    """
    return [
        _allow(
            "Logs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [
                # Chalice names the API's function after the stage alone, the others after
                # the stage and their own name.
                f"arn:aws:logs:*:*:log-group:/aws/lambda/stratus-{stage}:*",
                f"arn:aws:logs:*:*:log-group:/aws/lambda/stratus-{stage}-*",
            ],
        ),
        _allow("Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
        _allow("Metadata", dynamodb, _tables(stage)),
        _allow("Blobs", API_S3_OBJECTS, _bucket(stage) + "/*"),
    ]


def api_policy(stage: str) -> Policy:
    """The request handlers, verify_upload and proxycache_copy."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *_common(stage, API_DYNAMODB),
            _allow(
                "SigningKeysAndBootstrapAdmin",
                ["ssm:GetParameter"],
                f"arn:aws:ssm:*:*:parameter/stratus/{stage}/*",
            ),
            _allow(
                "ProxyCacheCredentials",
                ["ssm:PutParameter", "ssm:DeleteParameter"],
                f"arn:aws:ssm:*:*:parameter/stratus/{stage}/proxycache/*",
            ),
            # Webhook secrets are written and deleted with their webhook; test deliveries
            # are queued by the API (chalicelib/events/webhooks.py).
            _allow(
                "WebhookSecrets",
                ["ssm:PutParameter", "ssm:DeleteParameter"],
                _webhook_secrets(stage),
            ),
            _allow(
                "WebhookTestDeliveries",
                ["sqs:SendMessage", "sqs:GetQueueUrl"],
                f"arn:aws:sqs:*:*:stratus-{stage}-webhooks",
            ),
            _allow(
                "AsynchronousVerifyAndCopy",
                ["lambda:InvokeFunction"],
                [
                    f"arn:aws:lambda:*:*:function:stratus-{stage}-verify_upload",
                    f"arn:aws:lambda:*:*:function:stratus-{stage}-proxycache_copy",
                ],
            ),
        ],
    }


def _webhook_queues(stage: str) -> list[str]:
    return [
        f"arn:aws:sqs:*:*:stratus-{stage}-webhooks",
        f"arn:aws:sqs:*:*:stratus-{stage}-webhooks-dead",
    ]


def _webhook_secrets(stage: str) -> str:
    return f"arn:aws:ssm:*:*:parameter/stratus/{stage}/webhooks/*"


def _registry_events(stage: str) -> PolicyStatement:
    """Registry events on the account's default bus or the stage's own (STRATUS_EVENT_BUS
    names one called `stratus-<stage>-...`; docs/events.md)."""
    return _allow(
        "RegistryEvents",
        ["events:PutEvents"],
        [
            "arn:aws:events:*:*:event-bus/default",
            f"arn:aws:events:*:*:event-bus/stratus-{stage}-*",
        ],
    )


def cleanup_policy(stage: str) -> Policy:
    """The scheduled cleanup, its backstop segments and the tables' stream consumer: scans,
    bucket listings, the streams, the segment queue and registry events too."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            *_common(stage, [*API_DYNAMODB, "dynamodb:Scan"]),
            _registry_events(stage),
            # Webhook deliveries: queued by the stream consumer, received (by Lambda's
            # mapping) and retried or dead-lettered by the webhooks function, which reads
            # the webhooks' secrets (chalicelib/events/deliveries.py).
            _allow(
                "WebhookDeliveries",
                [
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueUrl",
                ],
                _webhook_queues(stage),
            ),
            _allow("WebhookSecretReading", ["ssm:GetParameter"], _webhook_secrets(stage)),
            _allow(
                "BucketListing",
                ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
                _bucket(stage),
            ),
            # Lambda's event source mappings read the tags and manifests streams as the
            # stream functions' role; ListStreams has no resource-level permissions.
            _allow(
                "TableStreams",
                ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                [
                    f"arn:aws:dynamodb:*:*:table/stratus-{stage}-tags/stream/*",
                    f"arn:aws:dynamodb:*:*:table/stratus-{stage}-manifests/stream/*",
                ],
            ),
            _allow("StreamListing", ["dynamodb:ListStreams"], "*"),
            # The backstop's segments: sent by the scheduled run and by a segment that
            # stopped in time, received (by Lambda's mapping) by the segment function.
            _allow(
                "GcSegmentQueue",
                [
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ChangeMessageVisibility",
                ],
                f"arn:aws:sqs:*:*:stratus-{stage}-gc-segments",
            ),
        ],
    }


def audit_export_objects(stage: str) -> str:
    """Where the audit export may write: its prefix in the stage's bucket, or in the bucket
    STRATUS_AUDIT_EXPORT_BUCKET names when the policies are generated (docs/events.md)."""
    bucket = os.environ.get("STRATUS_AUDIT_EXPORT_BUCKET") or f"stratus-{stage}-blobs-*"
    prefix = os.environ.get("STRATUS_AUDIT_EXPORT_PREFIX") or "audit/"
    return f"arn:aws:s3:::{bucket}/{prefix}*"


def audit_export_policy(stage: str) -> Policy:
    """The audit export (chalicelib/events/audit_export.py): the audit table's stream, read
    by Lambda's mapping, and new objects under the export prefix. No table item, no read,
    list or delete of any object."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            _allow(
                "Logs",
                ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                f"arn:aws:logs:*:*:log-group:/aws/lambda/stratus-{stage}-audit_export:*",
            ),
            _allow("Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
            _allow(
                "AuditStream",
                ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                f"arn:aws:dynamodb:*:*:table/stratus-{stage}-audit/stream/*",
            ),
            _allow("StreamListing", ["dynamodb:ListStreams"], "*"),
            _allow("AuditExportObjects", ["s3:PutObject"], audit_export_objects(stage)),
        ],
    }


def files() -> dict[Path, Policy]:
    out: dict[Path, Policy] = {}
    for stage in STAGES:
        out[CHALICE / f"policy-{stage}.json"] = api_policy(stage)
        out[CHALICE / f"policy-{stage}-cleanup.json"] = cleanup_policy(stage)
        out[CHALICE / f"policy-{stage}-audit-export.json"] = audit_export_policy(stage)
    return out


def render(policy: Policy) -> str:
    return json.dumps(policy, indent=2) + "\n"


if __name__ == "__main__":
    for path, policy in files().items():
        path.write_text(render(policy))
        print(f"wrote {path}")


def required_actions(service: str, operation: str) -> list[str]:
    """The IAM actions one API operation needs (unknown operations need a mapping here)."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return []  # authorized per item: PutItem, UpdateItem, DeleteItem, ConditionCheckItem
        if operation == "TransactGetItems":
            return ["dynamodb:GetItem"]
        return [f"dynamodb:{operation}"]
    if service == "s3":
        return S3_ACTIONS.get(operation, [f"s3:<unmapped {operation}>"])
    return OTHER_ACTIONS.get((service, operation), [f"{service}:<unmapped {operation}>"])


def missing(recorded: set[tuple[str, str, str]], stage: str = "dev") -> list[str]:
    """Recorded (role, service, operation) calls whose actions the stage's policy lacks."""
    policies = {
        "api": api_policy(stage),
        "cleanup": cleanup_policy(stage),
        "audit_export": audit_export_policy(stage),
    }
    allowed = {
        role: {action for s in policy["Statement"] for action in s["Action"]}
        for role, policy in policies.items()
    }
    gaps = []
    for role, service, operation in sorted(recorded):
        for action in required_actions(service, operation):
            if action not in allowed[role]:
                gaps.append(f"{role}: {service}.{operation} needs {action}")
    return gaps
