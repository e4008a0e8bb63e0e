"""Immutable tags: a tag a policy of its namespace or repository covers cannot be moved,
deleted or expired, and its manifest cannot be deleted while the tag exists. Re-pushing the
digest a tag already holds is no change, so it succeeds.

The checks sit where the storage layer already decides on a condition, so races resolve
on the tag item: a push moves a tag only on condition that it still points where the push
read it (storage/tags.py), so a tag created meanwhile makes the push re-read and be refused;
a manifest delete marks the manifest first, and any push tagging it afterwards clears the
mark and stops the delete (storage/manifests.py). Policies are read at most once per
CACHE_SECONDS per container (storage/policies.py), and not at all for a push that neither
moves a tag nor asks it to expire.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from chalicelib import clock
from chalicelib.auth.permissions import namespace_of, namespace_resource
from chalicelib.errors import Denied
from chalicelib.policies import patterns
from chalicelib.storage import policies as store

logger = logging.getLogger(__name__)


def resources(repository: str) -> list[str]:
    """Where the policies for a repository live: its namespace's, then its own."""
    namespace = namespace_of(repository)
    return ([namespace_resource(namespace)] if namespace else []) + [repository]


def applicable(repository: str) -> list[store.Policy]:
    return [p for r in resources(repository) for p in store.of_kind(r, store.IMMUTABILITY)]


def covering(repository: str, tag: str) -> store.Policy | None:
    """The first policy that makes the tag immutable, if any."""
    for policy in applicable(repository):
        if patterns.covers(policy.tag_pattern, policy.tag_pattern_matches, tag):
            return policy
    return None


def _refusal(tag: str, policy: store.Policy) -> Denied:
    return Denied(
        {"tag": tag, "policy": policy.uuid, "resource": policy.resource},
        message=f"tag {tag} is immutable (policy {policy.uuid})",
    )


def refuse_change(repository: str, tag: str) -> None:
    """DENIED if the tag may not move or go."""
    policy = covering(repository, tag)
    if policy is not None:
        raise _refusal(tag, policy)


def lifetime_for(repository: str, tag: str, lifetime: timedelta | None) -> timedelta | None:
    """A tag's `quay.expires-after` lifetime, or None when the tag is immutable (as Quay
    ignores it unless configured otherwise)."""
    if lifetime is None or covering(repository, tag) is None:
        return lifetime
    return None


def refuse_tags(repository: str, sort_keys: list[str]) -> None:
    """DENIED if any of these tag items (sort keys `"<lower> <tag>"`) is immutable."""
    if not applicable(repository):
        return
    for sort_key in sort_keys:
        refuse_change(repository, sort_key.split(" ", 1)[1])


def refuse_manifest_delete(repository: str, digest: str) -> None:
    """Before a manifest delete starts: DENIED if any tag on it is immutable, so a refused
    delete takes none of its tags (the per-batch check catches tags added meanwhile)."""
    if not applicable(repository):
        return
    from chalicelib.storage import tags

    keys, _more = tags.keys_of(repository, digest, 10_000)
    refuse_tags(repository, keys)


def release_expiry(policy: store.Policy) -> int:
    """Clear `quay.expires-after` from the live tags a new or changed policy covers, before
    DynamoDB's TTL can take them (Quay marks existing tags immutable the same way).

    Reads the tags that carry an expiry (a filtered Query per repository); already-expired
    tags stay expired. Returns how many were released.
    """
    if policy.resource.endswith("/"):
        repositories = store.repositories_in(policy.resource[:-1])
    else:
        repositories = [policy.resource]
    now = clock.now()
    released = 0
    for repository in repositories:
        for row in store.tag_rows(repository, with_expiry_only=True):
            if row.expires_at is None or row.expires_at <= now:
                continue
            if not patterns.covers(policy.tag_pattern, policy.tag_pattern_matches, row.name):
                continue
            released += int(store.clear_expiry(repository, row))
    if released:
        logger.info("policy %s released the expiry of %d tags", policy.uuid, released)
    return released
