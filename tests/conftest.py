"""Test environment: never real AWS. Unit tests use moto in-process; integration tests
start the local server (with its own embedded moto) as a subprocess."""

from __future__ import annotations

import os

# Set before chalicelib is imported: settings and models read these once.
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_key] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
