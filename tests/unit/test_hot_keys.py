"""Hot keys: the sharded catalog, each container's read cache with its staleness bound, and
sharded login-failure counters (docs/scale.md).

"Another container" is a second ReadCache serving this thread (cache.use): its writes drop
only its own cache, as a write in another Lambda container would.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib.storage import accounts, cache, calls, partitions, repositories
from chalicelib.storage.models import AuthItem, RepositoryModel
from tests.client import Client
from tests.images import sha256
from tests.referrers_fixtures import referrer_manifest, subject_manifest
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER


@contextmanager
def another_container() -> Iterator[None]:
    cache.use(cache.ReadCache())
    try:
        yield
    finally:
        cache.use(None)


@contextmanager
def dynamodb_reads() -> Iterator[Counter[tuple[str, str]]]:
    """(operation, partition key) of every DynamoDB read made meanwhile."""
    seen: Counter[tuple[str, str]] = Counter()

    def observe(service: str, operation: str, params: dict[str, Any]) -> None:
        if service == "dynamodb" and operation in ("GetItem", "Query", "BatchGetItem"):
            for _, _, key in partitions.touched(service, operation, params):
                seen[(operation, key)] += 1

    calls.install(origins=False)
    calls.observers.append(observe)
    try:
        yield seen
    finally:
        calls.observers.remove(observe)


def tag_digest(client: Client, repo: str, tag: str) -> str | None:
    answer = client.get(f"/v2/{repo}/manifests/{tag}")
    return answer.header("Docker-Content-Digest") if answer.status == 200 else None


def image(client: Client, repo: str, seed: str) -> bytes:
    return json.dumps(client.image_document(repo, seed=seed)).encode()


# -- the catalog ------------------------------------------------------------------------------


def add_repositories(names: list[str], listing: str | None = None) -> None:
    for name in names:
        RepositoryModel(name, listing=listing or repositories.listing_for(name)).save()


def walk_catalog(client: Client, n: int) -> list[str]:
    names: list[str] = []
    path = f"/v2/_catalog?n={n}"
    while path:
        answer = client.get(path)
        assert answer.status == 200, answer.body
        names += answer.json()["repositories"]
        link = answer.header("Link")
        path = link[1 : link.index(">")] if link else ""
    return names


def test_catalog_pages_across_shards_in_name_order(client: Client) -> None:
    names = [f"team-{i % 7}/app-{i:03d}" for i in range(60)]
    add_repositories(names)
    assert len({repositories.listing_for(name) for name in names}) > 8
    assert walk_catalog(client, 7) == sorted(names)
    assert walk_catalog(client, 1000) == sorted(names)
    middle = sorted(names)[29]
    page = client.get(f"/v2/_catalog?n=5&last={middle}").json()["repositories"]
    assert page == sorted(names)[30:35]


def test_pushed_repository_is_listed_in_its_shard(client: Client) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", "a"))
    item = RepositoryModel.get("org/app")
    assert item.listing == repositories.listing_for("org/app") != "catalog"
    assert client.get("/v2/_catalog").json()["repositories"] == ["org/app"]


def test_catalog_lists_the_old_partition_until_migrated_and_migration_reruns(
    client: Client,
) -> None:
    add_repositories(["old/a", "old/z"], listing="catalog")
    add_repositories(["new/m"])
    assert walk_catalog(client, 2) == ["new/m", "old/a", "old/z"]
    assert repositories.migrate_catalog() == 2
    assert RepositoryModel.get("old/a").listing == repositories.listing_for("old/a")
    assert repositories.migrate_catalog() == 0
    assert walk_catalog(client, 2) == ["new/m", "old/a", "old/z"]
    assert repositories.in_namespace("old") == ["old/a", "old/z"]


# -- the read cache ---------------------------------------------------------------------------


def test_popular_tag_is_read_once_per_bound_in_a_container(client: Client, clock) -> None:
    client.must_push("org/app", "latest", image(client, "org/app", "a"))
    with dynamodb_reads() as reads:
        for _ in range(50):
            assert client.get("/v2/org/app/manifests/latest").status == 200
        clock.advance(seconds=1.5)
        assert client.get("/v2/org/app/manifests/latest").status == 200
    assert reads[("GetItem", "org/app")] == 2


def test_tag_moved_in_this_process_is_seen_at_once(client: Client) -> None:
    client.must_push("org/app", "latest", image(client, "org/app", "a"))
    first = tag_digest(client, "org/app", "latest")
    client.must_push("org/app", "latest", image(client, "org/app", "b"))
    second = tag_digest(client, "org/app", "latest")
    assert first is not None and second is not None and first != second
    assert client.delete("/v2/org/app/manifests/latest").status == 202
    assert tag_digest(client, "org/app", "latest") is None


def test_any_write_in_this_process_drops_the_cache_not_only_the_registry_s(
    client: Client,
) -> None:
    """Cleanup, tests and tools write with their own calls: the cache watches botocore."""
    from chalicelib.registry.names import tag_sort_key
    from chalicelib.storage.models import TagModel

    client.must_push("org/app", "latest", image(client, "org/app", "a"))
    assert tag_digest(client, "org/app", "latest") is not None
    TagModel(repository="org/app", sort_key=tag_sort_key("latest")).delete()
    assert tag_digest(client, "org/app", "latest") is None


def test_cached_tag_is_refreshed_after_its_bound(client: Client, clock) -> None:
    client.must_push("org/app", "latest", image(client, "org/app", "a"))
    old = tag_digest(client, "org/app", "latest")
    with another_container():
        client.must_push("org/app", "latest", image(client, "org/app", "b"))
        new = tag_digest(client, "org/app", "latest")
    assert tag_digest(client, "org/app", "latest") == old  # within the bound: stale
    clock.advance(seconds=1.01)
    assert tag_digest(client, "org/app", "latest") == new != old


def test_manifest_deleted_in_another_container_is_served_until_the_bound(
    client: Client, clock
) -> None:
    body = image(client, "org/app", "a")
    client.must_push("org/app", "v1", body)
    path = f"/v2/org/app/manifests/{sha256(body)}"
    assert client.get(path).status == 200
    with another_container():
        assert client.delete(path).status == 202
        assert client.get(path).status == 404
    assert client.get(path).status == 200  # digest-addressed: right bytes, up to the bound
    clock.advance(seconds=1.01)
    assert client.get(path).status == 404


def test_missing_tag_is_not_cached(client: Client) -> None:
    assert tag_digest(client, "org/app", "latest") is None
    with another_container():
        client.must_push("org/app", "latest", image(client, "org/app", "a"))
    assert tag_digest(client, "org/app", "latest") is not None


def test_blob_links_are_read_once_per_bound(client: Client) -> None:
    digest = client.push_blob("org/app", b"layer bytes")
    with dynamodb_reads() as reads:
        for _ in range(20):
            assert client.get(f"/v2/org/app/blobs/{digest}").status == 307
            assert client.head(f"/v2/org/app/blobs/{digest}").status == 200
    assert reads[("GetItem", "org/app")] == 1


def test_referrers_of_a_popular_subject_are_read_once_until_a_new_referrer(
    client: Client,
) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    client.must_push("org/app", "sbom", referrer_manifest(subject, "application/x.sbom"))
    path = f"/v2/org/app/referrers/{sha256(subject)}"
    with dynamodb_reads() as reads:
        for _ in range(20):
            assert len(client.get(path).json()["manifests"]) == 1
    assert reads[("Query", f"org/app@{sha256(subject)}")] == 1
    client.must_push("org/app", "sig", referrer_manifest(subject, "application/x.sig"))
    assert len(client.get(path).json()["manifests"]) == 2


def test_tags_list_is_read_once_per_bound_and_sees_this_process_pushes(client: Client) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", "a"))
    with dynamodb_reads() as reads:
        for _ in range(10):
            assert client.get("/v2/org/app/tags/list").json()["tags"] == ["v1"]
    assert reads[("Query", "org/app")] == 1
    client.must_push("org/app", "v2", image(client, "org/app", "b"))
    assert client.get("/v2/org/app/tags/list").json()["tags"] == ["v1", "v2"]


def test_read_cache_off_reads_every_time(client: Client, settings) -> None:
    settings(read_cache_seconds=0)
    client.must_push("org/app", "latest", image(client, "org/app", "a"))
    with dynamodb_reads() as reads:
        for _ in range(5):
            assert client.get("/v2/org/app/manifests/latest").status == 200
    assert reads[("GetItem", "org/app")] == 5


def test_a_read_racing_a_write_is_not_kept(aws: None) -> None:
    reads = cache.ReadCache()
    partition = cache.dynamodb("table", "key")
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        if len(loads) == 1:
            reads.drop([partition])  # a write landed while this read was in flight
        return len(loads)

    assert reads.read(partition, "k", load) == 1
    assert reads.read(partition, "k", load) == 2
    assert reads.read(partition, "k", load) == 2  # kept from the second read on


def test_cache_keeps_to_its_byte_budget(aws: None) -> None:
    reads = cache.ReadCache(max_bytes=1000)
    for n in range(10):
        reads.read(cache.dynamodb("t", str(n)), "k", lambda n=n: n, size=300)

    def cached(n: int) -> bool:
        probe = reads.read(cache.dynamodb("t", str(n)), "k", lambda: -1, keep=lambda _: False)
        return probe != -1

    assert [n for n in range(10) if cached(n)] == [7, 8, 9]


def test_transaction_names_the_partition_of_each_item(aws: None) -> None:
    from chalicelib import config

    tags = config.settings.tags_table
    params = {
        "TransactItems": [
            {"Put": {"TableName": tags, "Item": {"repository": {"S": "a"}, "sort_key": {}}}},
            {"ConditionCheck": {"TableName": tags, "Key": {"repository": {"S": "b"}}}},
            {"Delete": {"TableName": tags, "Key": {"repository": {"S": "c"}}}},
        ]
    }
    assert [p[2] for p in partitions.touched("dynamodb", "TransactWriteItems", params)] == [
        "a",
        "b",
        "c",
    ]
    assert [p[2] for p in partitions.written("dynamodb", "TransactWriteItems", params)] == [
        "a",
        "c",
    ]


# -- item limits ------------------------------------------------------------------------------


def test_manifest_whose_references_outgrow_its_item_is_invalid_not_a_500(client: Client) -> None:
    from chalicelib.storage import manifests

    digests = [sha256(str(n).encode()) for n in range(manifests.MAX_REFERENCE_BYTES // 72 + 1)]
    layer = "application/vnd.oci.image.layer.v1.tar"
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digests[0],
            "size": 1,
        },
        "layers": [{"mediaType": layer, "digest": d, "size": 1} for d in digests[1:]],
    }
    answer = client.push_manifest("org/app", "v1", json.dumps(document).encode())
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_INVALID"]
    assert answer.json()["errors"][0]["detail"]["references"] == len(digests)
    assert client.get("/v2/org/app/manifests/v1").status == 404


# -- logins -----------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def login(client: Client, user: str, password: str) -> int:
    return client.get("/v2/auth?service=stratus", headers=basic(user, password)).status


@pytest.mark.usefixtures("auth")
def test_hot_robot_login_reads_its_items_once_per_bound(client: Client, clock) -> None:
    assert login(client, ADMIN_USER, ADMIN_PASSWORD) == 200
    clock.advance(seconds=2)
    with dynamodb_reads() as reads:
        for _ in range(10):
            assert login(client, ADMIN_USER, ADMIN_PASSWORD) == 200
    assert reads[("BatchGetItem", f"account {ADMIN_USER}")] == 1
    for shard in range(accounts.FAILURE_SHARDS):
        pk, _ = accounts.failure_key("user", ADMIN_USER, shard)
        assert reads[("BatchGetItem", pk)] == 1


@pytest.mark.usefixtures("auth")
def test_failures_counted_in_other_containers_shards_add_up_to_the_lockout(
    client: Client, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings(login_failures_per_user=4, login_failures_per_source=100)
    for shard in range(4):
        monkeypatch.setattr(accounts, "_FAILURE_SHARD", shard % accounts.FAILURE_SHARDS)
        with another_container():
            assert login(client, ADMIN_USER, "wrong-guess") == 401
    counters = [
        accounts.failure_key("user", ADMIN_USER, shard) for shard in range(accounts.FAILURE_SHARDS)
    ]
    assert len({pk for pk, _ in counters}) == accounts.FAILURE_SHARDS  # a partition each
    assert sum(1 for _ in AuthItem.batch_get(counters)) == min(4, accounts.FAILURE_SHARDS)
    assert login(client, ADMIN_USER, ADMIN_PASSWORD) == 429


@pytest.mark.usefixtures("auth")
def test_own_failure_is_counted_at_once_though_reads_are_cached(client: Client, settings) -> None:
    settings(login_failures_per_user=3, login_failures_per_source=100)
    assert login(client, ADMIN_USER, ADMIN_PASSWORD) == 200  # cached: no failures
    for _ in range(3):
        assert login(client, ADMIN_USER, "wrong-guess") == 401
    assert login(client, ADMIN_USER, ADMIN_PASSWORD) == 429


def test_an_ordinary_namespace_is_asked_once_per_bound_whether_it_is_a_cache(
    client: Client,
) -> None:
    """Every blob miss of a push asks (proxycache.config_for); the answer "no" is cached."""
    missing = "sha256:" + "0" * 64
    with dynamodb_reads() as reads:
        for _ in range(10):
            assert client.head(f"/v2/org/app/blobs/{missing}").status == 404
    assert reads[("GetItem", "account org")] == 1
