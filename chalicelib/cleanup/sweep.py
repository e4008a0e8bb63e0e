"""The sweep: conditional deletes of what the mark chose, and the one step that applies them.

Every delete is conditional on the item being as the mark read it (docs/gc.md): a push that
touched, re-tagged or re-linked it meanwhile wins, and `sweep()` answers False. Anything
else that goes wrong is logged with its exception and counted, and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.expressions.condition import Condition

from chalicelib.cleanup.items import Link, Manifest, Tag
from chalicelib.cleanup.report import Report
from chalicelib.storage import quotas, referrers, transactions
from chalicelib.storage.models import BlobLinkModel, ManifestModel, ReferrerModel, TagModel

logger = logging.getLogger("stratus.cleanup")


class Sweep(Protocol):
    """One deletion the mark chose."""

    @property
    def counter(self) -> str:
        """The Report field it counts under."""
        ...

    def describe(self) -> str: ...

    def size(self) -> int: ...

    def sweep(self) -> bool:
        """Delete, on condition nothing changed since the mark; False: something did."""
        ...


def lost_race(exc: Exception) -> bool:
    """A conditional write failed: the other party came first, which is fine."""
    if isinstance(exc, TransactWriteError):
        return transactions.lost_race(exc)
    code = getattr(exc, "cause_response_code", None)
    if code is None:
        response = getattr(exc, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ConditionalCheckFailedException"


def apply(sweeps: Iterable[Sweep], report: Report) -> list[Sweep]:
    """Carry out the sweeps (a dry run only reports them); the ones that went."""
    done: list[Sweep] = []
    for item in sweeps:
        if not report.dry_run:
            try:
                if not item.sweep():
                    continue
            except Exception:
                report.errors += 1
                logger.exception("cleanup: %s failed", item.describe())
                continue
        report.swept(item.counter, item.describe(), item.size())
        done.append(item)
    return done


@dataclass(frozen=True)
class TagRemoval:
    """An expired tag (or one a repository's policy prunes), only in the version read."""

    tag: Tag
    counter: str = "tags_expired"
    policy: str | None = None  # pruned by this auto-prune policy: marked before the delete

    def describe(self) -> str:
        return f"tag {self.tag.repository}:{self.tag.name}"

    def size(self) -> int:
        return 0

    def sweep(self) -> bool:
        condition = TagModel.digest == self.tag.digest
        condition &= (
            TagModel.expires_at == self.tag.expires_at
            if self.tag.expires_at is not None
            else TagModel.expires_at.does_not_exist()
        )
        try:
            if self.policy is not None:
                from chalicelib.storage import policies

                return policies.prune_tag(
                    self.tag.repository, self.tag.sort_key, condition, self.policy
                )
            TagModel(self.tag.repository, self.tag.sort_key).delete(condition=condition)
        except PynamoDBException as exc:
            if lost_race(exc):
                return False
            raise
        return True


def _unchanged(m: Manifest) -> Condition:
    """The manifest item as the mark read it: a push rewrites `pushed_at`, a reference
    from another push `touched_at`."""
    condition: Condition = (ManifestModel.pushed_at == m.pushed_at) & (
        ManifestModel.touched_at == m.touched_at
        if m.touched_at
        else ManifestModel.touched_at.does_not_exist()
    )
    return condition


@dataclass(frozen=True)
class ManifestRemoval:
    """An unreachable manifest, with its referrers-index entry.

    A referrer goes only if its subject is as the mark saw it: absent, or unchanged. A
    subject pushed meanwhile (rewriting its `pushed_at`) fails the transaction's condition
    check, so the referrer stays with it.
    """

    manifest: Manifest
    subject: Manifest | None = None  # the subject's row, if the repository held it
    counter: str = "manifests_deleted"

    def describe(self) -> str:
        return f"manifest {self.manifest.repository}@{self.manifest.digest}"

    def size(self) -> int:
        return 0

    def sweep(self) -> bool:
        m = self.manifest
        try:
            with transactions.transaction() as t:
                t.delete(ManifestModel(m.repository, m.digest), condition=_unchanged(m))
                if m.subject:
                    t.delete(
                        ReferrerModel(referrers.subject_key(m.repository, m.subject), m.digest)
                    )
                    absent = ManifestModel.digest.does_not_exist()
                    t.condition_check(
                        ManifestModel,
                        m.repository,
                        m.subject,
                        condition=absent | _unchanged(self.subject) if self.subject else absent,
                    )
        except TransactWriteError as exc:
            if lost_race(exc):
                return False
            raise
        return True


@dataclass(frozen=True)
class LinkRemoval:
    """A repository's link to a blob that no surviving manifest uses."""

    link: Link
    counter: str = "links_deleted"

    def describe(self) -> str:
        return f"link {self.link.repository}@{self.link.digest}"

    def size(self) -> int:
        return 0

    def sweep(self) -> bool:
        link = self.link
        condition = BlobLinkModel.linked_at == link.linked_at
        condition &= (
            BlobLinkModel.touched_at == link.touched_at
            if link.touched_at
            else BlobLinkModel.touched_at.does_not_exist()
        )
        item = BlobLinkModel(link.repository, link.digest)
        try:  # with the namespace's usage (storage/quotas.py)
            quotas.transact(
                link.repository,
                link.digest,
                0,
                lambda t: t.delete(item, condition=condition),
                linking=False,
            )
        except PynamoDBException as exc:
            if lost_race(exc):
                return False
            raise
        return True
