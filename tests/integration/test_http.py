"""Raw HTTP against the local server: what clients rely on at the wire level."""

from __future__ import annotations

import http.client
import json
import os

import pytest
import requests

from tests.images import sha256
from tests.integration.conftest import LIMIT, Registry

pytestmark = pytest.mark.integration

OCTET = {"Content-Type": "application/octet-stream"}


def push_blob(registry: Registry, repo: str, data: bytes) -> str:
    answer = requests.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/?digest={sha256(data)}",
        data=data,
        headers=OCTET,
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return sha256(data)


def test_blob_is_pulled_through_the_307_redirect(registry: Registry) -> None:
    data = os.urandom(100_000)
    digest = push_blob(registry, "http/blob", data)
    url = f"{registry.url}/v2/http/blob/blobs/{digest}"
    first = requests.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == 307
    assert first.content == b""
    assert "X-Amz-Signature=" in first.headers["Location"]
    followed = requests.get(url, timeout=10)
    assert followed.content == data
    assert followed.history[0].status_code == 307


def test_ranged_blob_pull_is_served_by_s3_after_the_redirect(registry: Registry) -> None:
    data = bytes(range(256)) * 100
    digest = push_blob(registry, "http/range", data)
    answer = requests.get(
        f"{registry.url}/v2/http/range/blobs/{digest}", headers={"Range": "bytes=10-19"}, timeout=10
    )
    assert answer.status_code == 206
    assert answer.content == data[10:20]


def test_chunked_transfer_encoding_patch_is_read_whole(registry: Registry) -> None:
    data = os.urandom(300_000)
    start = requests.post(f"{registry.url}/v2/http/streamed/blobs/uploads/", timeout=10)
    location = registry.url + start.headers["Location"]

    def body():
        for offset in range(0, len(data), 70_000):
            yield data[offset : offset + 70_000]

    patched = requests.patch(location, data=body(), headers=OCTET, timeout=30)
    assert patched.request.headers.get("Transfer-Encoding") == "chunked"
    assert patched.status_code == 202
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    done = requests.put(
        f"{registry.url}{patched.headers['Location']}?digest={sha256(data)}", timeout=10
    )
    assert done.status_code == 201


def test_head_answers_exactly_one_content_length(registry: Registry) -> None:
    digest = push_blob(registry, "http/head", b"x" * 1234)
    connection = http.client.HTTPConnection(registry.host, timeout=10)
    connection.request("HEAD", f"/v2/http/head/blobs/{digest}")
    response = connection.getresponse()
    lengths = [v for k, v in response.getheaders() if k.lower() == "content-length"]
    assert lengths == ["1234"]
    assert response.read() == b""


def test_repeated_accept_lines_reach_the_registry(registry: Registry) -> None:
    """Six Accept lines, as skopeo sends them: the manifest comes back, unharmed."""
    config = b"{}"
    push_blob(registry, "http/accept", config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    put = requests.put(
        f"{registry.url}/v2/http/accept/manifests/v1",
        data=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert put.status_code == 201
    connection = http.client.HTTPConnection(registry.host, timeout=10)
    connection.putrequest("GET", "/v2/http/accept/manifests/v1")
    for media_type in (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.oci.image.manifest.v1+json",
        "application/json",
    ):
        connection.putheader("Accept", media_type)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 200
    assert response.read() == manifest


def test_body_over_the_limit_is_413_with_oci_error(limited_registry: Registry) -> None:
    data = b"y" * (LIMIT + 1)
    answer = requests.post(
        f"{limited_registry.url}/v2/http/big/blobs/uploads/?digest={sha256(data)}",
        data=data,
        headers=OCTET,
        timeout=30,
    )
    assert answer.status_code == 413
    (error,) = answer.json()["errors"]
    assert (error["code"], error["detail"]["limit"]) == ("SIZE_INVALID", LIMIT)
    assert (
        requests.head(
            f"{limited_registry.url}/v2/http/big/blobs/{sha256(data)}", timeout=10
        ).status_code
        == 404
    )


def test_chunked_body_over_the_limit_is_413_too(limited_registry: Registry) -> None:
    start = requests.post(f"{limited_registry.url}/v2/http/big2/blobs/uploads/", timeout=10)
    location = limited_registry.url + start.headers["Location"]
    answer = requests.patch(location, data=iter([b"z" * LIMIT, b"z"]), headers=OCTET, timeout=30)
    assert answer.status_code == 413
    assert requests.get(location, timeout=10).headers["Range"] == "0-0"


@pytest.mark.parametrize("media_type", ["image/png", "application/zip", "application/octet-stream"])
def test_manifest_of_a_binary_looking_media_type_pulls_back_byte_identical_over_http(
    registry: Registry, media_type: str
) -> None:
    """Any media type a client pushes pulls back exactly, whatever it sends as Accept."""
    data = b"layer of " + media_type.encode()
    layer = {"mediaType": "a/b", "digest": push_blob(registry, "http/binary", data)}
    body = json.dumps({"mediaType": media_type, "layers": [{**layer, "size": len(data)}]}).encode()
    url = f"{registry.url}/v2/http/binary/manifests"
    pushed = requests.put(f"{url}/v1", data=body, headers={"Content-Type": media_type}, timeout=10)
    assert pushed.status_code == 201, pushed.text
    for reference in ("v1", sha256(body)):
        for accept in (None, "*/*", "application/octet-stream", media_type, "application/json"):
            headers = {"Accept": accept} if accept else {}
            got = requests.get(f"{url}/{reference}", headers=headers, timeout=10)
            assert got.status_code == 200, (reference, accept, got.text)
            assert got.content == body
            assert got.headers["Content-Type"] == media_type
            head = requests.head(f"{url}/{reference}", headers=headers, timeout=10)
            assert head.status_code == 200
            assert head.headers["Content-Length"] == str(len(body))
