"""A repository's collection: its rows read once, then phases in order, each a pure mark
of candidates from those rows followed by the one apply step.

`phases()` is the order. Tags go first, so what they untag is collected in the same run:
- expire: tags past their expiry;
- TAG_RULE_PHASES: the hook for phases that delete tags by rule (a repository's retention
  policy). Each listed module exposes `phase`, an object with `name` and
  `candidates(state) -> list[Sweep]` (typically `TagRemoval(tag, counter="tags_pruned")`
  for tags of `state.live_tags()`); it is imported when a run starts;
- manifests: unreachable and older than the grace window;
- links: unused by any manifest that stays, and older than the grace window.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from chalicelib.cleanup import items, plan
from chalicelib.cleanup.items import Link, Manifest, Tag
from chalicelib.cleanup.report import Report
from chalicelib.cleanup.sweep import LinkRemoval, ManifestRemoval, Sweep, TagRemoval, apply

# Modules whose `phase` deletes tags by rule, run after expiry and before manifests.
TAG_RULE_PHASES: tuple[str, ...] = ("chalicelib.policies.prune",)


@dataclass
class RepositoryState:
    """One repository as its collection read it, and what the run removed so far."""

    repository: str
    now: datetime
    grace: timedelta
    tags: list[Tag]
    manifests: dict[str, Manifest]
    links: list[Link]
    gone_tags: set[str] = field(default_factory=set)  # sort keys
    gone_manifests: set[str] = field(default_factory=set)
    gone_links: set[str] = field(default_factory=set)

    @property
    def cutoff(self) -> datetime:
        return self.now - self.grace

    def live_tags(self) -> list[Tag]:
        """Tags neither expired nor removed by an earlier phase of this run."""
        return [
            t
            for t in self.tags
            if t.sort_key not in self.gone_tags
            and (t.expires_at is None or t.expires_at > self.now)
        ]

    def forget(self, swept: Sweep) -> None:
        if isinstance(swept, TagRemoval):
            self.gone_tags.add(swept.tag.sort_key)
        elif isinstance(swept, ManifestRemoval):
            self.gone_manifests.add(swept.manifest.digest)
        elif isinstance(swept, LinkRemoval):
            self.gone_links.add(swept.link.digest)

    def next_due(self) -> datetime | None:
        return plan.next_due(
            self.tags,
            self.manifests,
            self.links,
            now=self.now,
            grace=self.grace,
            gone_tags=self.gone_tags,
            gone_manifests=self.gone_manifests,
            gone_links=self.gone_links,
        )


class Phase(Protocol):
    name: str

    def candidates(self, state: RepositoryState) -> Sequence[Sweep]: ...


class ExpireTags:
    name = "expire"

    def candidates(self, state: RepositoryState) -> Sequence[Sweep]:
        return [TagRemoval(t) for t in plan.expired_tags(state.tags, state.now)]


class CollectManifests:
    name = "manifests"

    def candidates(self, state: RepositoryState) -> Sequence[Sweep]:
        live = plan.live_digests(state.tags, state.now, state.gone_tags)
        dead = plan.dead_manifests(state.manifests, live, state.cutoff)
        return [
            ManifestRemoval(m, state.manifests.get(m.subject) if m.subject else None) for m in dead
        ]


class CollectLinks:
    name = "links"

    def candidates(self, state: RepositoryState) -> Sequence[Sweep]:
        used = plan.used_blobs(state.manifests, state.gone_manifests)
        return [LinkRemoval(link) for link in plan.dead_links(state.links, used, state.cutoff)]


def _tag_rule_phases() -> list[Phase]:
    return [importlib.import_module(name).phase for name in TAG_RULE_PHASES]


def phases() -> list[Phase]:
    return [ExpireTags(), *_tag_rule_phases(), CollectManifests(), CollectLinks()]


@dataclass
class RepositoryOutcome:
    report: Report
    next_due: datetime | None  # when it next holds something collectable
    unlinked: list[str]  # digests whose link went: their shared objects may be garbage


def collect(
    repository: str, now: datetime, grace: timedelta, *, dry_run: bool
) -> RepositoryOutcome:
    """Read the repository's tags, manifests and links (three projected Queries), then run
    the phases over them."""
    state = RepositoryState(
        repository,
        now,
        grace,
        items.tags_of(repository),
        {m.digest: m for m in items.manifests_of(repository)},
        items.links_of(repository),
    )
    report = Report(dry_run=dry_run, repositories_collected=1)
    for phase in phases():
        for swept in apply(phase.candidates(state), report):
            state.forget(swept)
    return RepositoryOutcome(report, state.next_due(), sorted(state.gone_links))
