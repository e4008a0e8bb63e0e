"""Quay-shaped management endpoints the console reads: the signed-in user, a repository
with what the caller may do, tags with size and platforms, a manifest with its config, and
tag expiry changes and deletes, each authorized as the API authorizes everything else."""

from __future__ import annotations

import json
import time

import pytest

from tests.client import Client
from tests.images import OCI_INDEX, OCI_MANIFEST, sha256
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER


def push_image(client: Client, repo: str, tag: str, arch: str = "amd64") -> dict:
    layer = f"layer-{arch}".encode() * 10
    doc = client.image_document(repo, seed=arch, layers=(layer,), labels={"team": "core"})
    client.must_push(repo, tag, json.dumps(doc).encode())
    return doc


def push_index(client: Client, repo: str, tag: str) -> tuple[bytes, list[dict]]:
    children = []
    for arch in ("amd64", "arm64"):
        doc = push_image(client, repo, f"only-{arch}", arch)
        body = json.dumps(doc).encode()
        children.append((doc, body, arch))
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256(body),
                    "size": len(body),
                    "platform": {"os": "linux", "architecture": arch},
                }
                for _, body, arch in children
            ],
        }
    ).encode()
    client.must_push(repo, tag, index, OCI_INDEX)
    return index, [doc for doc, _, _ in children]


def image_size(doc: dict) -> int:
    return doc["config"]["size"] + sum(layer["size"] for layer in doc["layers"])


def tags_of(client: Client, repo: str) -> dict[str, dict]:
    answer = client.get(f"/api/v1/repository/{repo}/tag/")
    assert answer.status == 200, answer.body
    return {t["name"]: t for t in answer.json()["tags"]}


def test_tag_list_shows_compressed_size_and_platforms_of_an_index(client: Client) -> None:
    index, children = push_index(client, "acme/multi", "v1")
    row = tags_of(client, "acme/multi")["v1"]
    assert row["is_manifest_list"] is True
    assert row["platforms"] == ["linux/amd64", "linux/arm64"]
    assert row["size"] == sum(image_size(doc) for doc in children)
    assert row["manifest_size"] == len(index)
    assert row["manifest_digest"] == sha256(index)
    single = tags_of(client, "acme/multi")["only-arm64"]
    assert single["is_manifest_list"] is False
    assert single["kind"] == "image"
    assert single["size"] == image_size(children[1])


def test_repository_view_counts_tags_and_says_what_the_caller_may_do(client: Client) -> None:
    push_image(client, "acme/app", "v1")
    push_image(client, "acme/app", "v2", "arm64")
    answer = client.get("/api/v1/repository/acme/app")
    assert answer.status == 200, answer.body
    view = answer.json()
    assert view["namespace"] == "acme" and view["name"] == "app"
    assert view["tag_count"] == 2
    assert abs(view["last_modified"] - time.time()) < 60
    assert view["can_write"] is True and view["can_admin"] is True  # auth off: local admin
    assert view["is_public"] is False


def test_repository_view_of_an_unknown_repository_is_404(client: Client) -> None:
    answer = client.get("/api/v1/repository/acme/nothing")
    assert answer.status == 404
    assert answer.error_codes == ["NAME_UNKNOWN"]


def test_manifest_view_has_the_config_layers_and_raw_bytes(client: Client) -> None:
    doc = push_image(client, "acme/app", "v1")
    body = json.dumps(doc).encode()
    answer = client.get(f"/api/v1/repository/acme/app/manifest/{sha256(body)}")
    assert answer.status == 200, answer.body
    view = answer.json()
    assert view["manifest_data"] == body.decode()
    assert view["config"]["config"]["Labels"] == {"team": "core"}
    assert [layer["compressed_size"] for layer in view["layers"]] == [
        layer["size"] for layer in doc["layers"]
    ]
    assert view["layers_compressed_size"] == image_size(doc)


def test_manifest_view_of_an_index_lists_children_per_platform(client: Client) -> None:
    index, _ = push_index(client, "acme/multi", "v1")
    view = client.get(f"/api/v1/repository/acme/multi/manifest/{sha256(index)}").json()
    assert view["is_manifest_list"] is True
    assert [c["platform_name"] for c in view["manifests"]] == ["linux/amd64", "linux/arm64"]


def test_manifest_view_with_a_malformed_digest_is_400(client: Client) -> None:
    answer = client.get("/api/v1/repository/acme/app/manifest/sha256:nothex")
    assert answer.status == 400


def test_tag_expiry_is_set_and_cleared(client: Client) -> None:
    push_image(client, "acme/app", "v1")
    later = int(time.time()) + 3600
    answer = client.put(
        "/api/v1/repository/acme/app/tag/v1", body=json.dumps({"expiration": later}).encode()
    )
    assert answer.status == 201, answer.body
    assert tags_of(client, "acme/app")["v1"]["end_ts"] == later
    answer = client.put(
        "/api/v1/repository/acme/app/tag/v1", body=json.dumps({"expiration": None}).encode()
    )
    assert answer.status == 201
    assert "end_ts" not in tags_of(client, "acme/app")["v1"]


@pytest.mark.parametrize("expiration", [1, "soon", True, 10**20])
def test_tag_expiry_in_the_past_or_malformed_is_400_and_changes_nothing(
    client: Client, expiration: object
) -> None:
    push_image(client, "acme/app", "v1")
    answer = client.put(
        "/api/v1/repository/acme/app/tag/v1", body=json.dumps({"expiration": expiration}).encode()
    )
    assert answer.status == 400
    assert "end_ts" not in tags_of(client, "acme/app")["v1"]


def test_tag_expiry_of_an_unknown_tag_is_404(client: Client) -> None:
    push_image(client, "acme/app", "v1")
    answer = client.put(
        "/api/v1/repository/acme/app/tag/nope",
        body=json.dumps({"expiration": int(time.time()) + 60}).encode(),
    )
    assert answer.status == 404


def test_tag_delete_removes_only_the_tag(client: Client) -> None:
    doc = push_image(client, "acme/app", "v1")
    client.must_push("acme/app", "v2", json.dumps(doc).encode())
    assert client.delete("/api/v1/repository/acme/app/tag/v1").status == 204
    assert set(tags_of(client, "acme/app")) == {"v2"}
    assert client.delete("/api/v1/repository/acme/app/tag/v1").status == 404


def test_current_user_with_auth_off_is_the_local_administrator(client: Client) -> None:
    view = client.get("/api/v1/user/").json()
    assert view["username"] == "local" and view["super_user"] is True
    assert view["organizations"] == []  # no account "local", so no namespace of that name


# -- with auth on ---------------------------------------------------------------------------


@pytest.fixture
def secured(client: Client, auth: None) -> Client:
    """Auth on; `alice` owns the acme organization, `bob` is a user with no grants, and
    acme/app has a tag."""
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        made = admin.post(
            "/api/v1/users",
            body=json.dumps({"username": name, "password": "password-123"}).encode(),
        )
        assert made.status == 201, made.body
    made = admin.post(
        "/api/v1/organizations", body=json.dumps({"name": "acme", "owners": ["alice"]}).encode()
    )
    assert made.status == 201, made.body
    pusher = client.login(ADMIN_USER, ADMIN_PASSWORD, "repository:acme/app:pull,push")
    push_image(pusher, "acme/app", "v1")
    return client


def test_current_user_lists_the_namespaces_it_administers(secured: Client) -> None:
    view = secured.as_basic("alice", "password-123").get("/api/v1/user/").json()
    assert view["anonymous"] is False and view["username"] == "alice"
    assert view["super_user"] is False
    admin_of = {o["name"] for o in view["organizations"] if o["is_org_admin"]}
    assert admin_of == {"acme", "alice"}


def test_current_user_without_credentials_is_anonymous(secured: Client) -> None:
    assert secured.get("/api/v1/user/").json() == {"anonymous": True}


def test_user_without_rights_may_not_see_or_change_a_private_repository(secured: Client) -> None:
    bob = secured.as_basic("bob", "password-123")
    assert bob.get("/api/v1/repository/acme/app").status == 403
    assert bob.get("/api/v1/repository/acme/app/tag/").status == 403
    assert bob.delete("/api/v1/repository/acme/app/tag/v1").status == 403
    later = json.dumps({"expiration": int(time.time()) + 60}).encode()
    assert bob.put("/api/v1/repository/acme/app/tag/v1", body=later).status == 403
    assert secured.get("/api/v1/repository/acme/app").status == 401  # anonymous: sign in


def test_reader_sees_the_repository_but_may_not_write(secured: Client) -> None:
    alice = secured.as_basic("alice", "password-123")
    granted = alice.put(
        "/api/v1/repository/acme/app/permissions/user/bob",
        body=json.dumps({"role": "read"}).encode(),
    )
    assert granted.status == 200, granted.body
    bob = secured.as_basic("bob", "password-123")
    view = bob.get("/api/v1/repository/acme/app").json()
    assert view["can_write"] is False and view["can_admin"] is False
    assert bob.delete("/api/v1/repository/acme/app/tag/v1").status == 403
    assert "v1" in tags_of(bob, "acme/app")


def test_anonymous_callers_browse_public_repositories(secured: Client) -> None:
    alice = secured.as_basic("alice", "password-123")
    answer = alice.post(
        "/api/v1/repository/acme/app/changevisibility",
        body=json.dumps({"visibility": "public"}).encode(),
    )
    assert answer.status == 200
    view = secured.get("/api/v1/repository/acme/app").json()
    assert view["is_public"] is True and view["can_write"] is False
    assert "v1" in tags_of(secured, "acme/app")
    assert secured.delete("/api/v1/repository/acme/app/tag/v1").status == 401


def test_bearer_token_of_an_account_reads_the_management_api(secured: Client) -> None:
    alice = secured.login("alice", "password-123")
    view = alice.get("/api/v1/repository/acme/app").json()
    assert view["can_admin"] is True


def test_tag_count_stops_at_its_cap_and_skips_expired_tags(client: Client, clock) -> None:
    from chalicelib.storage import inventory

    doc = push_image(client, "acme/app", "v0")
    for n in range(1, 4):
        client.must_push("acme/app", f"v{n}", json.dumps(doc).encode())
    assert inventory.summary("acme/app", cap=3) == inventory.Summary(3, clock.now(), True)
    later = clock.now().timestamp() + 60
    answer = client.put(
        "/api/v1/repository/acme/app/tag/v0", body=json.dumps({"expiration": later}).encode()
    )
    assert answer.status == 201
    clock.advance(seconds=120)
    summary = inventory.summary("acme/app")
    assert (summary.count, summary.capped) == (3, False)


def test_repository_view_includes_tags_when_asked(client: Client) -> None:
    doc = push_image(client, "acme/app", "v1")
    view = client.get("/api/v1/repository/acme/app?includeTags=true").json()
    assert set(view["tags"]) == {"v1"}
    assert view["tags"]["v1"]["size"] == image_size(doc)
    assert "tags" not in client.get("/api/v1/repository/acme/app").json()
