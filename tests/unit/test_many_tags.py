"""Many tags on one manifest: a CI that tags every build of an unchanged image gets to
thousands. Push, retag, tag delete and manifest delete work at 10,000 tags, past DynamoDB's
100 actions per transaction and its 400 KB item (distribution-spec "Deleting Manifests":
deleting a manifest removes its tags)."""

from __future__ import annotations

import json

import pytest

from chalicelib.registry import manifests as rules
from chalicelib.registry.names import tag_sort_key
from chalicelib.storage import manifests as store
from chalicelib.storage.models import ManifestModel, TagModel
from tests.client import Client
from tests.images import OCI_MANIFEST, sha256


def image(client: Client, repo: str, seed: str) -> bytes:
    doc = client.image_document(repo, seed=seed, layers=(f"layer-{seed}".encode(),))
    return json.dumps(doc).encode()


def tag_many(repo: str, body: bytes, count: int, prefix: str = "build-") -> list[str]:
    """Tag through the registry's own storage call (what a PUT by tag runs after parsing)."""
    parsed = rules.parse(body, OCI_MANIFEST)
    names = [f"{prefix}{i:05d}" for i in range(count)]
    for name in names:
        store.put(repo, parsed, name)
    return names


def copy_tag(repo: str, source: str, count: int, prefix: str = "ci-") -> list[str]:
    """`count` more tags exactly like `source` (pushed through the API), batch-written: the
    scale test is about what 10,000 existing tags cost later, not about writing them."""
    item = TagModel.get(repo, tag_sort_key(source))
    names = [f"{prefix}{i:05d}" for i in range(count)]
    with TagModel.batch_write() as batch:
        for name in names:
            attributes = {**item.attribute_values, "name": name, "sort_key": tag_sort_key(name)}
            batch.save(TagModel(**attributes))
    return names


def listed_tags(client: Client, repo: str) -> list[str]:
    names: list[str] = []
    path = f"/v2/{repo}/tags/list?n=1000"
    while path:
        answer = client.get(path)
        assert answer.status == 200, answer.body
        names += answer.json()["tags"]
        link = answer.header("Link")
        path = link[1 : link.index(">")] if link else ""
    return names


def test_ten_thousand_tags_on_one_manifest_push_retag_and_delete(client: Client) -> None:
    """Affordable in a unit test because local mode's moto patch (installed for every unit
    test) makes a transaction cost what it touches, not the whole table."""
    body = image(client, "ci/app", "one")
    other = image(client, "ci/app", "two")
    digest = sha256(body)
    names = tag_many("ci/app", body, 100)
    names += copy_tag("ci/app", names[0], 9_900)
    # through the API too: a push, a retag onto another manifest and a tag delete
    assert client.push_manifest("ci/app", "latest", body, OCI_MANIFEST).status == 201
    assert client.push_manifest("ci/app", names[0], other, OCI_MANIFEST).status == 201
    assert client.delete(f"/v2/ci/app/manifests/{names[1]}").status == 202
    manifest = ManifestModel.get("ci/app", digest)
    assert len(json.dumps(manifest.serialize(), default=str)) < 64 * 1024  # no per-tag growth
    assert len(listed_tags(client, "ci/app")) == 10_000

    assert client.delete(f"/v2/ci/app/manifests/{digest}").status == 202

    assert client.get(f"/v2/ci/app/manifests/{digest}").status == 404
    assert client.get(f"/v2/ci/app/manifests/{names[2]}").status == 404
    assert listed_tags(client, "ci/app") == [names[0]]
    assert client.get(f"/v2/ci/app/manifests/{names[0]}").body == other


def test_manifest_with_a_few_hundred_tags_is_deleted_with_all_of_them(client: Client) -> None:
    body = image(client, "ci/app", "one")
    kept = image(client, "ci/app", "kept")
    client.must_push("ci/app", "stays", kept)
    tag_many("ci/app", body, 250)
    assert client.delete(f"/v2/ci/app/manifests/{sha256(body)}").status == 202
    assert [t.name for t in TagModel.query("ci/app")] == ["stays"]


def test_push_during_a_manifest_delete_wins_and_its_tag_survives(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staged at the second batch of the delete: a push tags the manifest again. The delete
    stops with 429, the pushed tag points at a stored manifest, and a repeated delete
    finishes the job."""
    body = image(client, "ci/app", "one")
    digest = sha256(body)
    tag_many("ci/app", body, 200)
    real_transaction = store.transactions.transaction
    batches: list[int] = []

    def transaction_with_a_push_before_the_second_batch():
        batches.append(1)
        if len(batches) == 2:
            assert client.push_manifest("ci/app", "pushed", body, OCI_MANIFEST).status == 201
        return real_transaction()

    monkeypatch.setattr(
        store.transactions, "transaction", transaction_with_a_push_before_the_second_batch
    )
    answer = client.delete(f"/v2/ci/app/manifests/{digest}")
    monkeypatch.setattr(store.transactions, "transaction", real_transaction)
    assert (answer.status, answer.error_codes) == (429, ["TOOMANYREQUESTS"])
    assert client.get("/v2/ci/app/manifests/pushed").body == body
    assert client.get(f"/v2/ci/app/manifests/{digest}").body == body
    assert client.delete(f"/v2/ci/app/manifests/{digest}").status == 202
    assert list(TagModel.query("ci/app")) == []


def test_a_delete_cut_short_leaves_every_tag_pullable_until_it_is_repeated(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lambda that dies mid-delete leaves the mark and some tags; pulls go on working
    and the next DELETE completes it."""
    body = image(client, "ci/app", "one")
    digest = sha256(body)
    tag_many("ci/app", body, 150)
    real_delete_batch = store._delete_batch
    calls: list[int] = []

    def dies_at_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise TimeoutError("the Lambda ran out of time")
        return real_delete_batch(*args, **kwargs)

    monkeypatch.setattr(store, "_delete_batch", dies_at_the_second_batch)
    assert client.delete(f"/v2/ci/app/manifests/{digest}").status == 500
    monkeypatch.setattr(store, "_delete_batch", real_delete_batch)
    remaining = [t.name for t in TagModel.query("ci/app")]
    assert 0 < len(remaining) < 150
    for name in remaining:
        assert client.get(f"/v2/ci/app/manifests/{name}").body == body
    assert client.delete(f"/v2/ci/app/manifests/{digest}").status == 202
    assert list(TagModel.query("ci/app")) == []
    assert client.get(f"/v2/ci/app/manifests/{digest}").status == 404
