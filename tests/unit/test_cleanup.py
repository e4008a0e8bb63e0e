"""Cleanup and garbage collection (chalicelib/cleanup/, docs/gc.md).

Time is the injected clock; races are staged deterministically at the point where the
other party's write lands (moto gives no isolation between threads).
"""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from chalicelib import cleanup, config
from chalicelib.cleanup import items, objects, phases, queue
from chalicelib.storage import blobs
from chalicelib.storage.models import BlobLinkModel, BlobObjectModel, ManifestModel, TagModel
from tests.client import Client, follow_blob
from tests.images import OCI_INDEX, OCI_MANIFEST, oci_index, sha256
from tests.referrers_fixtures import referrer_manifest

KEY = "quay.expires-after"
GRACE = timedelta(seconds=config.settings.gc_grace_seconds)


def image(
    client: Client, repo: str, layer: bytes, *, expires: str | None = None, seed: str = "x"
) -> bytes:
    doc = client.image_document(
        repo, seed=seed, layers=(layer,), annotations={KEY: expires} if expires else None
    )
    return json.dumps(doc).encode()


def object_exists(digest: str) -> bool:
    listed = boto3.client("s3").list_objects_v2(
        Bucket=config.settings.bucket, Prefix=blobs.object_key(digest)
    )
    return listed.get("KeyCount", 0) == 1


def test_expired_tag_is_deleted_and_its_garbage_collected_after_the_grace_window(
    client: Client, clock
) -> None:
    layer = b"layer that will go"
    body = image(client, "org/app", layer, expires="1h")
    client.must_push("org/app", "temp", body)
    clock.advance(hours=1)
    first = cleanup.run()
    assert first.tags_expired == 1
    assert TagModel.count("org/app") == 0
    # still within the grace window: the manifest and blobs stay
    assert (first.manifests_deleted, first.blobs_deleted) == (0, 0)
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").status == 200
    clock.advance(seconds=GRACE.total_seconds())
    second = cleanup.run()
    assert (second.manifests_deleted, second.links_deleted, second.blobs_deleted) == (1, 2, 2)
    assert second.bytes_freed > len(layer)
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").status == 404
    assert client.head(f"/v2/org/app/blobs/{sha256(layer)}").status == 404
    assert not object_exists(sha256(layer))


def test_a_second_cleanup_run_is_a_no_op(client: Client, clock) -> None:
    client.must_push("org/app", "temp", image(client, "org/app", b"l", expires="1s"))
    clock.advance(seconds=GRACE.total_seconds() + 2)
    assert cleanup.run().manifests_deleted == 1
    again = cleanup.run()
    counts = {k: v for k, v in again.as_dict().items() if isinstance(v, int)}
    counts.pop("repositories_collected")  # looked at again, found nothing
    assert set(counts.values()) == {0}


def test_tagged_images_and_their_blobs_are_kept(client: Client, clock) -> None:
    layer = b"kept layer"
    body = image(client, "org/app", layer)
    client.must_push("org/app", "stable", body)
    clock.advance(days=365)
    report = cleanup.run()
    assert (report.manifests_deleted, report.links_deleted, report.blobs_deleted) == (0, 0, 0)
    assert follow_blob(client, "org/app", sha256(layer)) == layer


def test_cleanup_keeps_blobs_shared_with_another_repository(client: Client, clock) -> None:
    shared = b"shared base layer"
    client.must_push("team/keep", "v1", image(client, "team/keep", shared, seed="keep"))
    client.must_push(
        "team/drop", "v1", image(client, "team/drop", shared, expires="1h", seed="drop")
    )
    clock.advance(hours=1, seconds=GRACE.total_seconds())
    report = cleanup.run()
    assert report.manifests_deleted == 1
    assert client.head(f"/v2/team/drop/blobs/{sha256(shared)}").status == 404
    assert follow_blob(client, "team/keep", sha256(shared)) == shared


def test_cleanup_keeps_blobs_shared_with_another_tag(client: Client, clock) -> None:
    shared = b"shared layer, two tags"
    client.must_push("org/app", "short", image(client, "org/app", shared, expires="1h", seed="a"))
    client.must_push("org/app", "long", image(client, "org/app", shared, seed="b"))
    clock.advance(hours=1, seconds=GRACE.total_seconds())
    report = cleanup.run()
    assert report.manifests_deleted == 1
    assert follow_blob(client, "org/app", sha256(shared)) == shared


def test_index_keeps_its_children_and_referrers_follow_their_subject(client: Client, clock) -> None:
    children = [image(client, "org/multi", f"l{i}".encode(), seed=str(i)) for i in range(2)]
    for child in children:
        client.must_push("org/multi", sha256(child), child)
    index = oci_index(children)
    client.must_push("org/multi", "v1", index, OCI_INDEX)
    signature = referrer_manifest(index, "application/vnd.example.sig")
    client.must_push("org/multi", sha256(signature), signature)
    orphan_subject = image(client, "org/multi", b"gone", seed="gone")
    client.must_push("org/multi", sha256(orphan_subject), orphan_subject)
    orphan_sig = referrer_manifest(orphan_subject, "application/vnd.example.sig")
    client.must_push("org/multi", sha256(orphan_sig), orphan_sig)
    clock.advance(seconds=GRACE.total_seconds() + 1)
    report = cleanup.run()
    remaining = {m.digest for m in ManifestModel.query("org/multi")}
    assert remaining == {sha256(index), sha256(signature), *(sha256(c) for c in children)}
    assert report.manifests_deleted == 2  # the untagged subject and its referrer
    listed = client.get(f"/v2/org/multi/referrers/{sha256(orphan_subject)}").json()
    assert listed["manifests"] == []


def test_recently_pushed_untagged_manifests_survive_the_grace_window(client: Client, clock) -> None:
    """A multi-arch push uploads children by digest before the index that tags them."""
    child = image(client, "org/multi", b"child")
    client.must_push("org/multi", sha256(child), child)
    clock.advance(seconds=GRACE.total_seconds() - 60)
    assert cleanup.run().manifests_deleted == 0
    assert client.get(f"/v2/org/multi/manifests/{sha256(child)}").status == 200


def test_dry_run_reports_and_deletes_nothing(client: Client, clock) -> None:
    body = image(client, "org/app", b"dry", expires="1h")
    client.must_push("org/app", "temp", body)
    clock.advance(hours=1, seconds=GRACE.total_seconds())
    report = cleanup.run(dry_run=True)
    assert report.dry_run and report.tags_expired == 1 and report.manifests_deleted == 1
    assert any(item.startswith("manifest org/app@") for item in report.would_delete)
    assert TagModel.count("org/app") == 1
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").status == 200
    assert object_exists(sha256(b"dry"))


def test_abandoned_uploads_are_aborted_after_their_ttl(client: Client, clock) -> None:
    location = client.post("/v2/org/app/blobs/uploads/").header("Location")
    client.patch(location, headers={"Content-Type": "application/octet-stream"}, body=b"half")
    clock.advance(seconds=config.settings.upload_ttl_seconds - 1)
    assert cleanup.run().uploads_aborted == 0
    clock.advance(seconds=2)
    assert cleanup.run().uploads_aborted == 1
    assert client.get(location).status == 404
    upload_id = location.rsplit("/", 1)[1]
    listed = boto3.client("s3").list_objects_v2(
        Bucket=config.settings.bucket, Prefix=f"uploads/{upload_id}/"
    )
    assert listed.get("KeyCount", 0) == 0


def test_scheduled_handler_emits_metrics_and_returns_the_report(
    client: Client, clock, capsys
) -> None:
    client.must_push("org/app", "temp", image(client, "org/app", b"m", expires="1s"))
    queue.repository("org/app", clock.now())  # as the tags stream's subscriber does
    clock.advance(seconds=2)
    summary = cleanup.handle_schedule()
    assert summary["tags_expired"] == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (emf,) = lines
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Stratus"
    assert {m["Name"] for m in directive["Metrics"]} >= {
        "TagsExpired",
        "BlobsDeleted",
        "BytesFreed",
    }
    assert emf["TagsExpired"] == [1.0]


# --- races ------------------------------------------------------------------------------


def test_push_racing_cleanup_that_deleted_a_link_first_is_refused_not_corrupt(
    client: Client, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collection deletes an old, unused link between the push's check and its commit."""
    from chalicelib.storage import manifests as store

    layer = b"old unused layer"
    client.push_blob("org/app", layer)
    body = image(client, "org/app", layer)  # pushes config and layer (fresh links)
    clock.advance(seconds=GRACE.total_seconds() + 1)
    real = store.transactions.transaction
    ran = []

    def collect_then_commit():
        if not ran:  # once: the collection's own link deletes are transactions too
            ran.append(None)
            ran[0] = cleanup.run()
        return real()

    monkeypatch.setattr(store.transactions, "transaction", collect_then_commit)
    answer = client.push_manifest("org/app", "v1", body, OCI_MANIFEST)
    assert ran[0].links_deleted == 2
    assert answer.status == 400
    assert answer.error_codes == ["MANIFEST_BLOB_UNKNOWN"]
    assert client.get("/v2/org/app/manifests/v1").status == 404


def test_push_that_touched_a_link_first_wins_over_cleanup(
    client: Client, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The push commits after the collector's scan: the collector's delete must fail."""
    layer = b"layer reused by a late push"
    body = image(client, "org/app", layer)
    clock.advance(seconds=GRACE.total_seconds() + 1)

    class PushMeanwhile:
        name = "push"

        def candidates(self, state: phases.RepositoryState) -> list:
            client.must_push("org/app", "v1", body)  # lands after the manifests were read
            return []

    real = phases.phases
    monkeypatch.setattr(phases, "phases", lambda: [*real()[:-1], PushMeanwhile(), real()[-1]])
    report = cleanup.run()
    assert report.links_deleted == 0
    assert BlobLinkModel.count("org/app") == 2
    assert follow_blob(client, "org/app", sha256(layer)) == layer


def test_upload_racing_blob_object_deletion_loses_nothing(
    client: Client, clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector marks an old object, the same bytes are uploaded, then it deletes."""
    data = b"bytes deleted and uploaded again"
    digest = client.push_blob("org/old", data)
    client.delete(f"/v2/org/old/blobs/{digest}")
    clock.advance(seconds=GRACE.total_seconds() + 1)
    record = items.object_record(digest)
    assert record is not None
    removal = objects.ObjectRemoval(record, clock.now())
    assert removal.mark()
    finished = []

    def collector_finishes_while_upload_waits(seconds: float) -> None:
        finished.append(removal.finish())

    monkeypatch.setattr(blobs.time, "sleep", collector_finishes_while_upload_waits)
    client.push_blob("org/new", data)  # meets the marker, waits, links, writes again
    assert finished == [True]
    assert follow_blob(client, "org/new", digest) == data
    assert BlobObjectModel.get(digest).deleting is None
