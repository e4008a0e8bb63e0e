"""boto3 clients, created once per Lambda container on first use (keeps cold starts light)."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from chalicelib import config

if TYPE_CHECKING:
    from types_boto3_lambda import LambdaClient
    from types_boto3_s3 import S3Client
    from types_boto3_ssm import SSMClient


@cache
def s3() -> S3Client:
    import boto3
    from botocore.config import Config

    region = config.settings.region
    custom = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # Presigned URLs must be SigV4 against the regional endpoint: the global endpoint
    # redirects outside us-east-1, and a redirect would break the signature.
    endpoint = custom or f"https://s3.{region}.amazonaws.com"
    addressing: Literal["path", "virtual"] = "path" if custom else "virtual"
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing},
            retries={"mode": "standard", "max_attempts": 4},
        ),
    )


@cache
def lambda_client() -> LambdaClient:
    """For the asynchronous verification of large direct uploads."""
    import boto3

    return boto3.client("lambda", region_name=config.settings.region)


@cache
def sqs() -> Any:
    """The webhook deliveries' and the collector's backstop segments' queues."""
    import boto3

    return boto3.client("sqs", region_name=config.settings.region)


@cache
def ssm() -> SSMClient:
    """The signing keys and the bootstrap admin password live in Parameter Store."""
    import boto3

    return boto3.client("ssm", region_name=config.settings.region)


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def put_if_absent(key: str, body: bytes) -> bool:
    """PutObject with `If-None-Match: *`: True if written, False if the key already held an
    object. S3 answers 409 while another conditional write of the key is in flight; the
    loser retries, then meets the winner's object."""
    import time

    from botocore.exceptions import ClientError

    from chalicelib.storage.errors import Contention

    for attempt in range(4):
        try:
            s3().put_object(Bucket=config.settings.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except ClientError as exc:
            code = _error_code(exc)
            if code == "PreconditionFailed":
                return False
            if code != "ConditionalRequestConflict":
                raise
        time.sleep(0.05 * (attempt + 1))
    raise Contention({"reason": "concurrent writes of this object; retry"})


def object_exists(key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3().head_object(Bucket=config.settings.bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
