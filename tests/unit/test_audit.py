"""The audit log: an entry per action, with who, from where, what and how it ended; never a
secret; spread over shards; read through Quay's logs API and `stratus admin logs`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import admin
from chalicelib.events import audit, subscriber
from chalicelib.events.actor import Actor
from chalicelib.storage.models import AuditModel
from tests.client import Client
from tests.events_fixtures import Streams
from tests.images import sha256
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER

REPO = "acme/app"
PASSWORD = "password-1234"


def _entries(**where: str) -> list[AuditModel]:
    rows = [row for row in AuditModel.scan() if all(getattr(row, k) == v for k, v in where.items())]
    return sorted(rows, key=lambda row: row.sk)


@pytest.fixture
def registry(client: Client, auth) -> dict[str, Client]:
    """Auth on: root, the organization acme with owner alice, bob granted write on acme/app."""
    root = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        answer = root.post(
            "/api/v1/users", body=json.dumps({"username": name, "password": PASSWORD}).encode()
        )
        assert answer.status == 201, answer.body
    answer = root.post(
        "/api/v1/organizations", body=json.dumps({"name": "acme", "owners": ["alice"]}).encode()
    )
    assert answer.status == 201, answer.body
    alice = client.as_basic("alice", PASSWORD)
    answer = alice.put(f"/api/v1/repository/{REPO}/permissions/user/bob", body=b'{"role": "write"}')
    assert answer.status == 200, answer.body
    return {"root": root, "alice": alice}


def _bob(client: Client) -> Client:
    return client.login("bob", PASSWORD, f"repository:{REPO}:pull,push,delete")


def test_a_push_is_recorded_from_the_stream_with_its_actor(client: Client, registry) -> None:
    streams = Streams()
    bob = _bob(client)
    body = json.dumps(bob.image_document(REPO, seed="audited")).encode()
    bob.must_push(REPO, "v1", body)
    assert not _entries(kind="push_repo")  # nothing written on the request path
    subscriber.on_changes(streams.read())
    (entry,) = _entries(kind="push_repo")
    assert (entry.performer, entry.performer_kind, entry.ip) == ("bob", "user", "127.0.0.1")
    assert (entry.repository, entry.namespace, entry.reference) == (REPO, "acme", "v1")
    assert entry.result == "success" and entry.metadata["digest"] == sha256(body)


def test_a_successful_push_adds_no_audit_write_to_the_request(
    client: Client, registry, monkeypatch
) -> None:
    bob = _bob(client)
    body = json.dumps(bob.image_document(REPO, seed="calls")).encode()
    written: list[Any] = []
    monkeypatch.setattr(audit, "write", written.append)
    bob.must_push(REPO, "v1", body)
    assert written == []


def test_a_failed_push_is_recorded_with_its_reason(client: Client, registry) -> None:
    bob = _bob(client)
    doc = bob.image_document(REPO, seed="fails")
    doc["layers"] = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b"?"), "size": 1}
    ]
    assert bob.push_manifest(REPO, "v1", doc).status == 400
    (entry,) = _entries(kind="push_repo")
    assert (entry.result, entry.reason, entry.performer) == (
        "failure",
        "MANIFEST_BLOB_UNKNOWN",
        "bob",
    )


def test_a_denied_push_is_recorded(client: Client, registry) -> None:
    reader = client.login("alice", PASSWORD, "repository:evil/x:pull")
    body = json.dumps({"schemaVersion": 2}).encode()
    assert reader.push_manifest("evil/x", "v1", body).status in (401, 403)
    entries = _entries(kind="push_repo")
    assert [(e.result, e.reason, e.performer) for e in entries] == [("failure", "DENIED", "alice")]


def test_deletes_and_pulls_are_recorded(client: Client, registry, settings) -> None:
    bob = _bob(client)
    body = json.dumps(bob.image_document(REPO, seed="del")).encode()
    bob.must_push(REPO, "v1", body)
    bob.must_push(REPO, "v2", body)
    assert bob.get(f"/v2/{REPO}/manifests/v1").status == 200
    assert bob.head(f"/v2/{REPO}/manifests/v1").status == 200  # a check, not a pull
    assert bob.delete(f"/v2/{REPO}/manifests/v2").status == 202
    assert bob.delete(f"/v2/{REPO}/manifests/{sha256(body)}").status == 202
    done = [e for e in _entries(repository=REPO) if e.kind != "change_repo_permission"]
    assert [(e.kind, e.reference, e.performer) for e in done] == [
        ("pull_repo", "v1", "bob"),
        ("delete_tag", "v2", "bob"),
        ("delete_manifest", sha256(body), "bob"),
    ]
    settings(audit_pulls=False)
    before = len(_entries())
    bob.get(f"/v2/{REPO}/manifests/v1")
    assert len(_entries()) == before


def test_logins_are_recorded_without_their_secret(client: Client, registry) -> None:
    client.token("bob", PASSWORD, f"repository:{REPO}:pull")
    answer = client.get(
        "/v2/auth?service=stratus", headers={"Authorization": "Basic Ym9iOndyb25nLXNlY3JldA=="}
    )
    assert answer.status == 401  # bob:wrong-secret
    logins = _entries(kind="login")
    assert [(e.performer, e.result) for e in logins if e.performer == "bob"] == [
        ("bob", "success"),
        ("bob", "failure"),
    ]
    assert logins[0].metadata["scope"] == f"repository:{REPO}:pull"
    everything = json.dumps([row.attribute_values for row in AuditModel.scan()], default=str)
    assert PASSWORD not in everything and "wrong-secret" not in everything
    assert ADMIN_PASSWORD not in everything


def test_refresh_token_grants_are_recorded(client: Client, registry) -> None:
    form = (
        f"grant_type=password&service=stratus&username=bob&password={PASSWORD}&access_type=offline"
    )
    answer = client.post(
        "/v2/auth",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=form.encode(),
    )
    refresh = answer.json()["refresh_token"]
    form = (
        f"grant_type=refresh_token&service=stratus&refresh_token={refresh}"
        f"&scope=repository:{REPO}:pull"
    )
    answer = client.post(
        "/v2/auth",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=form.encode(),
    )
    assert answer.status == 200
    (grant,) = _entries(kind="token_grant")
    assert grant.performer == "bob" and grant.metadata["grant"] == "refresh_token"
    everything = json.dumps([row.attribute_values for row in AuditModel.scan()], default=str)
    assert refresh not in everything


def test_account_permission_and_visibility_changes_are_recorded(client: Client, registry) -> None:
    alice = registry["alice"]
    assert (
        alice.post(
            f"/api/v1/repository/{REPO}/changevisibility", body=b'{"visibility": "public"}'
        ).status
        == 200
    )
    answer = alice.put("/api/v1/organization/acme/robots/ci")
    assert answer.status == 201
    token = answer.json()["token"]
    denied = client.as_basic("bob", PASSWORD).post(
        f"/api/v1/repository/{REPO}/changevisibility", body=b'{"visibility": "private"}'
    )
    assert denied.status == 403
    kinds = [(e.kind, e.performer, e.result) for e in _entries()]
    assert ("user_create", ADMIN_USER, "success") in kinds
    assert ("org_create", ADMIN_USER, "success") in kinds
    assert ("change_repo_permission", "alice", "success") in kinds
    assert ("change_repo_visibility", "alice", "success") in kinds
    assert ("create_robot", "alice", "success") in kinds
    assert ("change_repo_visibility", "bob", "failure") in kinds
    (grant,) = _entries(kind="change_repo_permission")
    assert grant.metadata["principal"] == "bob" and grant.repository == REPO
    everything = json.dumps([row.attribute_values for row in AuditModel.scan()], default=str)
    assert token not in everything and PASSWORD not in everything


def test_a_busy_repository_spreads_over_shards(aws: None) -> None:
    who = Actor("bob", "user", "10.0.0.1")
    audit.write([audit.Entry("pull_repo", who, repository=REPO, reference="v1") for _ in range(40)])
    partitions = {row.pk for row in AuditModel.scan()}
    assert len(partitions) > 4 and all(p.startswith(f"repo {REPO}#") for p in partitions)


def test_entries_expire_after_the_retention(aws: None, settings) -> None:
    settings(audit_retention_days=7)
    audit.write([audit.Entry("pull_repo", Actor("bob", "user"), repository=REPO)])
    (row,) = AuditModel.scan()
    assert abs(row.expires_at - row.at - timedelta(days=7)) < timedelta(seconds=1)


def _arrange_many(count: int) -> datetime:
    start = datetime.now(UTC) - timedelta(minutes=30)
    entries = [
        audit.Entry(
            "pull_repo",
            Actor("bob" if i % 2 else "carol", "user"),
            repository=REPO,
            reference=f"t{i}",
            at=start + timedelta(seconds=i),
        )
        for i in range(count)
    ]
    entries.append(
        audit.Entry("pull_repo", Actor("bob", "user"), repository="acme/other", at=start)
    )
    audit.write(entries)
    return start


def test_logs_api_pages_newest_first_over_all_shards(client: Client, registry) -> None:
    _arrange_many(45)
    alice = registry["alice"]
    seen: list[str] = []
    query = "limit=20"
    pages = 0
    while True:
        answer = alice.get(f"/api/v1/repository/{REPO}/logs?{query}")
        assert answer.status == 200, answer.body
        page = answer.json()
        seen += [row["reference"] for row in page["logs"] if row["kind"] == "pull_repo"]
        pages += 1
        if "next_page" not in page:
            break
        query = f"limit=20&next_page={page['next_page']}"
    assert pages == 3
    assert seen == [f"t{i}" for i in reversed(range(45))]


def test_logs_api_takes_a_time_range(client: Client, registry) -> None:
    start = _arrange_many(10)
    since = (start + timedelta(seconds=3)).isoformat()
    until = (start + timedelta(seconds=6)).isoformat()
    answer = registry["alice"].get(
        f"/api/v1/repository/{REPO}/logs?starttime={since}&endtime={until}"
    )
    refs = [row["reference"] for row in answer.json()["logs"]]
    assert refs == ["t5", "t4", "t3"]


def test_logs_api_takes_quay_days(client: Client, registry) -> None:
    today = datetime.now(UTC)
    audit.write([audit.Entry("pull_repo", Actor("bob", "user"), repository=REPO, reference="now")])
    day = today.strftime("%m/%d/%Y")
    yesterday = (today - timedelta(days=1)).strftime("%m/%d/%Y")
    alice = registry["alice"]
    same_day = alice.get(f"/api/v1/repository/{REPO}/logs?starttime={day}&endtime={day}")
    assert "now" in [row["reference"] for row in same_day.json()["logs"]]
    before = alice.get(f"/api/v1/repository/{REPO}/logs?starttime={yesterday}&endtime={yesterday}")
    assert "now" not in [row["reference"] for row in before.json()["logs"]]


def test_logs_api_shows_quay_fields(client: Client, registry) -> None:
    audit.write(
        [
            audit.Entry(
                "pull_repo", Actor("acme+ci", "robot", "10.1.2.3"), repository=REPO, reference="v1"
            )
        ]
    )
    (row,) = [
        r
        for r in registry["alice"].get(f"/api/v1/repository/{REPO}/logs").json()["logs"]
        if r["kind"] == "pull_repo"
    ]
    assert row["performer"] == {"kind": "robot", "name": "acme+ci", "is_robot": True}
    assert row["ip"] == "10.1.2.3" and row["metadata"]["repo"] == "app"
    assert row["metadata"]["namespace"] == "acme" and row["result"] == "success"
    assert row["datetime"].endswith("GMT")


def test_namespace_and_user_logs(client: Client, registry) -> None:
    _arrange_many(6)
    alice = registry["alice"]
    namespace = alice.get("/api/v1/organization/acme/logs?limit=100").json()["logs"]
    repositories = {row["repository"] for row in namespace if row["kind"] == "pull_repo"}
    assert repositories == {REPO, "acme/other"}
    only_bob = alice.get("/api/v1/organization/acme/logs?limit=100&performer=bob").json()["logs"]
    assert only_bob and {row["performer"]["name"] for row in only_bob} == {"bob"}
    mine = client.as_basic("bob", PASSWORD).get("/api/v1/user/logs?limit=100").json()["logs"]
    assert len([row for row in mine if row["kind"] == "pull_repo"]) == 4
    assert {row["performer"]["name"] for row in mine} == {"bob"}
    root = registry["root"].get("/api/v1/user/logs?performer=carol").json()["logs"]
    assert {row["performer"]["name"] for row in root} == {"carol"}


def test_logs_refuse_bad_ranges_and_tokens(client: Client, registry) -> None:
    alice = registry["alice"]
    assert alice.get(f"/api/v1/repository/{REPO}/logs?starttime=yesterday").status == 400
    assert alice.get(f"/api/v1/repository/{REPO}/logs?next_page=%%%").status == 400
    assert (
        alice.get(f"/api/v1/repository/{REPO}/logs?starttime=02/01/2026&endtime=01/01/2026").status
        == 400
    )
    assert alice.get(f"/api/v1/repository/{REPO}/logs?limit=1000").status == 400


def test_admin_logs_prints_every_page(client: Client, registry, capsys) -> None:
    _arrange_many(25)

    class InProcess(admin.Api):
        def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            answer = registry["alice"].request(method, path)
            assert answer.status == 200, answer.body
            return answer.json()

    args = argparse.Namespace(
        command="logs", target=REPO, since=None, until=None, performer=None, max=1000
    )
    admin.run(InProcess("http://in-process", None, None), args)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["TIME", "KIND", "RESULT"]
    pulls = [line for line in lines if " pull_repo " in line]
    assert len(pulls) == 25 and "acme/app t24" in pulls[0]


@pytest.mark.parametrize(
    ("who", "repository", "namespace"),
    [
        ("anonymous", 401, 401),
        ("bob", 403, 403),  # write on the repository is not admin
        ("alice", 200, 200),  # the organization's owner
        ("root", 200, 200),
    ],
)
def test_logs_permission_matrix(
    client: Client, registry, who: str, repository: int, namespace: int
) -> None:
    callers = {
        "anonymous": client,
        "bob": client.as_basic("bob", PASSWORD),
        "alice": registry["alice"],
        "root": registry["root"],
    }
    caller = callers[who]
    assert caller.get(f"/api/v1/repository/{REPO}/logs").status == repository
    assert caller.get("/api/v1/organization/acme/logs").status == namespace
    own = caller.get("/api/v1/user/logs")
    assert own.status == (401 if who == "anonymous" else 200)
    others = caller.get("/api/v1/user/logs?performer=alice").status
    assert others == {"anonymous": 401, "bob": 403, "alice": 200, "root": 200}[who]
