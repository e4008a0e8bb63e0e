"""The cleanup's daily backstop repairs storage usage (chalicelib/cleanup/backstop.py, stage
"quotas"): drift written straight into the usage items is corrected, counted and logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from chalicelib import cleanup, config
from chalicelib.cleanup import backstop, collector
from chalicelib.cleanup.report import Report
from chalicelib.storage import quotas as quota_store
from tests.client import Client


@pytest.fixture(autouse=True)
def fresh_quota_cache() -> Iterator[None]:
    quota_store.forget()
    yield
    quota_store.forget()


def push(client: Client, repo: str, seed: str) -> int:
    """A tagged image (so the catalog names its repository); the namespace's usage."""
    doc = client.image_document(repo, seed=seed, layers=(seed.encode() * 100,))
    client.must_push(repo, "v1", json.dumps(doc).encode())
    return quota_store.namespace_usage(repo.split("/")[0])


def drift(namespace: str, by: int) -> None:
    """A write outside the registry's code: the namespace's total moved by `by`."""
    model = quota_store.UsageModel
    actions = [model.bytes_used.add(by), model.kind.set(model)]
    model(f"usage {namespace}", "total 3").update(actions=actions)


def test_backstop_corrects_drifted_usage(
    client: Client, clock, caplog: pytest.LogCaptureFixture
) -> None:
    acme, other = push(client, "acme/app", "a"), push(client, "other/app", "b")
    drift("acme", 12345)
    assert quota_store.namespace_usage("acme") == acme + 12345
    assert cleanup.routine().quotas_corrected == 0  # schedules the backstop
    clock.advance(hours=config.settings.gc_backstop_hours)
    with caplog.at_level(logging.WARNING):
        report = cleanup.routine()  # the backstop, due now
    assert report.quotas_corrected == 1  # acme only: other's usage was right
    assert quota_store.namespace_usage("acme") == acme
    assert quota_store.namespace_usage("other") == other
    assert "usage of namespace acme drifted" in caplog.text
    assert report.as_dict()["quotas_corrected"] == 1


def test_backstop_dry_run_counts_drift_and_repairs_nothing(client: Client, clock) -> None:
    acme = push(client, "acme/app", "a")
    drift("acme", -100)
    report = Report(dry_run=True)
    collector.run_segment(backstop.Segment(0, 1, dry_run=True), clock.now(), report, lambda: False)
    assert report.quotas_corrected == 1
    assert quota_store.namespace_usage("acme") == acme - 100


def test_quota_repair_runs_in_segment_zero_only_and_resumes_after_the_last_namespace(
    client: Client, clock
) -> None:
    usage = {n: push(client, f"{n}/app", n) for n in ("a1", "a2", "a3")}
    for namespace in usage:
        drift(namespace, 5)
    later = Report(dry_run=False)
    collector.run_segment(backstop.Segment(1, 2), clock.now(), later, lambda: False)
    assert later.quotas_corrected == 0
    segment = backstop.Segment(0, 1, stage="quotas")
    report = Report(dry_run=False)
    budget = iter([False, True])  # time for one namespace, then out
    rest = collector.run_segment(segment, clock.now(), report, lambda: next(budget, True))
    assert rest is not None and rest.last_repository == "a1"
    resumed = backstop.Segment.from_json(rest.to_json())
    assert collector.run_segment(resumed, clock.now(), report, lambda: False) is None
    assert report.quotas_corrected == 3  # each once
    assert {n: quota_store.namespace_usage(n) for n in usage} == usage
