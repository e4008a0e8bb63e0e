"""The stage body limit (`STRATUS_MAX_REQUEST_BYTES`): what API Gateway + Lambda refuse,
local mode refuses the same way, with an OCI error naming the limit, storing nothing."""

from __future__ import annotations

import boto3

from chalicelib import config
from tests.client import Client
from tests.images import sha256

OCTET = {"Content-Type": "application/octet-stream"}


def test_body_over_the_stage_limit_is_413_and_stores_nothing(client: Client, settings) -> None:
    settings(max_request_bytes=1000)
    data = b"x" * 1001
    answer = client.post(
        f"/v2/org/app/blobs/uploads/?digest={sha256(data)}", headers=OCTET, body=data
    )
    assert answer.status == 413
    (error,) = answer.json()["errors"]
    assert error["code"] == "SIZE_INVALID"
    assert error["detail"]["limit"] == 1000
    assert "1000" in error["message"]
    assert client.head(f"/v2/org/app/blobs/{sha256(data)}").status == 404
    listed = boto3.client("s3").list_objects_v2(Bucket=config.settings.bucket)
    assert listed.get("KeyCount", 0) == 0


def test_chunks_under_the_limit_still_upload_a_larger_blob(client: Client, settings) -> None:
    settings(max_request_bytes=1000)
    data = bytes(range(256)) * 10
    location = client.post("/v2/org/app/blobs/uploads/").header("Location")
    for offset in range(0, len(data), 1000):
        chunk = data[offset : offset + 1000]
        headers = {**OCTET, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        answer = client.patch(location, headers=headers, body=chunk)
        assert answer.status == 202
        location = answer.header("Location")
    assert client.put(f"{location}?digest={sha256(data)}").status == 201


def test_oversized_chunk_is_refused_and_the_session_is_unchanged(client: Client, settings) -> None:
    settings(max_request_bytes=100)
    location = client.post("/v2/org/app/blobs/uploads/").header("Location")
    answer = client.patch(location, headers=OCTET, body=b"y" * 101)
    assert answer.status == 413
    assert client.get(location).header("Range") == "0-0"


def test_without_a_limit_large_bodies_are_accepted(client: Client, settings) -> None:
    settings(max_request_bytes=0)
    data = b"z" * (7 * 1024 * 1024)
    answer = client.post(
        f"/v2/org/app/blobs/uploads/?digest={sha256(data)}", headers=OCTET, body=data
    )
    assert answer.status == 201
