"""Bad input of every kind gets the spec's error JSON, never a 500, and changes nothing."""

from __future__ import annotations

import pytest

from tests.client import Client
from tests.images import sha256

UPLOAD = "0d9c6ad0-8e8c-4cf7-8e58-6a5c7f0f7e1f"
CASES = [
    ("GET", "/v2/a/manifests/sha256:totallywrong", {}, b""),
    ("GET", "/v2/a/manifests/" + "x" * 200, {}, b""),
    ("GET", "/v2/a/manifests/sha256:", {}, b""),
    ("HEAD", "/v2/a/manifests/:", {}, b""),
    ("DELETE", "/v2/a/manifests/..", {}, b""),
    ("PUT", "/v2/a/manifests/v1", {"Content-Type": "application/json"}, b"\x00\x01"),
    ("PUT", "/v2/a/manifests/v1", {"Content-Type": "text/plain"}, b'{"mediaType": 5}'),
    ("PUT", "/v2/a/manifests/v1", {}, b'{"schemaVersion": 2, "manifests": [null]}'),
    ("PUT", "/v2/a/manifests/v1", {}, b'{"config": {"mediaType": "x", "digest": 5, "size": 1}}'),
    ("PUT", "/v2/a/manifests/v1", {}, b'{"subject": "nope", "config": {}}'),
    ("PUT", "/v2/a/manifests/v1", {}, b"1e999999"),
    ("PUT", "/v2/a/manifests/v1", {}, b'{"a": ' * 10000),
    ("PUT", "/v2/a/manifests/sha384:" + "a" * 96, {}, b"{}"),
    ("GET", "/v2/a/blobs/not-a-digest", {}, b""),
    ("GET", "/v2/a/blobs/sha256:" + "g" * 64, {}, b""),
    ("DELETE", "/v2/a/blobs/md5:abc", {}, b""),
    ("POST", "/v2/a/blobs/uploads/?digest=sha256:zz", {}, b"x"),
    ("POST", "/v2/a/blobs/uploads/?digest=foo+bar:abc", {}, b"x"),
    ("POST", "/v2/a/blobs/uploads/?mount=&from=", {}, b""),
    ("POST", "/v2/a/blobs/uploads/?mount=sha256:" + "a" * 64 + "&from=..", {}, b""),
    ("PATCH", f"/v2/a/blobs/uploads/{UPLOAD}", {"Content-Range": "zz"}, b"x"),
    ("PUT", f"/v2/a/blobs/uploads/{UPLOAD}?digest=sha256:" + "a" * 64, {}, b""),
    ("PUT", "/v2/a/blobs/uploads/x?digest=nope", {}, b""),
    ("GET", "/v2/a/blobs/uploads/%00", {}, b""),
    ("GET", "/v2/a/tags/list?n=99999999999999999999999", {}, b""),
    ("GET", "/v2/a/tags/list?n=%20", {}, b""),
    ("GET", "/v2/a/tags/list?last=" + "a" * 300, {}, b""),
    ("GET", "/v2/_catalog?n=-5", {}, b""),
    ("GET", "/v2/_catalog?last=%ff", {}, b""),
    ("DELETE", "/v2/_catalog", {}, b""),
    ("GET", "/v2/" + "a/" * 200 + "tags/list", {}, b""),
    ("GET", "/v2/a/tags/list/extra", {}, b""),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES)
def test_bad_input_is_a_4xx_with_oci_error_json(
    client: Client, method: str, path: str, headers: dict, body: bytes
) -> None:
    answer = client.request(method, path, headers=headers, body=body)
    assert 400 <= answer.status < 500, (answer.status, answer.body)
    if method != "HEAD":
        assert answer.header("Content-Type") == "application/json"
        assert answer.error_codes


def test_a_failed_manifest_push_leaves_the_repository_unknown(client: Client) -> None:
    answer = client.push_manifest(
        "fresh/repo",
        "v1",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "x", "digest": sha256(b"missing"), "size": 7},
            "layers": [],
        },
    )
    assert answer.status == 400
    assert client.get("/v2/fresh/repo/tags/list").status == 404
    assert client.get("/v2/_catalog").json()["repositories"] == []
