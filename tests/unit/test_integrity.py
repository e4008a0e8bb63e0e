"""Content addressing: the registry stores and serves only content whose digest it verified,
and the bytes under a digest never change (image-spec descriptor.md "Digests", "Registered
algorithms"; distribution-spec "Pushing blobs")."""

from __future__ import annotations

import base64
import hashlib
import json

import boto3
import pytest

from chalicelib import config
from chalicelib.storage.blobs import object_key
from tests.client import Client, follow_blob
from tests.images import OCI_CONFIG, OCI_MANIFEST, sha256

EVIL = "x-evil:" + "e" * 64


def embedded(data: bytes, digest: str, media_type: str = "application/octet-stream") -> dict:
    return {
        "mediaType": media_type,
        "digest": digest,
        "size": len(data),
        "data": base64.b64encode(data).decode(),
    }


def artifact(*blobs: dict) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/x-test",
        "config": embedded(b"{}", sha256(b"{}"), "application/vnd.oci.empty.v1+json"),
        "layers": list(blobs),
    }


def stored_keys() -> list[str]:
    s3 = boto3.client("s3", region_name=config.settings.region)
    listed = s3.list_objects_v2(Bucket=config.settings.bucket)
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def test_embedded_data_under_an_unregistered_algorithm_is_refused(client: Client) -> None:
    before = stored_keys()
    answer = client.push_manifest("first/app", "v1", artifact(embedded(b"mine", EVIL)))
    assert (answer.status, answer.error_codes) == (400, ["MANIFEST_INVALID"])
    assert stored_keys() == before
    assert client.get(f"/v2/first/app/blobs/{EVIL}").status == 404


def test_same_unregistered_digest_with_other_bytes_cannot_replace_what_a_repository_reads(
    client: Client,
) -> None:
    """The attack: two repositories claim one digest for different bytes. Neither claim is
    verifiable, so neither is stored, and a verified blob keeps its bytes."""
    first = client.push_manifest("first/app", "v1", artifact(embedded(b"first bytes", EVIL)))
    second = client.push_manifest("second/app", "v1", artifact(embedded(b"other bytes", EVIL)))
    assert first.status == second.status == 400
    for repo in ("first/app", "second/app"):
        assert client.get(f"/v2/{repo}/blobs/{EVIL}").status == 404


def test_a_stored_blob_object_is_never_overwritten(client: Client) -> None:
    """Every write of an existing object is refused; the bucket's versioning (on in
    infra/stratus.yaml) would keep a version per overwrite, so it counts them."""
    s3 = boto3.client("s3", region_name=config.settings.region)
    bucket = config.settings.bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = b"verified content"
    digest = client.push_blob("first/app", data)
    # The same content pushed again, into another repository and by each upload path.
    client.push_blob("second/app", data)
    location = client.post("/v2/third/app/blobs/uploads/").header("Location")
    client.patch(location, body=data, headers={"Content-Type": "application/octet-stream"})
    assert client.put(f"{location}?digest={digest}").status == 201
    client.must_push("fourth/app", "v1", json.dumps(artifact(embedded(data, digest))).encode())
    versions = s3.list_object_versions(Bucket=bucket, Prefix=object_key(digest))["Versions"]
    assert len(versions) == 1
    for repo in ("first/app", "second/app", "third/app", "fourth/app"):
        assert follow_blob(client, repo, digest) == data


@pytest.mark.parametrize(
    "path",
    [
        f"/v2/a/blobs/uploads/?digest={EVIL}",
        f"/v2/a/blobs/uploads/?mount={EVIL}&from=b",
        f"/v2/a/blobs/uploads/?mount={EVIL}",
    ],
)
def test_uploads_and_mounts_under_an_unregistered_algorithm_are_digest_invalid(
    client: Client, path: str
) -> None:
    answer = client.post(path, body=b"x" if "digest" in path else b"")
    assert (answer.status, answer.error_codes) == (400, ["DIGEST_INVALID"])
    assert stored_keys() == []


def test_chunked_upload_closed_under_an_unregistered_algorithm_is_digest_invalid(
    client: Client,
) -> None:
    location = client.post("/v2/a/blobs/uploads/").header("Location")
    client.patch(location, body=b"chunk")
    answer = client.put(f"{location}?digest={EVIL}")
    assert (answer.status, answer.error_codes) == (400, ["DIGEST_INVALID"])
    assert client.get(f"/v2/a/blobs/{EVIL}").status == 404


def test_descriptor_under_an_unregistered_algorithm_must_exist_like_any_other(
    client: Client,
) -> None:
    layer = {"mediaType": "application/octet-stream", "digest": EVIL, "size": 4}
    answer = client.push_manifest("first/app", "v1", artifact(layer))
    assert (answer.status, answer.error_codes) == (400, ["MANIFEST_BLOB_UNKNOWN"])


def test_foreign_layer_under_an_unregistered_algorithm_needs_no_upload(client: Client) -> None:
    """Non-distributable layers live at their `urls`; the registry never holds them."""
    config_blob = json.dumps({"architecture": "amd64", "os": "windows"}).encode()
    client.push_blob("win/app", config_blob)
    foreign = {
        "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "digest": EVIL,
        "size": 4,
        "urls": ["https://example.com/layer"],
    }
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config_blob), "size": 40},
        "layers": [foreign],
    }
    doc["config"]["size"] = len(config_blob)
    assert client.push_manifest("win/app", "v1", doc).status == 201


def test_digest_longer_than_the_bound_is_refused_with_400(client: Client) -> None:
    long_digest = "x-long:" + "a" * 2000
    layer = {"mediaType": "application/octet-stream", "digest": long_digest, "size": 1}
    answer = client.push_manifest("first/app", "v1", artifact(layer))
    assert (answer.status, answer.error_codes) == (400, ["MANIFEST_INVALID"])
    for path in (
        f"/v2/a/blobs/{long_digest}",
        f"/v2/a/referrers/{long_digest}",
        f"/v2/a/blobs/uploads/?digest={long_digest}",
    ):
        method = "POST" if "uploads" in path else "GET"
        refused = client.request(method, path)
        assert refused.status == 400, (path, refused.body)
        assert refused.error_codes == ["DIGEST_INVALID"]


@pytest.mark.parametrize("size", [2**63, 10**40])
def test_descriptor_size_beyond_int64_is_manifest_invalid(client: Client, size: int) -> None:
    layer = {"mediaType": "application/octet-stream", "digest": sha256(b"x"), "size": size}
    answer = client.push_manifest("first/app", "v1", artifact(layer))
    assert (answer.status, answer.error_codes) == (400, ["MANIFEST_INVALID"])


BINARY_TYPES = ["image/png", "application/zip", "application/octet-stream", "audio/ogg"]
ACCEPTS = [None, "", "*/*", "application/octet-stream", "image/png", "application/json"]


def custom_manifest(client: Client, media_type: str) -> bytes:
    """A manifest of a media type Chalice's default list calls binary."""
    client.push_blob("bin/app", b"layer")
    doc = {
        "mediaType": media_type,
        "layers": [{"mediaType": "application/x-layer", "digest": sha256(b"layer"), "size": 5}],
        "note": "caf\u00e9 \u2603",
    }
    return json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize("media_type", BINARY_TYPES)
def test_manifest_of_any_media_type_pulls_back_byte_identical(
    client: Client, media_type: str
) -> None:
    body = custom_manifest(client, media_type)
    pushed = client.push_manifest("bin/app", "v1", body, media_type)
    assert pushed.status == 201, pushed.body
    digest = pushed.header("Docker-Content-Digest")
    for reference in ("v1", digest):
        for accept in ACCEPTS:
            headers = {} if accept is None else {"Accept": accept}
            answer = client.get(f"/v2/bin/app/manifests/{reference}", headers=headers)
            assert answer.status == 200, (reference, accept, answer.body)
            assert answer.body == body
            assert answer.header("Content-Type") == media_type
            head = client.head(f"/v2/bin/app/manifests/{reference}", headers=headers)
            assert head.status == 200
            assert head.header("Content-Length") == str(len(body))


def api_gateway_body(result: dict) -> bytes:
    """What API Gateway, deployed with binary media types `*/*`, sends the client."""
    raw = result.get("body") or ""
    return base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")


@pytest.mark.parametrize("media_type", BINARY_TYPES)
def test_manifest_of_any_media_type_survives_the_lambda_response(
    client: Client, media_type: str
) -> None:
    from app import app
    from chalicelib.local import events

    body = custom_manifest(client, media_type)
    assert client.push_manifest("bin/app", "v1", body, media_type).status == 201
    for accept in ACCEPTS:
        headers = [] if accept is None else [("Accept", accept)]
        event = events.build_event("GET", "/v2/bin/app/manifests/v1", headers, b"")
        result = app(event, events.LambdaContext())
        assert result["statusCode"] == 200, result
        assert api_gateway_body(result) == body
        assert hashlib.sha256(api_gateway_body(result)).hexdigest() == sha256(body)[7:]
