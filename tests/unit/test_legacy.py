"""Docker legacy: schema 1 push and pull, down-conversion, and V1 pulls.

Schema 1 is Docker's "Image Manifest Version 2, Schema 1" (libtrust pretty JWS); the
content-negotiation rules are distribution-spec's content-negotiation.md table.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.auth import keys
from chalicelib.registry import schema1
from tests.client import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, Client
from tests.images import sha256

SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json"


@pytest.fixture(autouse=True)
def signing_key(settings, tmp_path) -> None:
    settings(signing_key_file=str(tmp_path / "registry-key.pem"), signing_key_parameter="")
    keys.forget()


def client_key():
    """A client's own signing key, as docker and skopeo sign schema 1 with theirs."""
    return keys.parse_ring(keys.new_private_pem()).signing.private


def docker_image(client: Client, repo: str, labels: dict | None = None) -> tuple[dict, list[bytes]]:
    """A Docker schema 2 image whose history has an empty layer between its two layers."""
    layers = [b"layer-one-" + repo.encode(), b"layer-two-" + repo.encode()]
    for layer in layers:
        client.push_blob(repo, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
        "history": [
            {"created": "2026-01-01T00:00:00Z", "created_by": "ADD one /"},
            {"created": "2026-01-01T00:00:01Z", "created_by": "ENV A=1", "empty_layer": True},
            {"created": "2026-01-01T00:00:02Z", "created_by": "ADD two /"},
        ],
    }
    config_bytes = json.dumps(config).encode()
    client.push_blob(repo, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG,
            "digest": sha256(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": DOCKER_LAYER, "digest": sha256(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    return manifest, layers


def schema1_manifest(
    client: Client, repo: str, tag: str, *, signed: bool = True, label: str | None = None
):
    layer = b"schema1 layer of " + repo.encode()
    client.push_blob(repo, layer)
    top = {"id": "a" * 64, "architecture": "amd64", "os": "linux"}
    if label:
        top["config"] = {"Labels": {"quay.expires-after": label}}
    document = {
        "schemaVersion": 1,
        "name": repo,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256(layer)}],
        "history": [{"v1Compatibility": json.dumps(top)}],
    }
    if signed:
        return schema1.sign(document, client_key(), "ES256")
    return json.dumps(document, indent=3).encode()


def payload_digest(body: bytes) -> str:
    return schema1.parse(body, json.loads(body), SIGNED).digest


# -- schema 1 push and pull -------------------------------------------------------------------


def test_signed_schema1_push_and_pull_round_trip(client: Client) -> None:
    body = schema1_manifest(client, "legacy/s1", "v1")
    pushed = client.push_manifest("legacy/s1", "v1", body, SIGNED)
    assert pushed.status == 201, pushed.body
    digest = pushed.header("Docker-Content-Digest")
    assert digest == payload_digest(body) != sha256(body)  # over the payload, as Distribution
    pulled = client.get("/v2/legacy/s1/manifests/v1", headers={"Accept": SIGNED})
    assert pulled.body == body
    assert pulled.header("Content-Type") == SIGNED
    assert pulled.header("Docker-Content-Digest") == digest
    assert client.get(f"/v2/legacy/s1/manifests/{digest}").body == body


def test_unsigned_schema1_push_is_accepted(client: Client) -> None:
    body = schema1_manifest(client, "legacy/plain", "v1", signed=False)
    pushed = client.push_manifest("legacy/plain", "v1", body, UNSIGNED)
    assert pushed.status == 201, pushed.body
    assert pushed.header("Docker-Content-Digest") == sha256(body)


def test_schema1_with_tampered_signature_is_unverified(client: Client) -> None:
    body = schema1_manifest(client, "legacy/tamper", "v1")
    tampered = body.replace(b'"architecture": "amd64"', b'"architecture": "arm64"', 1)
    answer = client.push_manifest("legacy/tamper", "v1", tampered, SIGNED)
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_UNVERIFIED"]
    assert client.get("/v2/legacy/tamper/manifests/v1").status == 404


def test_schema1_with_a_deeply_nested_protected_header_is_unverified(client: Client) -> None:
    document = json.loads(schema1_manifest(client, "legacy/deep", "v1"))
    deep = b"[" * 100_000 + b"]" * 100_000
    document["signatures"][0]["protected"] = schema1._b64(deep)
    body = json.dumps(document, indent=3).encode()
    answer = client.push_manifest("legacy/deep", "v1", body, SIGNED)
    assert (answer.status, answer.error_codes) == (400, ["MANIFEST_UNVERIFIED"])


def test_prettyjws_without_signatures_is_unverified(client: Client) -> None:
    body = schema1_manifest(client, "legacy/nosig", "v1", signed=False)
    answer = client.push_manifest("legacy/nosig", "v1", body, SIGNED)
    assert answer.error_codes == ["MANIFEST_UNVERIFIED"]


def test_schema1_with_unknown_layer_is_rejected(client: Client) -> None:
    document = {
        "schemaVersion": 1,
        "name": "legacy/missing",
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": sha256(b"never uploaded")}],
        "history": [{"v1Compatibility": "{}"}],
    }
    body = schema1.sign(document, client_key(), "ES256")
    answer = client.push_manifest("legacy/missing", "v1", body, SIGNED)
    assert answer.error_codes == ["MANIFEST_BLOB_UNKNOWN"]


def test_schema1_tag_must_match_the_url(client: Client) -> None:
    body = schema1_manifest(client, "legacy/tagged", "v1")
    answer = client.push_manifest("legacy/tagged", "other", body, SIGNED)
    assert answer.error_codes == ["TAG_INVALID"]


@pytest.mark.parametrize(
    "change",
    [
        {"schemaVersion": 2},
        {"fsLayers": []},
        {"history": []},
        {"fsLayers": [{"blobSum": "not-a-digest"}]},
        {"history": [{"v1Compatibility": "not json"}]},
        {"name": 7},
    ],
)
def test_malformed_schema1_is_manifest_invalid(client: Client, change: dict) -> None:
    body = json.loads(schema1_manifest(client, "legacy/bad", "v1", signed=False))
    body.update(change)
    answer = client.push_manifest("legacy/bad", "v1", json.dumps(body).encode(), UNSIGNED)
    assert answer.status == 400
    assert answer.error_codes in (["MANIFEST_INVALID"], ["DIGEST_INVALID"])


def test_schema1_top_layer_label_sets_expiry(client: Client, clock) -> None:
    body = schema1_manifest(client, "legacy/expiring", "v1", label="1h")
    assert client.push_manifest("legacy/expiring", "v1", body, SIGNED).status == 201
    clock.advance(hours=2)
    assert client.get("/v2/legacy/expiring/manifests/v1").error_codes == ["TAG_EXPIRED"]


# -- down-conversion ----------------------------------------------------------------------------


def test_schema2_image_is_converted_for_a_schema1_only_client(client: Client) -> None:
    manifest, layers = docker_image(client, "legacy/convert")
    client.must_push("legacy/convert", "v1", json.dumps(manifest).encode(), DOCKER_MANIFEST)
    answer = client.get("/v2/legacy/convert/manifests/v1", headers={"Accept": SIGNED})
    assert answer.status == 200
    assert answer.header("Content-Type") == SIGNED
    converted = json.loads(answer.body)
    assert (converted["name"], converted["tag"], converted["schemaVersion"]) == (
        "legacy/convert",
        "v1",
        1,
    )
    assert [layer["blobSum"] for layer in converted["fsLayers"]] == [
        sha256(layers[1]),
        schema1.EMPTY_LAYER_DIGEST,
        sha256(layers[0]),
    ]
    history = [json.loads(h["v1Compatibility"]) for h in converted["history"]]
    assert [h.get("parent") for h in history] == [history[1]["id"], history[2]["id"], None]
    assert history[1]["throwaway"] is True
    # Signed with the registry's key, and verifiable like any pushed schema 1 manifest.
    digest = payload_digest(answer.body)
    assert answer.header("Docker-Content-Digest") == digest
    by_digest = client.get(f"/v2/legacy/convert/manifests/{digest}", headers={"Accept": SIGNED})
    assert by_digest.body == answer.body
    again = client.get("/v2/legacy/convert/manifests/v1", headers={"Accept": UNSIGNED})
    assert again.body == answer.body  # stable: the same bytes each time
    # The empty layer every schema 1 client will fetch is in the repository.
    assert client.head(f"/v2/legacy/convert/blobs/{schema1.EMPTY_LAYER_DIGEST}").status == 200


def test_old_docker_without_accept_gets_schema1(client: Client) -> None:
    manifest, _ = docker_image(client, "legacy/noaccept")
    client.must_push("legacy/noaccept", "v1", json.dumps(manifest).encode(), DOCKER_MANIFEST)
    answer = client.get("/v2/legacy/noaccept/manifests/v1", headers={"Accept": ""})
    assert answer.header("Content-Type") == SIGNED


def test_clients_that_accept_the_stored_type_get_it(client: Client) -> None:
    manifest, _ = docker_image(client, "legacy/modern")
    body = json.dumps(manifest).encode()
    client.must_push("legacy/modern", "v1", body, DOCKER_MANIFEST)
    for accept in ("*/*", f"{DOCKER_MANIFEST}, {SIGNED}", DOCKER_MANIFEST):
        answer = client.get("/v2/legacy/modern/manifests/v1", headers={"Accept": accept})
        assert answer.body == body, accept


def test_pull_by_digest_is_never_converted(client: Client) -> None:
    manifest, _ = docker_image(client, "legacy/bydigest")
    body = json.dumps(manifest).encode()
    client.must_push("legacy/bydigest", "v1", body, DOCKER_MANIFEST)
    answer = client.get(f"/v2/legacy/bydigest/manifests/{sha256(body)}", headers={"Accept": SIGNED})
    assert answer.body == body


def push_index(client: Client, repo: str, architecture: str) -> None:
    """An OCI index `v1` of one Docker schema 2 image for linux/`architecture`."""
    manifest, _ = docker_image(client, repo)
    body = json.dumps(manifest).encode()
    client.must_push(repo, sha256(body), body, DOCKER_MANIFEST)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": sha256(body),
                "size": len(body),
                "platform": {"os": "linux", "architecture": architecture},
            }
        ],
    }
    client.must_push(repo, "v1", json.dumps(index).encode(), index["mediaType"])


def test_index_gives_its_linux_amd64_image_as_schema1(client: Client) -> None:
    push_index(client, "legacy/index", "amd64")
    answer = client.get("/v2/legacy/index/manifests/v1", headers={"Accept": SIGNED})
    assert answer.status == 200
    assert json.loads(answer.body)["tag"] == "v1"


def test_index_without_linux_amd64_has_no_schema1_form(client: Client) -> None:
    push_index(client, "legacy/arm", "arm64")
    answer = client.get("/v2/legacy/arm/manifests/v1", headers={"Accept": SIGNED})
    assert answer.status == 404
    assert answer.error_codes == ["MANIFEST_UNKNOWN"]


def test_artifact_has_no_schema1_form(client: Client) -> None:
    from tests.referrers_fixtures import referrer_manifest, subject_manifest

    client.must_push(
        "legacy/artifact", "v1", referrer_manifest(subject_manifest(), "application/x-sbom")
    )
    answer = client.get("/v2/legacy/artifact/manifests/v1", headers={"Accept": SIGNED})
    assert answer.status == 404
    assert answer.error_codes == ["MANIFEST_UNKNOWN"]


# -- Docker V1 pulls ----------------------------------------------------------------------------


def test_v1_pull_walk_matches_the_v2_image(client: Client) -> None:
    manifest, layers = docker_image(client, "legacy/v1")
    client.must_push("legacy/v1", "latest", json.dumps(manifest).encode(), DOCKER_MANIFEST)
    ping = client.get("/v1/_ping")
    assert ping.status == 200 and ping.json() is True
    tags = client.get("/v1/repositories/legacy/v1/tags").json()
    top = tags["latest"]
    assert client.get("/v1/repositories/legacy/v1/tags/latest").json() == top
    images = [entry["id"] for entry in client.get("/v1/repositories/legacy/v1/images").json()]
    assert top in images
    ancestry = client.get(f"/v1/images/{top}/ancestry").json()
    assert ancestry[0] == top and len(ancestry) == 3
    pulled = []
    for image_id in reversed(ancestry):
        meta = client.get(f"/v1/images/{image_id}/json").json()
        assert meta["id"] == image_id
        layer = client.get(f"/v1/images/{image_id}/layer")
        assert layer.status == 307
        if not meta.get("throwaway"):
            pulled.append(follow_blob_url(layer.header("Location")))
    assert pulled == layers
    # The same ids as the schema 1 conversion carries.
    converted = json.loads(
        client.get("/v2/legacy/v1/manifests/latest", headers={"Accept": SIGNED}).body
    )
    assert json.loads(converted["history"][0]["v1Compatibility"])["id"] == top


def follow_blob_url(url: str) -> bytes:
    import requests

    fetched = requests.get(url, timeout=30)
    assert fetched.status_code == 200
    return fetched.content


def test_v1_push_is_refused(client: Client) -> None:
    answer = client.put("/v1/repositories/legacy/v1/", body=b"[]")
    assert answer.status == 405
    assert "V1 pushes are not supported" in answer.json()["errors"][0]["message"]


def test_v1_pulls_can_be_switched_off(client: Client, settings) -> None:
    settings(v1_pulls=False)
    assert client.get("/v1/_ping").status == 404


def test_v1_unknown_image_is_404(client: Client) -> None:
    assert client.get(f"/v1/images/{'b' * 64}/json").status == 404
    assert client.get("/v1/images/not-an-id/json").status == 404


def test_v1_unknown_repository_is_404(client: Client) -> None:
    assert client.get("/v1/repositories/legacy/none/tags").status == 404


def test_v1_pull_of_private_repository_needs_credentials(client: Client, auth) -> None:
    from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER

    pusher = client.login(ADMIN_USER, ADMIN_PASSWORD, "repository:root/app:pull,push")
    manifest, _ = docker_image(pusher, "root/app")
    pusher.must_push("root/app", "latest", json.dumps(manifest).encode(), DOCKER_MANIFEST)
    assert client.get("/v1/repositories/root/app/tags").status == 401
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    answer = admin.get("/v1/repositories/root/app/images", headers={"X-Docker-Token": "true"})
    assert answer.status == 200
    token = answer.header("X-Docker-Token")
    assert token.startswith("signature=") and 'repository="root/app"' in token
    holder = Client(client.app, f"Token {token}")
    top = holder.get("/v1/repositories/root/app/tags").json()["latest"]
    assert holder.get(f"/v1/images/{top}/ancestry").status == 200
    assert client.get(f"/v1/images/{top}/ancestry").status == 401
