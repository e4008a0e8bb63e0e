"""Garbage collection at growing registry sizes, on in-process moto: time and AWS calls of
the routine run (the work list the streams feed) and of the full backstop mark.

`python -m bench gc [--sizes 1000,10000] [--garbage 0.01]` prints each size's figures as
JSON, then the table docs/gc.md quotes; `measure(...)` returns one size's figures. 50,000
manifests (`--sizes 50000`) take well over ten minutes in moto (its Queries go through the
whole table), so they are not in the default run.

The registry is written with batch writes straight into the tables (a push per manifest
would take hours at 50k): repositories of 100 manifests, each manifest with its own config
and layer blobs (links and blob-object records; the S3 objects themselves are left out, so
deleting one is a no-op and the orphan listing reads empty prefixes). Garbage is untagged
manifests older than the grace window, with their blobs, in the repositories that changed
(10 per repository, as a deleted tag or a CI cleanup would leave it); the routine run is
handed exactly those repositories, as the tags stream's subscriber would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import Counter
from datetime import timedelta
from typing import Any

PER_REPOSITORY = 100
GARBAGE_PER_REPOSITORY = 10


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def build(manifests: int, garbage: int, now: Any) -> list[str]:
    """Write the registry; the repositories holding garbage."""
    from chalicelib.storage.models import (
        BlobLinkModel,
        BlobObjectModel,
        ManifestModel,
        RepositoryModel,
        TagModel,
    )

    old = now - timedelta(days=3)
    changed: list[str] = []
    repositories = max(1, manifests // PER_REPOSITORY)
    garbage_left = garbage
    with (
        ManifestModel.batch_write() as m_batch,
        TagModel.batch_write() as t_batch,
        BlobLinkModel.batch_write() as l_batch,
        BlobObjectModel.batch_write() as o_batch,
        RepositoryModel.batch_write() as r_batch,
    ):
        for r in range(repositories):
            repository = f"org{r % 50}/repo{r}"
            r_batch.save(RepositoryModel(repository, created_at=old))
            dead_here = min(GARBAGE_PER_REPOSITORY, garbage_left)
            garbage_left -= dead_here
            if dead_here:
                changed.append(repository)
            for i in range(PER_REPOSITORY):
                digest = _digest(f"{repository} manifest {i}")
                blobs = {_digest(f"{repository} config {i}"), _digest(f"{repository} layer {i}")}
                m_batch.save(
                    ManifestModel(
                        repository,
                        digest,
                        media_type="application/vnd.oci.image.manifest.v1+json",
                        size=500,
                        blobs=blobs,
                        pushed_at=old,
                    )
                )
                for blob in blobs:
                    l_batch.save(BlobLinkModel(repository, blob, size=1000, linked_at=old))
                    o_batch.save(BlobObjectModel(blob, size=1000, last_linked_at=old))
                if i >= dead_here:  # tagged: alive
                    t_batch.save(
                        TagModel(
                            repository,
                            f"v{i}",
                            name=f"v{i}",
                            digest=digest,
                            media_type="application/vnd.oci.image.manifest.v1+json",
                            size=500,
                            pushed_at=old,
                        )
                    )
    return changed


def _timed(run: Any) -> dict[str, Any]:
    from chalicelib.storage import calls

    calls.counter.clear()
    calls.items.clear()
    started = time.perf_counter()
    report = run()
    seconds = time.perf_counter() - started
    by_operation = Counter({f"{s}.{o}": n for (s, o), n in calls.counter.items()})
    return {
        "seconds": round(seconds, 2),
        "calls": sum(by_operation.values()),
        "by_operation": dict(by_operation.most_common()),
        "manifests_deleted": report.manifests_deleted,
        "links_deleted": report.links_deleted,
        "blobs_deleted": report.blobs_deleted,
        "repositories_collected": report.repositories_collected,
    }


def measure(
    manifests: int,
    garbage_fraction: float = 0.01,
    segments: int = 8,
    backstop_max: int = 2_000,
    objects_max: int = 10_000,
) -> dict[str, Any]:
    """One registry of `manifests`: the routine run over what changed, the next one (the
    objects the first unlinked), then, up to `backstop_max` manifests, the backstop over
    everything (the same garbage written again). moto answers every Query by going through
    the whole table (a GSI Query also sorts it), so the steps with one GSI Query per blob
    object grow quadratically in time here, not on DynamoDB: the objects run is skipped
    past `objects_max` manifests and the backstop past `backstop_max`; their calls per item
    are the same at every size."""
    import dataclasses

    from moto import mock_aws

    from chalicelib import clock, config
    from chalicelib.local import moto_patches
    from chalicelib.storage import calls

    moto_patches.install()
    calls.install()  # counts every call (and which role made it)
    config.settings = dataclasses.replace(config.settings, gc_segments=segments)
    garbage = max(1, round(manifests * garbage_fraction))
    with mock_aws():
        from chalicelib.cleanup import collector, queue
        from chalicelib.local.stack import provision

        provision()
        now = clock.now()
        started = time.perf_counter()
        changed = build(manifests, garbage, now)
        built = time.perf_counter() - started
        for repository in changed:  # what the tags stream's subscriber would enqueue
            queue.repository(repository, now)
        routine = _timed(lambda: collector.routine(now=now))
        # The next routine run: the shared objects the first one unlinked.
        objects = _timed(lambda: collector.routine(now=now)) if manifests <= objects_max else None
        full = None
        if manifests <= backstop_max:
            build(manifests, garbage, now)  # the garbage again (the rest rewritten unchanged)
            full = _timed(lambda: collector.run(now=now))
    return {
        "manifests": manifests,
        "garbage_manifests": garbage,
        "repositories": max(1, manifests // PER_REPOSITORY),
        "changed_repositories": len(changed),
        "segments": segments,
        "build_seconds": round(built, 1),
        "routine": routine,
        "routine_objects": objects,
        "backstop": full,
    }


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table docs/gc.md quotes."""
    lines = [
        "| manifests | garbage manifests | routine: s | routine: AWS calls | "
        "next routine (objects): s | calls | backstop: s | backstop: AWS calls | "
        "backstop calls per manifest |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        routine, objects, full = r["routine"], r["routine_objects"], r["backstop"]
        next_run = f"{objects['seconds']} | {objects['calls']:,}" if objects else "not run | "
        backstop = (
            f"{full['seconds']} | {full['calls']:,} | {full['calls'] / r['manifests']:.2f}"
            if full
            else "not run | | "
        )
        lines.append(
            f"| {r['manifests']:,} | {r['garbage_manifests']:,} | {routine['seconds']} | "
            f"{routine['calls']:,} | {next_run} | {backstop} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench gc", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--garbage", type=float, default=0.01)
    parser.add_argument("--backstop-max", type=int, default=2_000)
    parser.add_argument("--objects-max", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [s for s in sizes if s <= 10_000]
    results = []
    for size in sizes:
        results.append(
            measure(
                size, args.garbage, backstop_max=args.backstop_max, objects_max=args.objects_max
            )
        )
        print(json.dumps(results[-1], indent=2), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
