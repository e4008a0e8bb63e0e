"""Auto-prune: Quay's `number_of_tags` (keep the N most recently pushed) and `creation_date`
(delete tags pushed longer ago than "30d"), per namespace and repository, each optionally
limited by `tagPattern`/`tagPatternMatches`.

Rules:
- every policy of the repository and of its namespace applies, and a tag goes if any of
  them prunes it: the strictest wins;
- immutable tags are never pruned, and do not count towards `number_of_tags` (a policy
  keeps the N newest tags it could prune);
- expired tags are left to the expiry step of the cleanup and are not counted either;
- a pruned tag is deleted on condition that it still points where it did and was not
  pushed again since (a re-push wins); what it untags is garbage for the normal GC.

Applied three ways: after every tagged push where a `number_of_tags` policy covers the
tag (so a repository holds at most N plus the pushes in flight); by the scheduled cleanup,
as its tag-rule `phase` for each repository it collects; and by `prune(now, dry_run)`,
which visits every repository under an auto-prune policy (an index item per resource
names them, so no scan).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from chalicelib import observability
from chalicelib.policies import immutability, patterns
from chalicelib.registry.expiry import parse as parse_duration
from chalicelib.storage import policies as store

logger = logging.getLogger(__name__)

NUMBER_OF_TAGS, CREATION_DATE = "number_of_tags", "creation_date"


class TagLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def pushed_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...


T = TypeVar("T", bound=TagLike)


@dataclass(frozen=True)
class Verdict:
    tag: Any  # the caller's tag row
    policy: store.Policy
    reason: str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _newest_first(tags: Iterable[T]) -> list[T]:
    return sorted(tags, key=lambda t: (t.pushed_at or _EPOCH, t.name), reverse=True)


def plan(
    tags: Sequence[T],
    prune_policies: Sequence[store.Policy],
    immutable_policies: Sequence[store.Policy],
    now: datetime,
) -> list[Verdict]:
    """Which live tags the policies prune, and why (pure: no I/O)."""
    live = [t for t in tags if t.expires_at is None or t.expires_at > now]
    candidates = [
        t
        for t in live
        if not any(
            patterns.covers(p.tag_pattern, p.tag_pattern_matches, t.name)
            for p in immutable_policies
        )
    ]
    verdicts: dict[str, Verdict] = {}
    for policy in prune_policies:
        covered = [
            t
            for t in candidates
            if patterns.covers(policy.tag_pattern, policy.tag_pattern_matches, t.name)
        ]
        for tag, reason in _pruned_by(policy, covered, now):
            verdicts.setdefault(tag.name, Verdict(tag, policy, reason))
    return sorted(verdicts.values(), key=lambda v: str(v.tag.name))


def _pruned_by(policy: store.Policy, covered: list[T], now: datetime) -> list[tuple[T, str]]:
    if policy.method == NUMBER_OF_TAGS:
        keep = int(policy.value or "0")
        return [(t, f"beyond the {keep} newest") for t in _newest_first(covered)[keep:]]
    if policy.method == CREATION_DATE:
        age = parse_duration(policy.value)
        if age is None or age <= timedelta(0):
            return []
        cutoff = now - age
        return [
            (t, f"pushed before {cutoff.isoformat()}")
            for t in covered
            if t.pushed_at is not None and t.pushed_at < cutoff
        ]
    return []


def applicable(repository: str) -> tuple[list[store.Policy], list[store.Policy]]:
    """The repository's auto-prune policies (its namespace's and its own) and its
    immutability policies: two cached Queries at most."""
    prune_policies = [
        p for r in immutability.resources(repository) for p in store.of_kind(r, store.AUTOPRUNE)
    ]
    return prune_policies, immutability.applicable(repository) if prune_policies else []


# -- after a push --------------------------------------------------------------------------


def after_push(repository: str, tag: str, now: datetime) -> int:
    """Enforce `number_of_tags` at once when a push tags something a count policy covers;
    how many tags went. Costs nothing where no such policy applies; otherwise one projected
    Query of the repository's tags (at most N plus the pushes in flight, where the policy
    covers every tag) and, per pruned tag, a conditional UpdateItem (the `pruned_by`
    marker the tag's event reads) and DeleteItem. Never fails the push."""
    prune_policies, immutables = applicable(repository)
    counting = [
        p
        for p in prune_policies
        if p.method == NUMBER_OF_TAGS and patterns.covers(p.tag_pattern, p.tag_pattern_matches, tag)
    ]
    if not counting:
        return 0
    try:
        rows = store.tag_rows(repository)
        verdicts = plan(rows, counting, immutables, now)
        pruned = [
            v for v in verdicts if store.delete_if_unchanged(repository, v.tag, v.policy.uuid)
        ]
    except Exception:
        logger.exception("auto-prune after a push to %s failed; the cleanup will retry", repository)
        return 0
    if pruned:
        _count(repository, pruned)
    return len(pruned)


def _count(repository: str, pruned: list[Verdict]) -> None:
    """Log the tags a push pruned and count them (metric TagsPruned, as the cleanup's)."""
    logger.info(
        "auto-prune after a push to %s: %s",
        repository,
        ", ".join(f"{v.tag.name} ({v.reason}, policy {v.policy.uuid})" for v in pruned),
    )
    emitter = observability.metrics()
    if emitter is not None:
        from aws_lambda_powertools.metrics import MetricUnit

        emitter.add_metric(name="TagsPruned", unit=MetricUnit.Count, value=len(pruned))


# -- the scheduled run ---------------------------------------------------------------------


@dataclass
class Report:
    dry_run: bool
    repositories: int = 0
    tags_pruned: int = 0
    errors: int = 0
    # Each pruned (or, dry, prunable) tag: repository, tag, digest, policy, reason.
    pruned: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def repositories_under(resource: str) -> list[str]:
    if resource.endswith("/"):
        return store.repositories_in(resource[:-1])
    return [resource]


def preview(repositories: Iterable[str], now: datetime) -> list[dict[str, str]]:
    """What pruning would take from these repositories now (the dry run's list)."""
    found: list[dict[str, str]] = []
    for repository in repositories:
        prune_policies, immutables = applicable(repository)
        if not prune_policies:
            continue
        for verdict in plan(store.tag_rows(repository), prune_policies, immutables, now):
            found.append(_entry(repository, verdict))
    return found


def _entry(repository: str, verdict: Verdict) -> dict[str, str]:
    return {
        "repository": repository,
        "tag": verdict.tag.name,
        "manifest_digest": verdict.tag.digest,
        "policy": verdict.policy.uuid,
        "reason": verdict.reason,
    }


def prune(now: datetime, dry_run: bool) -> Report:
    """Prune every repository under an auto-prune policy (the scheduled cleanup's call)."""
    report = Report(dry_run=dry_run)
    seen: set[str] = set()
    for resource in store.pruned_resources():
        if not store.of_kind(resource, store.AUTOPRUNE, fresh=True):
            if not dry_run:
                store.unindex_pruned(resource)
            continue
        for repository in repositories_under(resource):
            if repository in seen:
                continue
            seen.add(repository)
            report.repositories += 1
            try:
                _prune_repository(repository, now, report)
            except Exception:  # one repository's failure must not stop the others
                report.errors += 1
                logger.exception("auto-prune of %s failed", repository)
    if report.tags_pruned:
        logger.info(
            "auto-prune: %d tags %s in %d repositories",
            report.tags_pruned,
            "would go" if dry_run else "pruned",
            report.repositories,
        )
    return report


def _prune_repository(repository: str, now: datetime, report: Report) -> None:
    prune_policies, immutables = applicable(repository)
    for verdict in plan(store.tag_rows(repository), prune_policies, immutables, now):
        if report.dry_run or store.delete_if_unchanged(
            repository, verdict.tag, verdict.policy.uuid
        ):
            report.tags_pruned += 1
            report.pruned.append(_entry(repository, verdict))


# -- the cleanup's tag-rule phase ----------------------------------------------------------


class _Phase:
    """The hook of the cleanup's per-repository collection (chalicelib/cleanup/phases.py):
    the tags of `state.live_tags()` the policies prune, as `TagRemoval`s counted as
    `tags_pruned`."""

    name = "autoprune"

    def candidates(self, state: Any) -> list[Any]:
        # The cleanup imports this module, not the other way round.
        removal = importlib.import_module("chalicelib.cleanup.sweep").TagRemoval
        prune_policies, immutables = applicable(state.repository)
        if not prune_policies:
            return []
        verdicts = plan(state.live_tags(), prune_policies, immutables, state.now)
        return [removal(v.tag, counter="tags_pruned", policy=v.policy.uuid) for v in verdicts]


phase = _Phase()
