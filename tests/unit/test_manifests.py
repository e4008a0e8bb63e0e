"""Manifests: end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE).

distribution-spec "Pulling manifests", "Pushing Manifests", "Deleting tags", "Deleting
Manifests"; image-spec manifest.md, image-index.md, descriptor.md.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.client import DOCKER_MANIFEST, Client
from tests.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, sha256

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def descriptor(media_type: str, content: bytes, **extra: object) -> dict:
    return {"mediaType": media_type, "digest": sha256(content), "size": len(content), **extra}


def image(client: Client, repo: str, seed: str = "x", *, media_type: str = OCI_MANIFEST) -> dict:
    """Push a config and a layer, and return an image manifest document referencing them."""
    layer = f"layer-{seed}".encode()
    return client.image_document(
        repo, seed=seed, layers=(layer,), docker=media_type == DOCKER_MANIFEST
    )


def raw(doc: dict) -> bytes:
    return json.dumps(doc, indent=3).encode()


def test_manifest_put_by_tag_then_get_returns_the_exact_bytes(client: Client) -> None:
    body = raw(image(client, "org/app"))
    answer = client.push_manifest("org/app", "v1", body, OCI_MANIFEST)
    assert answer.status == 201
    assert answer.header("Location") == f"/v2/org/app/manifests/{sha256(body)}"
    assert answer.header("Docker-Content-Digest") == sha256(body)
    for reference in ("v1", sha256(body)):
        pulled = client.get(f"/v2/org/app/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert pulled.status == 200
        assert pulled.body == body
        assert pulled.header("Content-Type") == OCI_MANIFEST
        assert pulled.header("Docker-Content-Digest") == sha256(body)


def test_manifest_head_has_digest_length_and_type_but_no_body(client: Client) -> None:
    body = raw(image(client, "org/app"))
    client.push_manifest("org/app", "v1", body, OCI_MANIFEST)
    answer = client.head("/v2/org/app/manifests/v1")
    assert answer.status == 200
    assert answer.body == b""
    assert answer.header("Content-Length") == str(len(body))
    assert answer.header("Docker-Content-Digest") == sha256(body)
    assert answer.header("Content-Type") == OCI_MANIFEST


def test_manifest_put_by_digest_is_pullable_by_digest_and_untagged(client: Client) -> None:
    body = raw(image(client, "org/app"))
    answer = client.push_manifest("org/app", sha256(body), body, OCI_MANIFEST)
    assert answer.status == 201
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").body == body
    assert client.get("/v2/org/app/tags/list").json()["tags"] == []


def test_manifest_put_by_digest_that_does_not_match_is_400(client: Client) -> None:
    body = raw(image(client, "org/app"))
    answer = client.push_manifest("org/app", sha256(b"other"), body, OCI_MANIFEST)
    assert answer.status == 400
    assert answer.error_codes == ["DIGEST_INVALID"]


def test_manifest_put_with_missing_blob_is_rejected(client: Client) -> None:
    doc = image(client, "org/app")
    doc["layers"].append(descriptor(OCI_LAYER_GZIP, b"never uploaded"))
    answer = client.push_manifest("org/app", "v1", doc)
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_BLOB_UNKNOWN"]
    assert answer.json()["errors"][0]["detail"]["missing"] == [sha256(b"never uploaded")]
    assert client.get("/v2/org/app/manifests/v1").status == 404


def test_manifest_put_with_a_never_uploaded_config_is_rejected(client: Client) -> None:
    """The config is read for its labels before the commit; absent, the commit refuses."""
    doc = image(client, "org/app")
    doc["config"] = descriptor(OCI_CONFIG, b'{"never": "uploaded"}')
    answer = client.push_manifest("org/app", "v1", doc)
    assert (answer.status, answer.error_codes) == (400, ["MANIFEST_BLOB_UNKNOWN"])
    assert answer.json()["errors"][0]["detail"]["missing"] == [doc["config"]["digest"]]
    assert client.get("/v2/org/app/tags/list").status == 404


def test_manifest_put_referencing_another_repositorys_blob_is_rejected(client: Client) -> None:
    doc = image(client, "other/repo")
    answer = client.push_manifest("org/app", "v1", doc)
    assert answer.error_codes == ["MANIFEST_BLOB_UNKNOWN"]


def test_index_with_missing_child_manifest_is_rejected(client: Client) -> None:
    child = raw(image(client, "org/app"))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, child)],
    }
    answer = client.push_manifest("org/app", "multi", index)
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_BLOB_UNKNOWN"]


def test_oci_index_and_docker_manifest_list_are_stored_with_their_type(client: Client) -> None:
    for index_type, child_type in ((OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)):
        children = []
        for arch in ("amd64", "arm64"):
            body = raw(image(client, "org/multi", arch + index_type, media_type=child_type))
            assert client.push_manifest("org/multi", sha256(body), body, child_type).status == 201
            children.append(
                descriptor(child_type, body, platform={"os": "linux", "architecture": arch})
            )
        index = raw({"schemaVersion": 2, "mediaType": index_type, "manifests": children})
        assert client.push_manifest("org/multi", "v1", index, index_type).status == 201
        pulled = client.get("/v2/org/multi/manifests/v1")
        assert (pulled.body, pulled.header("Content-Type")) == (index, index_type)


def test_docker_schema2_manifest_round_trips(client: Client) -> None:
    body = raw(image(client, "org/app", media_type=DOCKER_MANIFEST))
    assert client.push_manifest("org/app", "v2s2", body, DOCKER_MANIFEST).status == 201
    pulled = client.get("/v2/org/app/manifests/v2s2", headers={"Accept": DOCKER_MANIFEST})
    assert (pulled.body, pulled.header("Content-Type")) == (body, DOCKER_MANIFEST)


def test_artifact_of_unknown_media_type_is_accepted(client: Client) -> None:
    blob = b"artifact payload"
    client.push_blob("org/art", blob)
    doc = {
        "mediaType": "application/vnd.example.thing.v1+json",
        "blobs": [descriptor("application/octet-stream", blob)],
    }
    answer = client.push_manifest("org/art", "thing", doc)
    assert answer.status == 201
    assert client.get("/v2/org/art/manifests/thing").header("Content-Type") == doc["mediaType"]


def test_artifact_manifest_with_artifact_type_and_empty_config_is_accepted(client: Client) -> None:
    empty = b"{}"
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": descriptor(
            "application/vnd.oci.empty.v1+json", empty, data=base64.b64encode(empty).decode()
        ),
        "layers": [
            descriptor(
                "application/vnd.oci.empty.v1+json", empty, data=base64.b64encode(empty).decode()
            )
        ],
        "annotations": {"org.example": "yes"},
    }
    answer = client.push_manifest("org/art", "sbom", doc)
    assert answer.status == 201, answer.body
    # descriptor `data` is honoured: the embedded blob is pullable like any other
    assert client.head(f"/v2/org/art/blobs/{sha256(empty)}").header("Content-Length") == "2"


def test_descriptor_data_that_does_not_match_its_digest_is_rejected(client: Client) -> None:
    doc = image(client, "org/app")
    doc["config"]["data"] = base64.b64encode(b"not the config").decode()
    answer = client.push_manifest("org/app", "v1", doc)
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_INVALID"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe{}",
        json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode(),
        json.dumps(
            {"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": "sha256:bad", "size": 1},
                "layers": [],
            }
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(b"c"), "size": -1},
                "layers": [],
            }
        ).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(b"c"), "size": True},
                "layers": [],
            }
        ).encode(),
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "nope"}).encode(),
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "annotations": {"a": 1},
                "config": {"mediaType": OCI_CONFIG, "digest": sha256(b"c"), "size": 1},
                "layers": [],
            }
        ).encode(),
    ],
)
def test_malformed_manifest_is_400_manifest_invalid_and_not_stored(
    client: Client, body: bytes
) -> None:
    content_type = OCI_INDEX if b"manifests" in body else OCI_MANIFEST
    answer = client.push_manifest("org/app", "bad", body, content_type)
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_INVALID"]
    assert client.get("/v2/org/app/manifests/bad").status == 404


def test_media_type_field_disagreeing_with_content_type_is_rejected(client: Client) -> None:
    doc = image(client, "org/app")
    answer = client.push_manifest("org/app", "v1", raw(doc), DOCKER_MANIFEST)
    assert answer.error_codes == ["MANIFEST_INVALID"]


def test_manifest_without_content_type_uses_its_media_type_field(client: Client) -> None:
    body = raw(image(client, "org/app"))
    answer = client.put("/v2/org/app/manifests/v1", body=body)
    assert answer.status == 201
    assert client.get("/v2/org/app/manifests/v1").header("Content-Type") == OCI_MANIFEST


def test_non_ascii_manifest_bytes_round_trip_exactly(client: Client) -> None:
    doc = image(client, "org/app")
    doc["annotations"] = {"org.opencontainers.image.title": "Grüße, 世界 🚀"}
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    answer = client.push_manifest("org/app", "utf8", body, OCI_MANIFEST)
    assert answer.header("Docker-Content-Digest") == sha256(body)
    assert client.get("/v2/org/app/manifests/utf8").body == body


def test_manifest_of_4_mib_is_accepted_and_stored_in_s3(client: Client) -> None:
    """The spec asks registries to accept at least 4 MB; an item holds only 400 KB."""
    doc = image(client, "org/app")
    doc["annotations"] = {"padding": "x" * (4 * 1024 * 1024 - 1024)}
    body = raw(doc)
    assert len(body) > 4_000_000
    answer = client.push_manifest("org/app", "big", body, OCI_MANIFEST)
    assert answer.status == 201, answer.body
    assert client.get("/v2/org/app/manifests/big").body == body
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").body == body
    assert client.head("/v2/org/app/manifests/big").header("Content-Length") == str(len(body))


def test_manifest_over_the_limit_is_413(client: Client, settings) -> None:
    settings(max_manifest_bytes=2000)
    doc = image(client, "org/app")
    doc["annotations"] = {"padding": "x" * 3000}
    answer = client.push_manifest("org/app", "big", doc)
    assert answer.status == 413
    assert answer.error_codes == ["SIZE_INVALID"]
    assert answer.json()["errors"][0]["detail"]["limit"] == 2000


def test_manifest_get_unknown_is_404_manifest_unknown(client: Client) -> None:
    for reference in ("nope", sha256(b"nope")):
        answer = client.get(f"/v2/org/app/manifests/{reference}")
        assert answer.status == 404
        assert answer.error_codes == ["MANIFEST_UNKNOWN"]


@pytest.mark.parametrize(
    "reference",
    [".INVALID_MANIFEST_NAME", "-notatag", "sha256:totallywrong", "x-evil:" + "a" * 64],
)
def test_manifest_pull_of_a_malformed_reference_is_manifest_unknown(
    client: Client, reference: str
) -> None:
    """distribution-spec "Pulling manifests": what is not there is a 404, and conformance
    tooling probes with names that are no tag (Distribution answers the same)."""
    for method in ("GET", "HEAD"):
        answer = client.request(method, f"/v2/org/app/manifests/{reference}")
        assert answer.status == 404
        if method == "GET":
            assert answer.error_codes == ["MANIFEST_UNKNOWN"]


def test_manifest_put_with_an_invalid_tag_is_tag_invalid(client: Client) -> None:
    answer = client.push_manifest("org/app", ".INVALID_MANIFEST_NAME", image(client, "org/app"))
    assert (answer.status, answer.error_codes) == (400, ["TAG_INVALID"])


def test_retagging_moves_the_tag_to_the_new_manifest(client: Client) -> None:
    first = raw(image(client, "org/app", "one"))
    second = raw(image(client, "org/app", "two"))
    client.push_manifest("org/app", "latest", first, OCI_MANIFEST)
    client.push_manifest("org/app", "latest", second, OCI_MANIFEST)
    assert client.get("/v2/org/app/manifests/latest").body == second
    # the first manifest can now be deleted without touching the moved tag
    assert client.delete(f"/v2/org/app/manifests/{sha256(first)}").status == 202
    assert client.get("/v2/org/app/manifests/latest").body == second


def test_tag_delete_removes_only_the_tag(client: Client) -> None:
    body = raw(image(client, "org/app"))
    client.push_manifest("org/app", "v1", body, OCI_MANIFEST)
    client.push_manifest("org/app", "v2", body, OCI_MANIFEST)
    assert client.delete("/v2/org/app/manifests/v1").status == 202
    assert client.get("/v2/org/app/manifests/v1").status == 404
    assert client.get("/v2/org/app/manifests/v2").body == body
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").status == 200


def test_manifest_delete_by_digest_removes_every_tag_pointing_at_it(client: Client) -> None:
    body = raw(image(client, "org/app"))
    for tag in ("a", "b", "c"):
        client.push_manifest("org/app", tag, body, OCI_MANIFEST)
    assert client.delete(f"/v2/org/app/manifests/{sha256(body)}").status == 202
    for reference in ("a", "b", "c", sha256(body)):
        assert client.get(f"/v2/org/app/manifests/{reference}").status == 404
    assert client.get("/v2/org/app/tags/list").json()["tags"] == []


def test_delete_of_unknown_manifest_or_tag_is_404(client: Client) -> None:
    for reference in ("nope", sha256(b"nope")):
        answer = client.delete(f"/v2/org/app/manifests/{reference}")
        assert answer.status == 404
        assert answer.error_codes == ["MANIFEST_UNKNOWN"]


def test_foreign_layers_with_urls_need_not_be_uploaded(client: Client) -> None:
    doc = image(client, "org/win", media_type=DOCKER_MANIFEST)
    doc["layers"].append(
        descriptor(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            b"windows base",
            urls=["https://example.com/layer"],
        )
    )
    assert client.push_manifest("org/win", "v1", doc).status == 201


def test_tag_moved_by_a_racing_push_is_retried_and_bookkeeping_agrees(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push reads the tag, then another push moves it before the first one commits.

    The first push's condition (tag still points where it read) fails, it re-reads and
    retries, and the tags index still lists each tag under the manifest it points at.
    moto applies transactions without isolation between threads, so the race is staged
    deterministically here instead of with threads.
    """
    from chalicelib.storage import manifests as store
    from chalicelib.storage.models import TagModel, TagsByDigest

    old, racer, ours = (raw(image(client, "org/race", seed)) for seed in ("old", "racer", "ours"))
    client.push_manifest("org/race", "hot", old, OCI_MANIFEST)
    real_transaction = store.transactions.transaction
    calls = []

    def transaction_after_a_racing_push():
        calls.append(1)
        if len(calls) == 1:
            assert client.push_manifest("org/race", "hot", racer, OCI_MANIFEST).status == 201
        return real_transaction()

    monkeypatch.setattr(store.transactions, "transaction", transaction_after_a_racing_push)
    assert client.push_manifest("org/race", "hot", ours, OCI_MANIFEST).status == 201
    assert len(calls) == 3  # ours (lost), the racer's, ours again
    assert client.get("/v2/org/race/manifests/hot").body == ours
    tags = {
        body: [t.sort_key for t in TagModel.by_digest.query("org/race", TagsByDigest.digest == d)]
        for body, d in ((b, sha256(b)) for b in (old, racer, ours))
    }
    assert tags == {old: [], racer: [], ours: ["hot hot"]}


def test_manifest_delete_works_when_a_tag_item_vanished_behind_its_back(client: Client) -> None:
    """DynamoDB's TTL deletes tag items behind the registry's back."""
    from chalicelib.registry.names import tag_sort_key
    from chalicelib.storage.models import TagModel

    body = raw(image(client, "org/app"))
    client.push_manifest("org/app", "gone", body, OCI_MANIFEST)
    client.push_manifest("org/app", "kept", body, OCI_MANIFEST)
    TagModel("org/app", tag_sort_key("gone")).delete()  # as the TTL sweeper would
    assert client.delete(f"/v2/org/app/manifests/{sha256(body)}").status == 202
    assert client.get("/v2/org/app/manifests/kept").status == 404
