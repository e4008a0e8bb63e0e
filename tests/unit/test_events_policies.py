"""Events of the policies: a tag an auto-prune takes is a `tag_pruned` event naming the
policy (at push and in the cleanup), and a link crossing a quota's Warning threshold is a
`quota_warning` event, on EventBridge and to webhooks (docs/events.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib import cleanup
from chalicelib.events import bridge, deliveries, schema, subscriber, webhooks
from chalicelib.storage import policies as policy_store
from chalicelib.storage import quotas as quota_store
from chalicelib.storage.models import TagModel
from tests.client import Client
from tests.events_fixtures import Streams
from tests.images import sha256
from tests.unit.test_audit import _entries
from tests.unit.test_events import _delivered, _rule_to_queue
from tests.unit.test_events_webhooks import _create, hooks, receiver  # noqa: F401 (fixtures)
from tests.unit.test_policies_prune import prune_policy, push_series, tags_of
from tests.unit.test_policies_quota import blob, set_quota, upload


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    policy_store.forget()
    quota_store.forget()
    yield
    policy_store.forget()
    quota_store.forget()


@pytest.fixture
def streams(client: Client) -> Streams:
    return Streams()


def tag_events(streams: Streams) -> list[schema.Event]:
    kinds = (schema.TAG_PRUNED, schema.TAG_DELETED, schema.TAG_EXPIRED)
    return [e for e in schema.from_changes(streams.read()) if e.kind in kinds]


# -- prunes --------------------------------------------------------------------------------


def test_push_time_prune_is_a_tag_pruned_event_naming_the_policy(
    client: Client, clock, streams: Streams
) -> None:
    push_series(client, clock, "acme/app", ["t1", "t2"])
    policy = prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1})
    push_series(client, clock, "acme/app", ["t3"])
    assert tags_of(client, "acme/app") == ["t3"]
    events = tag_events(streams)
    assert sorted((e.kind, e.tag, e.policy) for e in events) == [
        (schema.TAG_PRUNED, "t1", policy),
        (schema.TAG_PRUNED, "t2", policy),
    ]
    detail = events[0].ecr_detail()
    assert (detail["action-type"], detail["policy-id"]) == ("PRUNE", policy)
    assert events[0].document()["policy"] == policy


def test_cleanup_prune_is_a_tag_pruned_event(client: Client, clock, streams: Streams) -> None:
    push_series(client, clock, "acme/app", ["old"])
    policy = prune_policy(client, "acme/", {"method": "creation_date", "value": "30d"})
    clock.advance(days=31)
    push_series(client, clock, "acme/app", ["new"])
    streams.read()
    assert cleanup.run().tags_pruned == 1
    (pruned,) = tag_events(streams)
    assert (pruned.kind, pruned.tag, pruned.policy) == (schema.TAG_PRUNED, "old", policy)


def test_tag_deleted_by_hand_stays_a_tag_deleted_event(
    client: Client, clock, streams: Streams
) -> None:
    """A prune that lost to a re-push leaves no marker: the later delete is the user's."""
    push_series(client, clock, "acme/app", ["a"])
    (row,) = policy_store.tag_rows("acme/app")
    push_series(client, clock, "acme/app", ["a"])  # pushed again after the plan
    assert not policy_store.delete_if_unchanged("acme/app", row, "some-policy")
    assert TagModel.get("acme/app", row.sort_key).pruned_by is None
    streams.read()
    assert client.delete("/v2/acme/app/manifests/a").status == 202
    (deleted,) = tag_events(streams)
    assert (deleted.kind, deleted.policy) == (schema.TAG_DELETED, None)


def test_pruned_tags_reach_webhooks_that_want_them(
    client: Client,
    clock,
    hooks: Streams,  # noqa: F811
    receiver,  # noqa: F811
) -> None:
    _create(
        client, receiver.url, event="tag_pruned", path="/api/v1/repository/acme/app/notification/"
    )
    push_series(client, clock, "acme/app", ["t1"])
    policy = prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1})
    push_series(client, clock, "acme/app", ["t2"])
    subscriber.on_changes(hooks.read())
    while deliveries.poll():
        pass
    (got,) = receiver.events()
    assert (got["event"], got["tag"], got["policy"]) == ("tag_pruned", "t1", policy)


# -- quota warnings ------------------------------------------------------------------------


def test_crossing_a_warning_threshold_is_one_quota_warning_event(
    client: Client,
    settings,
    hooks: Streams,  # noqa: F811
) -> None:
    """On EventBridge, relayed by the webhooks function (the API may not call PutEvents)."""
    settings(event_bus="stratus-dev-events")
    bridge.client.cache_clear()
    queue = _rule_to_queue(
        "stratus-dev-events",
        {"source": ["stratus"], "detail": {"action-type": ["QUOTA_WARNING"]}},
    )
    set_quota(client, "acme", 1000, ("Warning", 50))
    assert upload(client, "acme/app", blob("a", 400)).status == 201  # under: no event
    crossing = blob("b", 200)
    assert upload(client, "acme/app", crossing).status == 201  # 600 > 500: the event
    assert upload(client, "acme/app", blob("c", 100)).status == 201  # already over: none
    assert _delivered(queue) == []  # not from the API function itself
    assert deliveries.poll() == 1
    (delivered,) = _delivered(queue)
    assert delivered["detail-type"] == "ECR Image Action"
    detail = delivered["detail"]
    assert detail["event"] == "quota_warning"
    assert (detail["namespace"], detail["usage"], detail["limit"]) == ("acme", 600, 500)
    assert (detail["repository-name"], detail["image-digest"]) == ("acme/app", sha256(crossing))
    assert deliveries.poll() == 0  # the relay message was settled
    bridge.client.cache_clear()


def test_a_refused_link_makes_no_quota_warning(client: Client, monkeypatch) -> None:
    sent: list[schema.Event] = []
    monkeypatch.setattr(webhooks, "enqueue", lambda events: sent.extend(events) or 0)
    set_quota(client, "acme", 1000, ("Warning", 50), ("Reject", 80))
    assert upload(client, "acme/app", blob("a", 900)).status == 403  # past both: refused
    assert sent == []
    assert upload(client, "acme/app", blob("b", 700)).status == 201  # crosses the Warning
    (event,) = sent
    assert (event.kind, event.namespace, event.usage, event.limit) == (
        schema.QUOTA_WARNING,
        "acme",
        700,
        500,
    )


def test_quota_warnings_reach_namespace_webhooks(
    client: Client,
    hooks: Streams,  # noqa: F811
    receiver,  # noqa: F811
) -> None:
    _create(
        client, receiver.url, event="quota_warning", path="/api/v1/organization/acme/notification/"
    )
    set_quota(client, "acme", 1000, ("Warning", 50))
    assert upload(client, "acme/app", blob("a", 600)).status == 201
    while deliveries.poll():
        pass
    (got,) = receiver.events()
    assert (got["event"], got["namespace"], got["usage"], got["limit"]) == (
        "quota_warning",
        "acme",
        600,
        500,
    )


# -- the audit log -------------------------------------------------------------------------


def test_a_pruned_tag_is_an_audit_entry_naming_the_policy(
    client: Client, clock, streams: Streams
) -> None:
    push_series(client, clock, "acme/app", ["t1"])
    policy = prune_policy(client, "acme/app", {"method": "number_of_tags", "value": 1})
    push_series(client, clock, "acme/app", ["t2"])
    subscriber.on_changes(streams.read())
    (entry,) = _entries(kind="autoprune_tag_delete")
    assert (entry.repository, entry.reference, entry.performer_kind) == (
        "acme/app",
        "t1",
        "anonymous",
    )
    assert entry.metadata["policy"] == policy


def test_a_quota_warning_is_an_audit_entry_with_usage_and_limit(client: Client) -> None:
    set_quota(client, "acme", 1000, ("Warning", 50))
    assert upload(client, "acme/app", blob("a", 400)).status == 201
    assert _entries(kind="quota_warning") == []
    assert upload(client, "acme/app", blob("b", 200)).status == 201
    (entry,) = _entries(kind="quota_warning")
    assert (entry.repository, entry.metadata["usage"], entry.metadata["limit"]) == (
        "acme/app",
        "600",
        "500",
    )
