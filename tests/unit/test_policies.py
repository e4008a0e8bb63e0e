"""Immutable tags: policies per namespace and repository, in Quay's API shapes, and their
effect on pushes, deletes and expiry (auth off: the caller is the local administrator)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chalicelib.storage import policies as policy_store
from tests.client import Client
from tests.images import sha256
from tests.referrers_fixtures import empty_descriptor

OCI = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(autouse=True)
def fresh_policy_cache() -> Iterator[None]:
    policy_store.forget()
    yield
    policy_store.forget()


def manifest(seed: str, annotations: dict[str, str] | None = None) -> bytes:
    """A small image manifest whose blobs travel inline (nothing to upload first)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI,
            "config": empty_descriptor(),
            "layers": [empty_descriptor()],
            "annotations": {"seed": seed, **(annotations or {})},
        }
    ).encode()


def add_policy(client: Client, path: str, document: dict, status: int = 201) -> str:
    answer = client.post(path, body=json.dumps(document).encode())
    assert answer.status == status, answer.body
    return str(answer.json().get("uuid", "")) if status == 201 else ""


def repo_policy(client: Client, repo: str, document: dict | None = None) -> str:
    return add_policy(client, f"/api/v1/repository/{repo}/immutabilitypolicy/", document or {})


def refused(answer, tag: str, policy: str) -> None:
    assert answer.status == 403, answer.body
    error = answer.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"] == f"tag {tag} is immutable (policy {policy})"


def test_immutable_tag_cannot_be_moved(client: Client) -> None:
    client.must_push("acme/app", "v1.2.0", manifest("a"))
    policy = repo_policy(client, "acme/app", {"tagPattern": r"^v[0-9]+\.[0-9]+\.[0-9]+$"})
    refused(client.push_manifest("acme/app", "v1.2.0", manifest("b")), "v1.2.0", policy)
    pulled = client.get("/v2/acme/app/manifests/v1.2.0")
    assert pulled.header("Docker-Content-Digest") == sha256(manifest("a"))


def test_repushing_the_same_digest_to_an_immutable_tag_succeeds(client: Client) -> None:
    client.must_push("acme/app", "v1", manifest("a"))
    repo_policy(client, "acme/app")
    client.must_push("acme/app", "v1", manifest("a"))


def test_new_tag_on_covered_name_is_created_once(client: Client) -> None:
    client.must_push("acme/app", "seed", manifest("seed"))
    policy = repo_policy(client, "acme/app", {"tagPattern": "^release-"})
    client.must_push("acme/app", "release-1", manifest("a"))
    refused(client.push_manifest("acme/app", "release-1", manifest("b")), "release-1", policy)


def test_tags_the_pattern_does_not_cover_still_move(client: Client) -> None:
    client.must_push("acme/app", "latest", manifest("a"))
    repo_policy(client, "acme/app", {"tagPattern": "^v"})
    client.must_push("acme/app", "latest", manifest("b"))


def test_tag_pattern_matches_false_covers_the_other_tags(client: Client) -> None:
    client.must_push("acme/app", "latest", manifest("a"))
    client.must_push("acme/app", "dev-1", manifest("a"))
    policy = repo_policy(client, "acme/app", {"tagPattern": "^dev-", "tagPatternMatches": False})
    refused(client.push_manifest("acme/app", "latest", manifest("b")), "latest", policy)
    client.must_push("acme/app", "dev-1", manifest("b"))


def test_immutable_tag_cannot_be_deleted(client: Client) -> None:
    client.must_push("acme/app", "v1", manifest("a"))
    policy = repo_policy(client, "acme/app")
    refused(client.delete("/v2/acme/app/manifests/v1"), "v1", policy)
    assert client.get("/v2/acme/app/manifests/v1").status == 200


def test_manifest_of_an_immutable_tag_cannot_be_deleted(client: Client) -> None:
    client.must_push("acme/app", "scratch", manifest("a"))
    client.must_push("acme/app", "v1", manifest("a"))
    policy = repo_policy(client, "acme/app", {"tagPattern": "^v"})
    refused(client.delete(f"/v2/acme/app/manifests/{sha256(manifest('a'))}"), "v1", policy)
    # Refused before it began: the mutable tag on the same manifest is still there.
    assert client.get("/v2/acme/app/manifests/scratch").status == 200


def test_manifest_delete_refused_for_a_tag_added_after_its_check(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag pushed between the up-front check and the delete's mark is caught per batch."""
    from chalicelib.policies import immutability

    client.must_push("acme/app", "v1", manifest("a"))
    policy = repo_policy(client, "acme/app", {"tagPattern": "^v"})
    monkeypatch.setattr(immutability, "refuse_manifest_delete", lambda repo, digest: None)
    refused(client.delete(f"/v2/acme/app/manifests/{sha256(manifest('a'))}"), "v1", policy)
    assert client.get("/v2/acme/app/manifests/v1").status == 200


def test_manifest_without_immutable_tags_is_deleted(client: Client) -> None:
    client.must_push("acme/app", "latest", manifest("a"))
    repo_policy(client, "acme/app", {"tagPattern": "^v"})
    assert client.delete(f"/v2/acme/app/manifests/{sha256(manifest('a'))}").status == 202


def test_namespace_policy_covers_every_repository_of_the_namespace(client: Client) -> None:
    client.must_push("acme/app", "v1", manifest("a"))
    client.must_push("acme/web", "v1", manifest("a"))
    client.must_push("other/app", "v1", manifest("a"))
    policy = add_policy(client, "/api/v1/organization/acme/immutabilitypolicy/", {})
    for repo in ("acme/app", "acme/web"):
        refused(client.push_manifest(repo, "v1", manifest("b")), "v1", policy)
    client.must_push("other/app", "v1", manifest("b"))


def test_immutable_tag_ignores_expires_after(client: Client, clock) -> None:
    client.must_push("acme/app", "seed", manifest("seed"))
    repo_policy(client, "acme/app")
    client.must_push("acme/app", "v1", manifest("a", {"quay.expires-after": "1h"}))
    clock.advance(hours=2)
    assert client.get("/v2/acme/app/manifests/v1").status == 200


def test_new_policy_releases_the_expiry_of_live_tags(client: Client, clock) -> None:
    client.must_push("acme/app", "v1", manifest("a", {"quay.expires-after": "1h"}))
    client.must_push("acme/app", "tmp", manifest("b", {"quay.expires-after": "1h"}))
    add_policy(client, "/api/v1/organization/acme/immutabilitypolicy/", {"tagPattern": "^v"})
    clock.advance(hours=2)
    assert client.get("/v2/acme/app/manifests/v1").status == 200
    assert client.get("/v2/acme/app/manifests/tmp").status == 404


def test_tag_created_meanwhile_is_not_moved(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push that read "no tag yet" while another push created it loses on the tag item's
    condition, re-reads, and is refused: the race resolves in the transaction."""
    from chalicelib.storage import tags

    client.must_push("acme/app", "v1", manifest("a"))
    policy = repo_policy(client, "acme/app")
    real = tags.current_digest
    reads: list[str | None] = []

    def stale_first(repository: str, tag: str) -> str | None:
        found = None if not reads else real(repository, tag)
        reads.append(found)
        return found

    monkeypatch.setattr(tags, "current_digest", stale_first)
    refused(client.push_manifest("acme/app", "v1", manifest("b")), "v1", policy)
    assert reads[0] is None and reads[-1] == sha256(manifest("a"))


# -- the API -------------------------------------------------------------------------------


def test_immutability_policy_api_follows_quay(client: Client) -> None:
    client.must_push("acme/app", "v1", manifest("a"))
    base = "/api/v1/repository/acme/app/immutabilitypolicy/"
    policy = add_policy(client, base, {"tagPattern": "^v", "tagPatternMatches": True})
    listed = client.get(base).json()
    assert listed == {"policies": [{"uuid": policy, "tagPattern": "^v", "tagPatternMatches": True}]}
    changed = client.put(base + policy, body=json.dumps({"tagPattern": "^r"}).encode())
    assert changed.status == 204
    assert client.get(base + policy).json()["tagPattern"] == "^r"
    assert client.delete(base + policy).json() == {"uuid": policy}
    assert client.get(base + policy).status == 404
    client.must_push("acme/app", "v1", manifest("b"))


def test_duplicate_policy_is_refused(client: Client) -> None:
    base = "/api/v1/organization/acme/immutabilitypolicy/"
    add_policy(client, base, {"tagPattern": "^v"})
    add_policy(client, base, {"tagPattern": "^v"}, status=400)


def test_policy_for_unknown_repository_is_404(client: Client) -> None:
    answer = client.post("/api/v1/repository/acme/none/immutabilitypolicy/", body=b"{}")
    assert answer.status == 404


@pytest.mark.parametrize(
    "pattern",
    ["(a+)+$", "(a|aa)*b", "(a?){20}a{20}", r"(\w)\1", "(?=v)v", "[", "", "x" * 257, 5],
)
def test_unsafe_or_invalid_pattern_is_refused(client: Client, pattern: object) -> None:
    answer = client.post(
        "/api/v1/organization/acme/immutabilitypolicy/",
        body=json.dumps({"tagPattern": pattern}).encode(),
    )
    assert answer.status == 400, answer.body
    assert answer.json()["errors"][0]["code"] == "INVALID_REQUEST"


def test_immutable_tag_cannot_be_given_an_expiry(client: Client, clock) -> None:
    client.must_push("acme/app", "v1", manifest("a"))
    policy = repo_policy(client, "acme/app")
    path = "/api/v1/repository/acme/app/tag/v1"
    later = int(clock.now().timestamp()) + 3600
    refused(client.put(path, body=json.dumps({"expiration": later}).encode()), "v1", policy)
    assert client.put(path, body=json.dumps({"expiration": None}).encode()).status < 300
    clock.advance(hours=2)
    assert client.get("/v2/acme/app/manifests/v1").status == 200
