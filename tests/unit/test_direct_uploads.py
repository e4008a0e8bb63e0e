"""The `_stratus` direct-upload extension and the chunk-length headers."""

from __future__ import annotations

import json

import boto3
import requests

from chalicelib import config
from tests.client import Client, follow_blob
from tests.images import sha256

MIB = 1024 * 1024


def direct_push(
    client: Client,
    repo: str,
    data: bytes,
    *,
    digest: str | None = None,
    part_size: int | None = None,
):
    query = f"size={len(data)}" + (f"&part_size={part_size}" if part_size else "")
    started = client.post(f"/v2/{repo}/_stratus/direct/uploads/?{query}")
    assert started.status == 201, started.body
    session = started.json()
    urls = client.get(f"{session['location']}?parts=1-{session['part_count']}").json()["parts"]
    parts = []
    for part in urls:
        begin = (part["number"] - 1) * session["part_size"]
        answer = requests.put(
            part["url"], data=data[begin : begin + session["part_size"]], timeout=30
        )
        assert answer.status_code == 200
        parts.append({"number": part["number"], "etag": answer.headers["ETag"]})
    return client.put(
        f"{session['location']}?digest={digest or sha256(data)}",
        body=json.dumps({"parts": parts}).encode(),
    )


def test_discover_lists_the_stratus_extension(client: Client) -> None:
    for path in ("/v2/_oci/ext/discover", "/v2/org/app/_oci/ext/discover"):
        (extension,) = client.get(path).json()["extensions"]
        assert extension["name"] == "_stratus" and extension["endpoints"]
        assert extension["url"]


def test_direct_upload_puts_parts_straight_into_s3_and_links_the_blob(client: Client) -> None:
    data = bytes(range(256)) * (12 * MIB // 256) + b"tail"
    answer = direct_push(client, "org/app", data, part_size=5 * MIB)
    assert answer.status == 201, answer.body
    assert answer.header("Docker-Content-Digest") == sha256(data)
    assert follow_blob(client, "org/app", sha256(data)) == data
    listed = boto3.client("s3").list_objects_v2(Bucket=config.settings.bucket, Prefix="uploads/")
    assert listed.get("KeyCount", 0) == 0


def test_direct_upload_with_wrong_digest_is_400_and_stores_nothing(client: Client) -> None:
    wrong = sha256(b"something else")
    answer = direct_push(client, "org/app", b"small payload", digest=wrong)
    assert (answer.status, answer.error_codes) == (400, ["DIGEST_INVALID"])
    assert client.head(f"/v2/org/app/blobs/{wrong}").status == 404
    assert client.head(f"/v2/org/app/blobs/{sha256(b'small payload')}").status == 404
    listed = boto3.client("s3").list_objects_v2(Bucket=config.settings.bucket)
    assert listed.get("KeyCount", 0) == 0


def test_direct_upload_completion_with_bad_parts_is_400(client: Client) -> None:
    started = client.post("/v2/org/app/_stratus/direct/uploads/?size=10").json()
    for body in (b"not json", b'{"parts": "x"}', b'{"parts": [{"number": 2, "etag": "e"}]}'):
        answer = client.put(f"{started['location']}?digest={sha256(b'x')}", body=body)
        assert (answer.status, answer.error_codes) == (400, ["BLOB_UPLOAD_INVALID"])
    bogus = json.dumps({"parts": [{"number": 1, "etag": '"nope"'}]}).encode()
    answer = client.put(f"{started['location']}?digest={sha256(b'x')}", body=bogus)
    assert answer.status == 400


def test_direct_upload_completion_with_numbers_that_are_not_integers_is_400(
    client: Client,
) -> None:
    """JSON's `true` and `1.0` compare equal to 1 in Python; S3 must never see them."""
    started = client.post("/v2/org/app/_stratus/direct/uploads/?size=10").json()
    for number in ("true", "1.0"):
        body = b'{"parts": [{"number": %s, "etag": "e"}]}' % number.encode()
        answer = client.put(f"{started['location']}?digest={sha256(b'x')}", body=body)
        assert (answer.status, answer.error_codes) == (400, ["BLOB_UPLOAD_INVALID"]), number


def test_direct_upload_completion_with_deeply_nested_json_is_400(client: Client) -> None:
    started = client.post("/v2/org/app/_stratus/direct/uploads/?size=10").json()
    deep = b"[" * 100_000 + b"]" * 100_000
    answer = client.put(f"{started['location']}?digest={sha256(b'x')}", body=deep)
    assert (answer.status, answer.error_codes) == (400, ["BLOB_UPLOAD_INVALID"])


def test_direct_upload_plans_parts_within_s3_limits(client: Client) -> None:
    huge = client.post(f"/v2/org/app/_stratus/direct/uploads/?size={5 * 1024**4}").json()
    assert huge["part_count"] <= 10_000 and huge["part_size"] <= 5 * 1024**3
    assert client.post("/v2/org/app/_stratus/direct/uploads/?size=-1").status == 400
    assert client.post("/v2/org/app/_stratus/direct/uploads/").status == 400
    too_big = client.post(f"/v2/org/app/_stratus/direct/uploads/?size={10_001 * 5 * 1024**3}")
    assert (too_big.status, too_big.error_codes) == (400, ["SIZE_INVALID"])
    urls = client.get(f"{huge['location']}?parts=1-1001")
    assert urls.status == 400


def test_direct_and_chunked_sessions_do_not_mix(client: Client) -> None:
    direct_location = client.post("/v2/org/app/_stratus/direct/uploads/?size=1").json()["location"]
    upload_id = direct_location.rsplit("/", 1)[1]
    answer = client.patch(f"/v2/org/app/blobs/uploads/{upload_id}", body=b"x")
    assert answer.status == 400
    chunked = client.post("/v2/org/app/blobs/uploads/").header("Docker-Upload-UUID")
    assert client.get(f"/v2/org/app/_stratus/direct/uploads/{chunked}").status == 404


def test_cancelled_direct_upload_is_gone(client: Client) -> None:
    location = client.post("/v2/org/app/_stratus/direct/uploads/?size=1").json()["location"]
    assert client.delete(location).status == 204
    assert client.get(location).status == 404


def test_disabled_extension_is_not_discovered_and_answers_404(client: Client, settings) -> None:
    settings(direct_uploads=False)
    assert client.get("/v2/org/app/_oci/ext/discover").json() == {"extensions": []}
    assert client.post("/v2/org/app/_stratus/direct/uploads/?size=1").status == 404


def test_upload_session_advertises_chunk_lengths(client: Client, settings) -> None:
    open_stage = client.post("/v2/org/app/blobs/uploads/")
    assert open_stage.header("OCI-Chunk-Min-Length") == str(5 * MIB)
    assert open_stage.header("OCI-Chunk-Max-Length") is None
    settings(max_request_bytes=4_500_000)
    aws_stage = client.post("/v2/org/app/blobs/uploads/")
    assert aws_stage.header("OCI-Chunk-Min-Length") == "4500000"
    assert aws_stage.header("OCI-Chunk-Max-Length") == "4500000"


def test_oversized_request_is_refused_with_the_ways_out(client: Client, settings) -> None:
    settings(max_request_bytes=100)
    answer = client.post(f"/v2/org/app/blobs/uploads/?digest={sha256(b'x' * 101)}", body=b"x" * 101)
    (error,) = answer.json()["errors"]
    assert "stratus push" in error["message"] and "chunks" in error["message"]
    assert "_stratus/direct/uploads" in error["detail"]["hint"]


def poll(client: Client, location: str, deadline: float = 20.0):
    import time

    started = time.monotonic()
    while time.monotonic() - started < deadline:
        answer = client.get(location)
        if answer.status != 202:
            return answer
        time.sleep(0.05)
    raise AssertionError("verification did not finish")


def test_large_direct_upload_is_verified_asynchronously_then_linked(
    client: Client, settings
) -> None:
    settings(sync_verify_bytes=10)
    data = b"larger than the synchronous threshold" * 10
    answer = direct_push(client, "org/app", data)
    assert answer.status == 202
    location = answer.header("Location")
    assert answer.json()["state"] == "verifying"
    done = poll(client, location)
    assert done.status == 201
    assert done.header("Docker-Content-Digest") == sha256(data)
    assert follow_blob(client, "org/app", sha256(data)) == data


def test_asynchronous_verification_reports_a_wrong_digest(client: Client, settings) -> None:
    settings(sync_verify_bytes=10)
    wrong = sha256(b"not these bytes")
    answer = direct_push(client, "org/app", b"x" * 100, digest=wrong)
    assert answer.status == 202
    failed = poll(client, answer.header("Location"))
    assert (failed.status, failed.error_codes) == (400, ["DIGEST_INVALID"])
    assert client.head(f"/v2/org/app/blobs/{sha256(b'x' * 100)}").status == 404
    listed = boto3.client("s3").list_objects_v2(Bucket=config.settings.bucket, Prefix="blobs/")
    assert listed.get("KeyCount", 0) == 0


def test_on_aws_the_verification_runs_in_its_own_lambda(
    client: Client, settings, monkeypatch
) -> None:
    """The API Lambda invokes `verify_upload` asynchronously; its handler finishes the job."""
    from app import verify_upload
    from chalicelib.storage import aws

    settings(sync_verify_bytes=10, verify_function="stratus-dev-verify_upload")
    invoked = []

    class LambdaService:
        def invoke(self, **kwargs):
            invoked.append(kwargs)

    monkeypatch.setattr(aws, "lambda_client", LambdaService)
    data = b"verified in another function" * 10
    answer = direct_push(client, "org/app", data)
    assert answer.status == 202
    (call,) = invoked
    assert (call["FunctionName"], call["InvocationType"]) == ("stratus-dev-verify_upload", "Event")
    assert client.get(answer.header("Location")).status == 202  # not yet verified
    verify_upload(json.loads(call["Payload"]), None)
    assert client.get(answer.header("Location")).status == 201
    assert follow_blob(client, "org/app", sha256(data)) == data
