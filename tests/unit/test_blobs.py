"""Blobs: end-2 (GET/HEAD) and end-10 (DELETE)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import boto3

from chalicelib import config
from chalicelib.storage.blobs import object_key
from tests.client import Client
from tests.images import sha256


def test_blob_head_answers_size_and_digest_from_metadata(client: Client) -> None:
    data = b"hello blob"
    digest = client.push_blob("org/app", data)
    answer = client.head(f"/v2/org/app/blobs/{digest}")
    assert answer.status == 200
    assert answer.header("Content-Length") == str(len(data))
    assert answer.header("Docker-Content-Digest") == digest
    assert answer.header("Location") is None  # never a redirect for HEAD
    assert answer.body == b""


def test_blob_get_redirects_to_a_short_lived_presigned_s3_url(client: Client) -> None:
    data = b"pulled through S3, not Lambda"
    digest = client.push_blob("org/app", data)
    answer = client.get(f"/v2/org/app/blobs/{digest}")
    assert answer.status == 307
    assert answer.body == b""
    assert answer.header("Docker-Content-Digest") == digest
    location = urlsplit(answer.header("Location") or "")
    query = parse_qs(location.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert location.path.endswith(object_key(digest))
    stored = boto3.client("s3").get_object(Bucket=config.settings.bucket, Key=object_key(digest))
    assert stored["Body"].read() == data


def test_blob_unknown_in_repository_is_404_blob_unknown(client: Client) -> None:
    digest = sha256(b"nowhere")
    for method in ("GET", "HEAD"):
        answer = client.request(method, f"/v2/org/app/blobs/{digest}")
        assert answer.status == 404
    assert client.get(f"/v2/org/app/blobs/{digest}").error_codes == ["BLOB_UNKNOWN"]


def test_blob_of_another_repository_is_not_readable_by_digest(client: Client) -> None:
    digest = client.push_blob("team-a/secret", b"private bytes")
    assert client.get(f"/v2/team-b/app/blobs/{digest}").status == 404
    assert client.head(f"/v2/team-b/app/blobs/{digest}").status == 404


def test_blob_get_with_malformed_digest_is_400_digest_invalid(client: Client) -> None:
    answer = client.get("/v2/org/app/blobs/sha256:totallywrong")
    assert answer.status == 400
    assert answer.error_codes == ["DIGEST_INVALID"]


def test_blob_delete_unlinks_it_from_the_repository_only(client: Client) -> None:
    digest = client.push_blob("one", b"shared")
    client.push_blob("two", b"shared")
    answer = client.delete(f"/v2/one/blobs/{digest}")
    assert answer.status == 202
    assert client.head(f"/v2/one/blobs/{digest}").status == 404
    assert client.head(f"/v2/two/blobs/{digest}").status == 200


def test_blob_delete_of_unknown_blob_is_404(client: Client) -> None:
    answer = client.delete(f"/v2/one/blobs/{sha256(b'x')}")
    assert answer.status == 404
    assert answer.error_codes == ["BLOB_UNKNOWN"]
