"""Storage quotas: a namespace's byte limit with Warning and Reject thresholds (Quay's
`/api/v1/organization/<org>/quota` and `.../quota/<id>/limit`).

A link that would take the namespace's usage over a Reject threshold is refused, in the
link's own transaction planning (storage/quotas.py `transact`): upload finishes, monolithic
uploads, mounts and blobs embedded in manifests all link through it. A manifest too large
for an item (stored in S3) is checked against the same threshold before it is written.
Only links that add bytes to the namespace are checked: a blob it already holds is free.

Overshoot: the check reads the usage, the transaction then adds to it, so links committed
between another link's read and its commit are not seen by it. Usage can exceed the Reject
threshold by at most the sizes of the new blobs whose links were in that window at once:
with P pushes in parallel, at most P blobs. Once over, every further new blob is refused.

A link past a Warning threshold is logged and counted (metric QuotaWarnings); the push
succeeds. The link that crosses it (usage at or under the threshold before, over after)
is also an event, `quota_warning` (docs/events.md): to the webhooks of the repository and
namespace that want it, and to EventBridge relayed by the webhooks function (the API's role
has no PutEvents), sent once its link committed (`announce`).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING

from chalicelib import observability
from chalicelib.auth.permissions import namespace_of
from chalicelib.errors import Denied
from chalicelib.storage import quotas as store

if TYPE_CHECKING:
    from chalicelib.events.schema import Event

logger = logging.getLogger(__name__)

# The warning the last checked link would cause, until `announce` sends it after the commit.
_pending: ContextVar[Event | None] = ContextVar("quota_warning", default=None)


class QuotaExceeded(Denied):
    message = "quota exceeded"


def human(size: int) -> str:
    """Bytes in decimal units with at most one decimal: 10200000000 -> "10.2 GB"."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def check(change: store.Change) -> None:
    """The quota check of a planned link (storage/quotas.py calls it before committing)."""
    _pending.set(None)
    if change.namespace_delta > 0:
        crossed = enforce(change.namespace, change.namespace_delta)
        if crossed is not None:
            _pending.set(warning(change.repository, change.digest, *crossed))


def check_manifest(repository: str, size: int) -> None:
    """The check for a manifest stored in S3, before it is written."""
    namespace = namespace_of(repository)
    if namespace:
        enforce(namespace, size)


def enforce(namespace: str, adding: int) -> tuple[int, int] | None:
    """Refuse if usage plus `adding` passes a Reject threshold; log and count a Warning.
    When `adding` crosses a Warning threshold: the usage after and that threshold.
    Costs a cached GetItem, and a Query of the usage counters only under a quota."""
    quota = store.get_quota(namespace)
    if quota is None or not quota.limits:
        return None
    after = store.namespace_usage(namespace) + adding
    for limit in sorted(quota.limits, key=lambda x: x.percent):
        threshold = quota.threshold(limit)
        if after <= threshold:
            continue
        if limit.limit_type == store.REJECT:
            raise QuotaExceeded(
                {"namespace": namespace, "usage": after, "limit": threshold},
                message=f"quota exceeded for namespace {namespace}: "
                f"{human(after)} of {human(threshold)}",
            )
    warned = sorted(quota.threshold(x) for x in quota.limits if x.limit_type == store.WARNING)
    if any(after > threshold for threshold in warned):
        _warn(namespace, after, quota)
    crossed = [t for t in warned if after - adding <= t < after]
    return (after, crossed[-1]) if crossed else None


def warning(repository: str, digest: str, usage: int, limit: int) -> Event:
    """The `quota_warning` event of the link of `digest` into `repository`."""
    import uuid

    from chalicelib import clock
    from chalicelib.events import schema

    return schema.Event(
        str(uuid.uuid4()),
        schema.QUOTA_WARNING,
        repository,
        clock.now(),
        digest,
        usage=usage,
        limit=limit,
    )


def announce(repository: str, digest: str) -> None:
    """Send the warning the committed link of `digest` into `repository` caused, if any:
    the webhooks' two Queries and an SQS message or two, only when a threshold was crossed.
    A failure is logged, never raised (the push succeeded)."""
    event = _pending.get()
    if event is None or (event.repository, event.digest) != (repository, digest):
        return
    _pending.set(None)
    from chalicelib.events import actor, audit, bridge, webhooks
    from chalicelib.storage import aws

    try:
        audit.write(
            [
                audit.Entry(
                    "quota_warning",
                    actor.current(),
                    repository=repository,
                    metadata={
                        "digest": digest,
                        "usage": str(event.usage),
                        "limit": str(event.limit),
                    },
                )
            ]
        )
        webhooks.enqueue([event])
        relayed = bridge.relayed(event)
        if relayed is not None:
            aws.sqs().send_message_batch(
                QueueUrl=webhooks.queue_url(), Entries=[{"Id": "0", "MessageBody": relayed}]
            )
    except Exception:
        logger.exception("quota warning event for namespace %s not sent", event.namespace)


def _warn(namespace: str, after: int, quota: store.Quota) -> None:
    logger.warning(
        "quota warning for namespace %s: %s of %s",
        namespace,
        human(after),
        human(quota.limit_bytes),
    )
    emitter = observability.metrics()
    if emitter is not None:
        from aws_lambda_powertools.metrics import MetricUnit

        emitter.add_metric(name="QuotaWarnings", unit=MetricUnit.Count, value=1)


# -- repair --------------------------------------------------------------------------------


def repair(namespace: str, *, dry_run: bool = False) -> store.Recount:
    """Recompute one namespace's usage from its repositories' links (on demand: the API's
    `.../quota/repair` and `stratus admin usage-repair`)."""
    from chalicelib.storage import policies as policy_store

    repositories = set(policy_store.repositories_in(namespace))
    repositories |= store.counted_repositories(namespace)
    found = store.recount(namespace, sorted(repositories), dry_run=dry_run)
    if found.before != found.after:
        logger.warning(
            "usage of namespace %s drifted: counted %d bytes, links hold %d%s",
            namespace,
            found.before,
            found.after,
            " (dry run)" if dry_run else "",
        )
    return found


def repair_all(*, dry_run: bool = False) -> list[store.Recount]:
    """Recompute every namespace's usage (the cleanup's backstop does it namespace by
    namespace, resumably: cleanup/backstop.py)."""
    return [repair(namespace, dry_run=dry_run) for namespace in namespaces()]


def namespaces() -> list[str]:
    """Every namespace holding a repository, sorted: the catalog's names, page by page."""
    from chalicelib.storage import repositories

    namespaces: set[str] = set()
    after: str | None = None
    while True:
        names, more = repositories.list_names(after, 1000)
        namespaces.update(namespace_of(n) for n in names if namespace_of(n))
        if not more or not names:
            break
        after = names[-1]
    return sorted(namespaces)
