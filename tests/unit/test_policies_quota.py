"""Storage quotas (Quay's /quota and /quota/<id>/limit): usage kept in the link transactions,
Reject and Warning thresholds, the overshoot bound under concurrent uploads, and repair."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest

from chalicelib.storage import quotas as quota_store
from tests.client import Client
from tests.images import OCI_MANIFEST, sha256


@pytest.fixture(autouse=True)
def fresh_quota_cache() -> Iterator[None]:
    quota_store.forget()
    yield
    quota_store.forget()


def blob(seed: str, size: int) -> bytes:
    return (seed.encode() * size)[:size]


def set_quota(client: Client, namespace: str, limit_bytes: int, *limits: tuple[str, int]) -> str:
    base = f"/api/v1/organization/{namespace}/quota"
    answer = client.post(base, body=json.dumps({"limit_bytes": limit_bytes}).encode())
    assert answer.status == 201, answer.body
    quota_id = client.get(base).json()[0]["id"]
    for kind, percent in limits:
        body = json.dumps({"type": kind, "threshold_percent": percent}).encode()
        made = client.post(f"{base}/{quota_id}/limit", body=body)
        assert made.status == 201, made.body
    return str(quota_id)


def used(client: Client, namespace: str) -> int:
    return int(client.get(f"/api/v1/organization/{namespace}/quota/usage").json()["used_bytes"])


def repo_used(client: Client, repo: str) -> int:
    return int(client.get(f"/api/v1/repository/{repo}/usage").json()["used_bytes"])


def upload(client: Client, repo: str, data: bytes):
    return client.post(
        f"/v2/{repo}/blobs/uploads/?digest={sha256(data)}",
        headers={"Content-Type": "application/octet-stream"},
        body=data,
    )


def denied(answer, message: str) -> None:
    assert answer.status == 403, answer.body
    error = answer.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"] == message


# -- usage ---------------------------------------------------------------------------------


def test_blob_shared_by_two_repositories_of_a_namespace_counts_once(client: Client) -> None:
    data = blob("a", 300)
    client.push_blob("acme/app", data)
    client.push_blob("acme/web", data)
    client.push_blob("acme/web", blob("b", 50))
    assert used(client, "acme") == 350
    assert repo_used(client, "acme/app") == 300
    assert repo_used(client, "acme/web") == 350


def test_blob_shared_across_namespaces_counts_in_each(client: Client) -> None:
    data = blob("a", 300)
    client.push_blob("acme/app", data)
    client.push_blob("other/app", data)
    assert used(client, "acme") == 300
    assert used(client, "other") == 300


def test_relinking_a_blob_changes_nothing(client: Client) -> None:
    data = blob("a", 300)
    client.push_blob("acme/app", data)
    client.push_blob("acme/app", data)
    assert client.post(f"/v2/acme/web/blobs/uploads/?mount={sha256(data)}").status == 201
    assert client.post(f"/v2/acme/web/blobs/uploads/?mount={sha256(data)}").status == 201
    assert used(client, "acme") == 300
    assert repo_used(client, "acme/web") == 300


def test_usage_drops_when_the_last_repository_unlinks(client: Client) -> None:
    data = blob("a", 300)
    client.push_blob("acme/app", data)
    client.push_blob("acme/web", data)
    assert client.delete(f"/v2/acme/app/blobs/{sha256(data)}").status == 202
    assert (used(client, "acme"), repo_used(client, "acme/app")) == (300, 0)
    assert client.delete(f"/v2/acme/web/blobs/{sha256(data)}").status == 202
    assert used(client, "acme") == 0
    assert client.delete(f"/v2/acme/web/blobs/{sha256(data)}").status == 404


def test_garbage_collection_of_links_lowers_usage(client: Client, clock) -> None:
    from chalicelib import cleanup

    client.push_blob("acme/app", blob("a", 300))
    clock.advance(days=30)
    cleanup.run()
    assert used(client, "acme") == 0


# -- reject and warning --------------------------------------------------------------------


def test_upload_over_the_reject_limit_is_denied(client: Client) -> None:
    set_quota(client, "acme", 1000, ("Reject", 100))
    client.push_blob("acme/app", blob("a", 900))
    denied(
        upload(client, "acme/app", blob("b", 200)),
        "quota exceeded for namespace acme: 1.1 KB of 1 KB",
    )
    assert client.head(f"/v2/acme/app/blobs/{sha256(blob('b', 200))}").status == 404
    assert used(client, "acme") == 900
    assert upload(client, "acme/app", blob("c", 100)).status == 201  # exactly at the limit


def test_chunked_upload_finish_over_the_limit_is_denied_and_can_be_retried(
    client: Client,
) -> None:
    quota_id = set_quota(client, "acme", 1000, ("Reject", 100))
    client.push_blob("acme/app", blob("a", 900))
    data = blob("b", 200)
    started = client.post("/v2/acme/app/blobs/uploads/")
    location = started.header("Location")
    assert location
    finish = f"{location}?digest={sha256(data)}"
    denied(client.put(finish, body=data), "quota exceeded for namespace acme: 1.1 KB of 1 KB")
    body = json.dumps({"limit_bytes": 2000}).encode()
    assert client.put(f"/api/v1/organization/acme/quota/{quota_id}", body=body).status == 200
    quota_store.forget()
    assert client.put(finish, body=data).status == 201  # the session survived the refusal


def test_mount_over_the_reject_limit_is_denied(client: Client) -> None:
    data = blob("b", 200)
    client.push_blob("other/app", data)
    set_quota(client, "acme", 1000, ("Reject", 90))
    client.push_blob("acme/app", blob("a", 800))
    answer = client.post(f"/v2/acme/app/blobs/uploads/?mount={sha256(data)}&from=other/app")
    denied(answer, "quota exceeded for namespace acme: 1 KB of 900 B")


def test_a_blob_the_namespace_holds_is_free_over_the_limit(client: Client) -> None:
    data = blob("a", 900)
    client.push_blob("acme/app", data)
    set_quota(client, "acme", 500, ("Reject", 100))
    assert upload(client, "acme/web", data).status == 201
    assert client.post(f"/v2/acme/ci/blobs/uploads/?mount={sha256(data)}").status == 201


def test_manifest_stored_in_s3_over_the_limit_is_denied(client: Client) -> None:
    small = client.image_document("acme/app", seed="q")
    small["annotations"] = {"padding": "x" * 70_000}  # over 64 KiB: kept in S3
    body = json.dumps(small).encode()
    set_quota(client, "acme", used(client, "acme") + 50_000, ("Reject", 100))
    answer = client.push_manifest("acme/app", "big", body, OCI_MANIFEST)
    assert answer.status == 403, answer.body
    assert answer.json()["errors"][0]["message"].startswith("quota exceeded for namespace acme")
    small["annotations"] = {"padding": "x" * 100}
    client.must_push("acme/app", "small", json.dumps(small).encode())


def test_warning_limit_logs_and_the_push_succeeds(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    set_quota(client, "acme", 1000, ("Warning", 50), ("Reject", 100))
    client.push_blob("acme/app", blob("a", 400))
    assert not [r for r in caplog.records if "quota warning" in r.getMessage()]
    with caplog.at_level(logging.WARNING):
        assert upload(client, "acme/app", blob("b", 200)).status == 201
    (record,) = [r for r in caplog.records if "quota warning" in r.getMessage()]
    assert "namespace acme: 600 B of 1 KB" in record.getMessage()


def test_concurrent_uploads_overshoot_at_most_what_is_in_flight(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight uploads of distinct 100-byte blobs start when 900 of 1000 bytes are used, and
    all read the usage before any commits (a barrier holds them there): each sees room,
    so all land. The overshoot is what was in flight: at most 8 blobs' bytes. The next
    upload is refused."""
    from chalicelib.policies import quotas as rules

    set_quota(client, "acme", 1000, ("Reject", 100))
    client.push_blob("acme/app", blob("a", 900))
    workers = 8
    barrier = threading.Barrier(workers, timeout=30)
    real_usage = quota_store.namespace_usage

    def usage_then_wait(namespace: str) -> int:
        found = real_usage(namespace)
        barrier.wait()
        return found

    monkeypatch.setattr(rules.store, "namespace_usage", usage_then_wait)
    statuses: list[int] = []

    def push(n: int) -> None:
        statuses.append(upload(client, "acme/app", blob(f"c{n}", 100)).status)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(rules.store, "namespace_usage", real_usage)
    assert statuses == [201] * workers
    overshoot = used(client, "acme") - 1000
    assert 0 < overshoot <= workers * 100
    assert upload(client, "acme/app", blob("d", 1)).status == 403


# -- repair --------------------------------------------------------------------------------


def test_repair_recomputes_drifted_usage(client: Client) -> None:
    client.push_blob("acme/app", blob("a", 300))
    client.push_blob("acme/web", blob("a", 300))
    client.push_blob("acme/web", blob("b", 20))
    model = quota_store.UsageModel
    drift = [model.bytes_used.add(12345), model.kind.set(model)]
    model("usage acme", "total 3").update(actions=drift)
    assert used(client, "acme") == 320 + 12345
    dry = client.post("/api/v1/organization/acme/quota/repair?dry_run=true").json()
    assert (dry["before_bytes"], dry["after_bytes"]) == (320 + 12345, 320)
    assert used(client, "acme") == 320 + 12345
    fixed = client.post("/api/v1/organization/acme/quota/repair").json()
    assert fixed["after_bytes"] == 320
    assert used(client, "acme") == 320
    assert repo_used(client, "acme/web") == 320
    assert client.delete(f"/v2/acme/app/blobs/{sha256(blob('a', 300))}").status == 202
    assert used(client, "acme") == 320  # the membership was rebuilt too


# -- the API -------------------------------------------------------------------------------


def test_quota_api_follows_quay(client: Client) -> None:
    base = "/api/v1/organization/acme/quota"
    assert client.get(base).json() == []
    quota_id = set_quota(client, "acme", 10_000, ("Warning", 80))
    (view,) = client.get(base).json()
    limit_id = view["limits"][0]["id"]
    assert view == {
        "id": quota_id,
        "limit_bytes": 10_000,
        "limits": [{"id": limit_id, "type": "Warning", "limit_percent": 80}],
    }
    body = json.dumps({"threshold_percent": 90}).encode()
    changed = client.put(f"{base}/{quota_id}/limit/{limit_id}", body=body)
    assert changed.json()["limits"][0]["limit_percent"] == 90
    assert client.get(f"{base}/{quota_id}/limit").json()[0]["limit_percent"] == 90
    assert client.delete(f"{base}/{quota_id}/limit/{limit_id}").status == 204
    assert client.get(f"{base}/{quota_id}").json()["limits"] == []
    assert client.delete(f"{base}/{quota_id}").status == 204
    assert client.get(base).json() == []


@pytest.mark.parametrize(
    ("limits", "extra"),
    [
        ((("Reject", 100),), {"type": "Reject", "threshold_percent": 90}),
        ((("Warning", 80),), {"type": "Warning", "threshold_percent": 80}),
        ((), {"type": "Stop", "threshold_percent": 80}),
        ((), {"type": "Warning", "threshold_percent": 0}),
        ((), {"type": "Warning", "threshold_percent": 101}),
        ((), {"type": "Warning"}),
    ],
)
def test_invalid_quota_limit_is_refused(client: Client, limits: tuple, extra: dict) -> None:
    quota_id = set_quota(client, "acme", 1000, *limits)
    path = f"/api/v1/organization/acme/quota/{quota_id}/limit"
    assert client.post(path, body=json.dumps(extra).encode()).status == 400
    assert len(client.get(path).json()) == len(limits)


@pytest.mark.parametrize("limit_bytes", [0, -1, "10", True, 2**64])
def test_invalid_quota_is_refused(client: Client, limit_bytes: object) -> None:
    body = json.dumps({"limit_bytes": limit_bytes}).encode()
    assert client.post("/api/v1/organization/acme/quota", body=body).status == 400


def test_second_quota_is_refused(client: Client) -> None:
    set_quota(client, "acme", 1000)
    body = json.dumps({"limit_bytes": 5}).encode()
    assert client.post("/api/v1/organization/acme/quota", body=body).status == 400


def test_human_sizes() -> None:
    from chalicelib.policies.quotas import human

    assert human(10_200_000_000) == "10.2 GB"
    assert human(10_000_000_000) == "10 GB"
    assert human(999) == "999 B"
    assert human(1_000) == "1 KB"


def test_admin_cli_sets_quotas_and_shows_usage(client: Client) -> None:
    from tests.unit.test_policies_prune import admin

    client.push_blob("acme/app", blob("a", 300))
    shown = admin(client, "set-quota", "acme", "1KB", "--reject", "100", "--warning", "80")
    assert shown["limit_bytes"] == 1000
    assert sorted((x["type"], x["limit_percent"]) for x in shown["limits"]) == [
        ("Reject", 100),
        ("Warning", 80),
    ]
    again = admin(client, "set-quota", "acme", "2KB", "--reject", "90")
    assert sorted((x["type"], x["limit_percent"]) for x in again["limits"]) == [
        ("Reject", 90),
        ("Warning", 80),
    ]
    assert admin(client, "quota", "acme")["used_bytes"] == 300
    assert admin(client, "usage", "acme/app") == {"repository": "acme/app", "used_bytes": 300}
    assert admin(client, "usage-repair", "acme", "--dry-run")["after_bytes"] == 300
    assert admin(client, "delete-quota", "acme") == {"deleted": True}
    assert admin(client, "quota", "acme")["quota"] is None
