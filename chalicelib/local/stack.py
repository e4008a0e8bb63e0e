"""The AWS side of local mode: an embedded moto server, or whatever AWS_ENDPOINT_URL names."""

from __future__ import annotations

import os
import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(port: int | None = None) -> Any:
    """Start moto's server in this process and point boto3 (and pynamodb) at it."""
    import logging

    from moto.server import ThreadedMotoServer

    from chalicelib.local import moto_patches

    moto_patches.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "stratus-local",
        "AWS_SECRET_ACCESS_KEY": "stratus-local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    return server


def provision() -> None:
    """Create the bucket and tables if missing (AWS stages get them from infra/)."""
    from chalicelib import config
    from chalicelib.events import webhooks
    from chalicelib.storage import aws
    from chalicelib.storage.models import create_tables

    s3 = aws.s3()
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if config.settings.bucket not in existing:
        kwargs: dict[str, Any] = {"Bucket": config.settings.bucket}
        if config.settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": config.settings.region}
        s3.create_bucket(**kwargs)
    create_tables()
    webhooks.provision_local()
