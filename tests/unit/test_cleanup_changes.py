"""The collector's routine run follows the tables' streams; the backstop covers the rest
(chalicelib/cleanup/: subscriber.py, queue.py, collector.py, backstop.py; docs/gc.md)."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from chalicelib import changes, cleanup, config
from chalicelib.cleanup import backstop, collector, queue, subscriber
from chalicelib.cleanup.report import Report
from chalicelib.local.background import StreamPoller
from chalicelib.storage.models import GcCandidateModel, ManifestModel
from tests.client import Client
from tests.images import sha256
from tests.referrers_fixtures import referrer_manifest

GRACE = timedelta(seconds=config.settings.gc_grace_seconds)


@pytest.fixture
def streams(monkeypatch: pytest.MonkeyPatch) -> StreamPoller:
    """Only the collector's subscriber, fed by polling moto's streams (as local mode does)."""
    monkeypatch.setattr(changes, "_subscribers", [subscriber.on_changes])
    monkeypatch.setattr(changes, "_loaded", True)
    return StreamPoller()


def image(client: Client, repo: str, seed: str, expires: str | None = None) -> bytes:
    annotations = {"quay.expires-after": expires} if expires else None
    doc = client.image_document(repo, seed=seed, layers=(seed.encode(),), annotations=annotations)
    return json.dumps(doc).encode()


def test_a_deleted_tag_puts_only_its_repository_on_the_work_list(
    client: Client, clock, streams: StreamPoller
) -> None:
    for repo in ("org/a", "org/b", "org/c"):
        client.must_push(repo, "v1", image(client, repo, repo))
    streams.poll()
    assert queue.pending() == 0  # pushes by tag make no work
    clock.advance(seconds=GRACE.total_seconds() + 1)
    assert client.delete("/v2/org/b/manifests/v1").status == 202
    streams.poll()
    report = cleanup.routine()
    assert report.repositories_collected == 1  # not the whole registry
    assert report.manifests_deleted == 1 and report.links_deleted == 2
    assert {m.repository for m in ManifestModel.scan()} == {"org/a", "org/c"}


def test_the_blobs_a_routine_run_unlinked_go_in_the_next(
    client: Client, clock, streams: StreamPoller
) -> None:
    client.must_push("org/b", "v1", image(client, "org/b", "only here"))
    clock.advance(seconds=GRACE.total_seconds() + 1)
    client.delete("/v2/org/b/manifests/v1")
    streams.poll()
    first = cleanup.routine()
    assert (first.links_deleted, first.blobs_deleted) == (2, 0)
    second = cleanup.routine()
    assert second.blobs_deleted == 2 and second.repositories_collected == 0
    assert queue.pending() == 1  # only the backstop's own schedule


def test_a_manifest_pushed_untagged_is_due_when_its_grace_window_ends(
    client: Client, clock, streams: StreamPoller
) -> None:
    body = image(client, "org/app", "untagged")
    client.must_push("org/app", sha256(body), body)
    streams.poll()
    (item,) = GcCandidateModel.scan()
    assert item.key == "org/app"
    assert item.due_at == pytest.approx((clock.now() + GRACE).timestamp(), abs=2)
    clock.advance(seconds=GRACE.total_seconds() - 60)
    assert cleanup.routine().repositories_collected == 0  # not yet due
    clock.advance(seconds=61)
    assert cleanup.routine().manifests_deleted == 1


def test_a_tag_expires_on_time_from_the_work_list(
    client: Client, clock, streams: StreamPoller
) -> None:
    client.must_push("org/app", "temp", image(client, "org/app", "t", expires="2h"))
    streams.poll()
    clock.advance(hours=1)
    assert cleanup.routine().tags_expired == 0
    clock.advance(hours=1)
    report = cleanup.routine()
    assert report.tags_expired == 1 and report.repositories_collected == 1
    # what the tag kept is due when the manifest's grace window ends
    (item,) = [i for i in GcCandidateModel.scan() if i.key == "org/app"]
    assert item.due_at > clock.now().timestamp()


def test_a_change_during_a_collection_keeps_the_repository_due(
    client: Client, clock, streams: StreamPoller, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", "a"))
    clock.advance(seconds=GRACE.total_seconds() + 1)
    client.delete("/v2/org/app/manifests/v1")
    streams.poll()
    real = collector.collect_repository

    def collect_while_a_tag_goes(repository, now, *, dry_run):
        outcome = real(repository, now, dry_run=dry_run)
        queue.repository(repository, now)  # the stream delivers a change meanwhile
        return outcome

    monkeypatch.setattr(collector, "collect_repository", collect_while_a_tag_goes)
    cleanup.routine()
    (item,) = [i for i in GcCandidateModel.scan() if i.key == "org/app"]
    assert item.due_at <= clock.now().timestamp()  # still due: the next run looks again


def test_a_dry_routine_run_leaves_the_work_list_as_it_was(
    client: Client, clock, streams: StreamPoller
) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", "a"))
    clock.advance(seconds=GRACE.total_seconds() + 1)
    client.delete("/v2/org/app/manifests/v1")
    streams.poll()
    before = {(i.key, i.due_at, i.changes) for i in GcCandidateModel.scan()}
    assert cleanup.routine(dry_run=True).manifests_deleted == 1
    assert {(i.key, i.due_at, i.changes) for i in GcCandidateModel.scan()} == before
    assert ManifestModel.count("org/app") == 1


def test_backstop_runs_when_due_and_finds_what_no_stream_reported(client: Client, clock) -> None:
    """A blob pushed and never used: no manifest or tag changed, only the backstop sees it."""
    digest = client.push_blob("org/app", b"never used")
    clock.advance(seconds=GRACE.total_seconds() + 1)
    assert cleanup.routine().links_deleted == 0  # schedules the backstop
    clock.advance(hours=config.settings.gc_backstop_hours)
    backstop_run = cleanup.routine()  # the backstop, due now
    assert backstop_run.links_deleted == 1
    # the unlinked object: by a later segment of the same backstop, or from the work list
    assert backstop_run.blobs_deleted + cleanup.routine().blobs_deleted == 1
    clock.advance(hours=1)
    assert cleanup.routine().repositories_collected == 0  # next backstop not due yet
    assert client.head(f"/v2/org/app/blobs/{digest}").status == 404


def test_backstop_segment_stops_in_time_and_resumes_where_it_stopped(client: Client, clock) -> None:
    for i in range(4):
        client.must_push(f"org/r{i}", "v1", image(client, f"org/r{i}", f"r{i}"))
    clock.advance(seconds=GRACE.total_seconds() + 1)
    segment = backstop.Segment(0, 1)
    report = Report(dry_run=False)
    budget = iter([False, False, True])  # time for two repositories, then out

    rest = collector.run_segment(segment, clock.now(), report, lambda: next(budget, True))
    assert rest is not None and report.repositories_collected == 2
    resumed = backstop.Segment.from_json(rest.to_json())  # as its SQS message carries it
    assert collector.run_segment(resumed, clock.now(), report, lambda: False) is None
    assert report.repositories_collected == 4  # each once


def test_backstop_segments_cover_every_repository_once(client: Client, clock) -> None:
    names = [f"org/s{i}" for i in range(6)]
    for name in names:
        client.must_push(name, "v1", image(client, name, name))
    report = Report(dry_run=True)
    for part in backstop.segments(3):
        collector.run_segment(part, clock.now(), report, lambda: False)
    assert report.repositories_collected == len(names)


def test_scheduled_run_fans_backstop_segments_out_over_sqs(client: Client, clock, settings) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="gc-segments")["QueueUrl"]
    settings(gc_segment_queue=url, gc_segments=3)
    client.must_push("org/app", "v1", image(client, "org/app", "a"))
    cleanup.handle_schedule()
    clock.advance(hours=config.settings.gc_backstop_hours)
    cleanup.handle_schedule()
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted((b["index"], b["total"], b["stage"]) for b in bodies) == [
        (0, 3, "repositories"),
        (1, 3, "repositories"),
        (2, 3, "repositories"),
    ]


def test_segment_lambda_sends_where_it_stopped_as_the_next_message(
    client: Client, clock, settings
) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="gc-segments")["QueueUrl"]
    settings(gc_segment_queue=url)
    client.must_push("org/app", "v1", image(client, "org/app", "a"))

    class NearlyOutOfTime:
        def get_remaining_time_in_millis(self) -> int:
            return 1_000

    event = {"Records": [{"body": backstop.Segment(0, 1).to_json()}]}
    summary = cleanup.handle_segment(event, NearlyOutOfTime())
    assert summary["repositories_collected"] == 0
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert backstop.Segment.from_json(message["Body"]) == backstop.Segment(0, 1)


def test_referrer_is_kept_when_its_subject_is_pushed_during_the_run(
    client: Client, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subject was garbage when the run read the repository, and pushed with a tag
    before the run deleted its referrer: the referrer's delete must fail."""
    from chalicelib.cleanup import phases

    subject = image(client, "org/app", "subject")
    client.must_push("org/app", sha256(subject), subject)
    signature = referrer_manifest(subject, "application/vnd.example.sig")
    client.must_push("org/app", sha256(signature), signature)
    clock.advance(seconds=GRACE.total_seconds() + 1)
    real = phases.ManifestRemoval.sweep

    def subject_pushed_first(self: phases.ManifestRemoval) -> bool:
        if self.manifest.digest == sha256(signature):
            client.must_push("org/app", "v1", subject)
        return real(self)

    monkeypatch.setattr(phases.ManifestRemoval, "sweep", subject_pushed_first)
    monkeypatch.setattr(
        phases.CollectManifests,
        "candidates",
        lambda self, state: [  # the referrer only: the subject's own delete would race too
            phases.ManifestRemoval(m, state.manifests.get(m.subject or ""))
            for m in state.manifests.values()
            if m.subject
        ],
    )
    report = cleanup.run()
    assert report.manifests_deleted == 0 and report.errors == 0
    listed = client.get(f"/v2/org/app/referrers/{sha256(subject)}").json()
    assert [d["digest"] for d in listed["manifests"]] == [sha256(signature)]


def test_subscriber_ignores_changes_it_does_not_care_about() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    touched = changes.Change(
        "manifests", "MODIFY", {"repository": "org/app"}, {}, {}, "e1", at, False
    )
    other = changes.Change("accounts", "REMOVE", {"pk": "x"}, {}, None, "e2", at, False)
    retagged_same = changes.Change(
        "tags",
        "MODIFY",
        {"repository": "org/app"},
        {"digest": "a"},
        {"digest": "a"},
        "e3",
        at,
        False,
    )
    assert subscriber.wanted(touched, GRACE) == []
    assert subscriber.wanted(other, GRACE) == []
    assert subscriber.wanted(retagged_same, GRACE) == []
    moved = changes.Change(
        "tags",
        "MODIFY",
        {"repository": "org/app"},
        {"digest": "a"},
        {"digest": "b"},
        "e4",
        at,
        False,
    )
    assert subscriber.wanted(moved, GRACE) == [("org/app", at)]


def test_a_routine_run_out_of_time_leaves_the_rest_due(
    client: Client, clock, streams: StreamPoller
) -> None:
    for repo in ("org/a", "org/b"):
        client.must_push(repo, "v1", image(client, repo, repo))
    clock.advance(seconds=GRACE.total_seconds() + 1)
    for repo in ("org/a", "org/b"):
        client.delete(f"/v2/{repo}/manifests/v1")
    streams.poll()
    late = cleanup.routine(seconds=0)
    assert (late.repositories_collected, late.deferred) == (0, 2)
    assert cleanup.routine().repositories_collected == 2


def test_a_failing_backstop_segment_is_logged_and_the_others_run(
    client: Client, clock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", "a"))
    real = backstop._orphans

    def fails_in_segment_zero(segment, *args):
        if segment.index == 0:
            raise RuntimeError("listing failed")
        return real(segment, *args)

    monkeypatch.setattr(backstop, "_orphans", fails_in_segment_zero)
    report = cleanup.run()
    assert report.errors == 1 and report.repositories_collected == 1
    assert "backstop segment 0 of 8 failed" in caplog.text
    assert "listing failed" in caplog.text  # with its exception


def test_a_redelivered_stream_batch_leaves_the_work_list_as_it_was(aws: None) -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    expired = changes.Change(
        "tags", "REMOVE", {"repository": "org/app"}, {"digest": "a"}, None, "e1", at, True
    )
    expiring = changes.Change(
        "tags",
        "INSERT",
        {"repository": "org/b"},
        None,
        {"digest": "a", "expires_at": int(at.timestamp()) + 3600},
        "e2",
        at,
        False,
    )
    subscriber.on_changes([expired, expiring])
    first = {i.key: i.due_at for i in GcCandidateModel.scan()}
    subscriber.on_changes([expired, expiring])  # at-least-once delivery
    assert {i.key: i.due_at for i in GcCandidateModel.scan()} == first
    assert first == {"org/app": at.timestamp(), "org/b": at.timestamp() + 3600}
