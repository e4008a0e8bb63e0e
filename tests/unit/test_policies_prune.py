"""Auto-prune policies (Quay's autoprunepolicy): number_of_tags at push time and in the
scheduled run, creation_date in the scheduled run, dry-run previews, and their limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from chalicelib.policies import prune
from chalicelib.storage import policies as policy_store
from tests.client import Client
from tests.unit.test_policies import add_policy, manifest


@pytest.fixture(autouse=True)
def fresh_policy_cache() -> Iterator[None]:
    policy_store.forget()
    yield
    policy_store.forget()


def tags_of(client: Client, repo: str) -> list[str]:
    answer = client.get(f"/v2/{repo}/tags/list")
    return sorted(answer.json()["tags"] or []) if answer.status == 200 else []


def push_series(client: Client, clock, repo: str, names: list[str]) -> None:
    """Tags pushed a minute apart, in the order given (the last is the newest)."""
    for name in names:
        client.must_push(repo, name, manifest(name))
        clock.advance(minutes=1)


def prune_policy(client: Client, resource: str, document: dict) -> str:
    if resource.endswith("/"):
        path = f"/api/v1/organization/{resource[:-1]}/autoprunepolicy/"
    else:
        path = f"/api/v1/repository/{resource}/autoprunepolicy/"
    return add_policy(client, path, document)


def test_number_of_tags_is_enforced_at_push(
    client: Client, clock, caplog: pytest.LogCaptureFixture
) -> None:
    push_series(client, clock, "acme/app", ["t1"])
    policy = prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 2})
    with caplog.at_level("INFO", logger="chalicelib.policies.prune"):
        push_series(client, clock, "acme/app", ["t2", "t3", "t4"])
    assert tags_of(client, "acme/app") == ["t3", "t4"]
    logged = [r.getMessage() for r in caplog.records if "auto-prune after a push" in r.getMessage()]
    assert len(logged) == 2 and f"t1 (beyond the 2 newest, policy {policy})" in logged[0]


def test_creation_date_prunes_older_tags_in_the_scheduled_run(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["old"])
    policy = prune_policy(client, "acme/", {"method": "creation_date", "value": "30d"})
    clock.advance(days=31)
    push_series(client, clock, "acme/app", ["new"])
    report = prune.prune(clock.now(), dry_run=False)
    assert tags_of(client, "acme/app") == ["new"]
    assert report.tags_pruned == 1
    (entry,) = report.pruned
    assert entry["repository"] == "acme/app" and entry["tag"] == "old"
    assert entry["policy"] == policy


def test_dry_run_lists_and_prunes_nothing(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["a", "b", "c"])
    prune_policy(client, "acme/app", {"method": "creation_date", "value": "1h"})
    clock.advance(hours=2)
    report = prune.prune(clock.now(), dry_run=True)
    assert report.dry_run and report.tags_pruned == 3
    assert tags_of(client, "acme/app") == ["a", "b", "c"]


def test_preview_api_lists_what_would_go(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["a", "b"])
    push_series(client, clock, "acme/web", ["x"])
    prune_policy(client, "acme/", {"method": "creation_date", "value": "1h"})
    clock.advance(hours=2)
    namespace = client.get("/api/v1/organization/acme/autoprunepolicy/preview").json()
    assert namespace["dry_run"] is True
    assert sorted((t["repository"], t["tag"]) for t in namespace["tags"]) == [
        ("acme/app", "a"),
        ("acme/app", "b"),
        ("acme/web", "x"),
    ]
    repository = client.get("/api/v1/repository/acme/web/autoprunepolicy/preview").json()
    assert [t["tag"] for t in repository["tags"]] == ["x"]
    assert tags_of(client, "acme/app") == ["a", "b"]


def test_immutable_tags_are_never_pruned_nor_counted(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["v1", "v2", "dev1"])
    add_policy(client, "/api/v1/repository/acme/app/immutabilitypolicy/", {"tagPattern": "^v"})
    prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1})
    push_series(client, clock, "acme/app", ["dev2"])
    assert tags_of(client, "acme/app") == ["dev2", "v1", "v2"]
    prune_policy(client, "acme/app", {"method": "creation_date", "value": "1s"})
    clock.advance(minutes=5)
    prune.prune(clock.now(), dry_run=False)
    assert tags_of(client, "acme/app") == ["v1", "v2"]


def test_strictest_policy_wins(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["a", "b", "c", "d"])
    prune_policy(client, "acme/", {"method": "number_of_tags", "value": 3})
    prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 2})
    prune.prune(clock.now(), dry_run=False)
    assert tags_of(client, "acme/app") == ["c", "d"]


def test_tag_pattern_limits_what_a_policy_prunes(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["pr-1", "pr-2", "pr-3", "main"])
    prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1, "tagPattern": "^pr-"})
    prune.prune(clock.now(), dry_run=False)
    assert tags_of(client, "acme/app") == ["main", "pr-3"]


def test_tag_pushed_again_after_planning_is_kept(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["a", "b"])
    (row,) = [r for r in policy_store.tag_rows("acme/app") if r.name == "a"]
    client.must_push("acme/app", "a", manifest("a"))  # the same digest, pushed again
    assert not policy_store.delete_if_unchanged("acme/app", row, "some-policy")
    assert "a" in tags_of(client, "acme/app")


def test_expired_tags_are_not_counted(client: Client, clock) -> None:
    client.must_push("acme/app", "gone", manifest("gone", {"quay.expires-after": "1m"}))
    clock.advance(minutes=2)
    push_series(client, clock, "acme/app", ["a"])
    prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1})
    push_series(client, clock, "acme/app", ["b"])
    assert tags_of(client, "acme/app") == ["b"]


def test_deleted_policy_leaves_the_run_index(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["a"])
    policy = prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 5})
    assert policy_store.pruned_resources() == ["acme/app"]
    client.delete(f"/api/v1/repository/acme/app/autoprunepolicy/{policy}")
    assert prune.prune(clock.now(), dry_run=False).repositories == 0
    assert policy_store.pruned_resources() == []


# -- the API -------------------------------------------------------------------------------


def test_autoprune_policy_api_follows_quay(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["a"])
    base = "/api/v1/repository/acme/app/autoprunepolicy/"
    policy = prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 10})
    assert client.get(base).json() == {
        "policies": [
            {
                "uuid": policy,
                "method": "number_of_tags",
                "value": 10,
                "tagPattern": None,
                "tagPatternMatches": True,
            }
        ]
    }
    body = json.dumps({"method": "creation_date", "value": "7d"}).encode()
    assert client.put(base + policy, body=body).status == 204
    assert client.get(base + policy).json()["value"] == "7d"
    assert client.delete(base + policy).status == 200
    assert client.get(base).json() == {"policies": []}


@pytest.mark.parametrize(
    "document",
    [
        {"method": "number_of_tags", "value": 0},
        {"method": "number_of_tags", "value": "ten"},
        {"method": "number_of_tags", "value": True},
        {"method": "creation_date", "value": "30"},
        {"method": "creation_date", "value": "-1d"},
        {"method": "creation_date", "value": 30},
        {"method": "keep_forever", "value": 1},
        {"method": "number_of_tags", "value": 1, "tagPattern": "(a+)+"},
        {"method": "number_of_tags", "value": 1, "tagPatternMatches": "yes"},
    ],
)
def test_invalid_autoprune_policy_is_refused(client: Client, document: dict) -> None:
    answer = client.post(
        "/api/v1/organization/acme/autoprunepolicy/", body=json.dumps(document).encode()
    )
    assert answer.status == 400, answer.body
    assert client.get("/api/v1/organization/acme/autoprunepolicy/").json() == {"policies": []}


# -- the plan, and the cleanup's phase -----------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    pushed_at: datetime | None
    expires_at: datetime | None = None
    digest: str = "sha256:x"
    sort_key: str = ""


def test_plan_keeps_the_newest_by_push_time(clock) -> None:
    now = clock.now()
    rows = [Row(f"t{i}", now - timedelta(days=i)) for i in range(5)]
    policy = policy_store.Policy("acme/app", "autoprune", "p", None, True, "number_of_tags", "2")
    assert [v.tag.name for v in prune.plan(rows, [policy], [], now)] == ["t2", "t3", "t4"]


def test_cleanup_phase_prunes_the_collected_repository(client: Client, clock) -> None:
    sweep = pytest.importorskip("chalicelib.cleanup.sweep")
    push_series(client, clock, "acme/app", ["a", "b"])
    prune_policy(client, "acme/app", {"method": "creation_date", "value": "1s"})
    clock.advance(minutes=5)

    class State:
        repository = "acme/app"
        now = clock.now()

        def live_tags(self) -> list:
            return policy_store.tag_rows("acme/app")

    candidates = prune.phase.candidates(State())
    assert sorted(c.tag.name for c in candidates) == ["a", "b"]
    assert all(isinstance(c, sweep.TagRemoval) and c.counter == "tags_pruned" for c in candidates)


# -- the admin CLI -------------------------------------------------------------------------


class ClientApi:
    """The admin CLI's Api, answered in-process by the registry app."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else b""
        answer = self.client.request(method, path, body=data)
        assert answer.status < 400, answer.body
        return answer.json() if answer.body else None


def admin(client: Client, *argv: str):
    from chalicelib import admin as cli

    return cli.run(ClientApi(client), cli.parser().parse_args(list(argv)))


def test_admin_cli_manages_policies_and_previews_pruning(client: Client, clock) -> None:
    push_series(client, clock, "acme/app", ["pr-1", "pr-2", "v1"])
    made = admin(
        client, "add-autoprune-policy", "acme/", "number_of_tags", "1", "--pattern", "^pr-"
    )
    admin(client, "add-immutability-policy", "acme/app", "--pattern", "^v")
    listed = admin(client, "policies", "acme/")
    assert [p["uuid"] for p in listed["autoprune"]] == [made["uuid"]]
    assert listed["immutability"] == []
    assert admin(client, "policies", "acme/app")["immutability"][0]["tagPattern"] == "^v"
    preview = admin(client, "prune-preview", "acme/")
    assert [t["tag"] for t in preview["tags"]] == ["pr-1"]
    admin(client, "delete-policy", "acme/", "autoprune", made["uuid"])
    assert admin(client, "policies", "acme/")["autoprune"] == []


def test_scheduled_cleanup_prunes_and_counts_the_tags(client: Client, clock) -> None:
    """The cleanup runs auto-prune as its tag-rule phase: pruned tags are in its report
    (and so its TagsPruned metric), and what they untagged is collected as garbage."""
    from chalicelib import cleanup

    push_series(client, clock, "acme/app", ["a", "b", "keep"])
    prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1})
    client.must_push("acme/app", "a", manifest("a"))  # the push itself prunes b and keep
    assert tags_of(client, "acme/app") == ["a"]
    prune_policy(client, "acme/app", {"method": "creation_date", "value": "1h"})
    clock.advance(days=3)
    report = cleanup.run()
    assert report.tags_pruned == 1
    assert tags_of(client, "acme/app") == []
    assert report.manifests_deleted >= 1


def test_a_failing_repository_does_not_stop_the_run(
    client: Client, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_series(client, clock, "acme/app", ["a", "b"])
    push_series(client, clock, "acme/web", ["a", "b"])
    prune_policy(client, "acme/", {"method": "number_of_tags", "value": 1})
    real = policy_store.tag_rows

    def broken_for_app(repository: str, **kw):
        if repository == "acme/app":
            raise RuntimeError("throttled")
        return real(repository, **kw)

    monkeypatch.setattr(policy_store, "tag_rows", broken_for_app)
    report = prune.prune(clock.now(), dry_run=False)
    assert (report.errors, report.tags_pruned) == (1, 1)
    assert tags_of(client, "acme/web") == ["b"]
