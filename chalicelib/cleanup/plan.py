"""The mark: pure functions from scanned rows to what is garbage, and when to look again.

No I/O here. A repository's rows in, decisions out; the phases (phases.py) turn decisions
into sweeps, which one apply step (sweep.py) carries out or, on a dry run, only reports.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from chalicelib.cleanup.items import Link, Manifest, Tag


def expired_tags(tags: Iterable[Tag], now: datetime) -> list[Tag]:
    """Tags past their expiry (DynamoDB's TTL deletes lag by up to days)."""
    return [t for t in tags if t.expires_at is not None and t.expires_at <= now]


def live_digests(tags: Iterable[Tag], now: datetime, gone: set[str]) -> set[str]:
    """Digests a live tag points at; `gone`: sort keys of tags this run removed."""
    return {
        t.digest
        for t in tags
        if t.sort_key not in gone and (t.expires_at is None or t.expires_at > now)
    }


def reachable(manifests: Mapping[str, Manifest], roots: Iterable[str]) -> set[str]:
    """The roots, the children of reachable indexes, and referrers of reachable subjects."""
    referrers_of: dict[str, list[str]] = defaultdict(list)
    for m in manifests.values():
        if m.subject:
            referrers_of[m.subject].append(m.digest)
    alive: set[str] = set()
    pending = list(roots)
    while pending:
        digest = pending.pop()
        if digest in alive or digest not in manifests:
            continue
        alive.add(digest)
        pending.extend(manifests[digest].children)
        pending.extend(referrers_of.get(digest, ()))
    return alive


def dead_manifests(
    manifests: Mapping[str, Manifest], live: set[str], cutoff: datetime
) -> list[Manifest]:
    """Alive: tagged, pushed or touched after `cutoff`, a child of an alive index, or a
    referrer of an alive subject. The rest is garbage."""
    roots = live | {d for d, m in manifests.items() if m.last_used > cutoff}
    alive = reachable(manifests, roots)
    return [m for d, m in sorted(manifests.items()) if d not in alive]


def used_blobs(manifests: Mapping[str, Manifest], gone: set[str]) -> set[str]:
    """Blobs of the manifests that stay (including those whose removal lost a race)."""
    return {b for d, m in manifests.items() if d not in gone for b in m.blobs}


def dead_links(links: Iterable[Link], used: set[str], cutoff: datetime) -> list[Link]:
    return [link for link in links if link.digest not in used and link.last_used <= cutoff]


def next_due(
    tags: Iterable[Tag],
    manifests: Mapping[str, Manifest],
    links: Iterable[Link],
    *,
    now: datetime,
    grace: timedelta,
    gone_tags: set[str],
    gone_manifests: set[str],
    gone_links: set[str],
) -> datetime | None:
    """When this repository next holds something collectable: the next tag expiry, or the
    end of the grace window that alone keeps an unreachable manifest or unused link."""
    kept_tags = [t for t in tags if t.sort_key not in gone_tags]
    times = [t.expires_at for t in kept_tags if t.expires_at is not None and t.expires_at > now]
    remaining = {d: m for d, m in manifests.items() if d not in gone_manifests}
    tagged = reachable(remaining, live_digests(kept_tags, now, set()))
    times += [m.last_used + grace for d, m in remaining.items() if d not in tagged]
    used = used_blobs(remaining, set())
    times += [
        link.last_used + grace
        for link in links
        if link.digest not in gone_links and link.digest not in used
    ]
    future = [t for t in times if t > now]
    return min(future) if future else None
