"""Referrers of cached content: asked of the upstream when a client asks us (its referrers
API, else its referrers tag schema), and the referrer manifests it names cached like any
other, so the local referrers index answers. An upstream failure leaves what is cached."""

from __future__ import annotations

import json
import logging

from chalicelib.errors import RegistryError
from chalicelib.proxycache import pull
from chalicelib.proxycache.upstream import MANIFEST_TYPES, Upstream
from chalicelib.registry import mediatypes as mt
from chalicelib.storage import manifests as stored_manifests
from chalicelib.storage import proxycache as store
from chalicelib.storage.proxycache import CacheConfig

logger = logging.getLogger("stratus.proxycache")
MAX_NEW = 50  # referrer manifests cached per request (one upstream page is plenty)


def sync(cache: CacheConfig, name: str, subject: str) -> None:
    """Cache the upstream's referrers of `subject` that are not here yet."""
    try:
        upstream = Upstream(cache, name, store.password(cache))
        descriptors = _upstream_referrers(upstream, subject)
        wanted = {str(d["digest"]) for d in descriptors if isinstance(d.get("digest"), str)}
        if not wanted:
            return
        missing = sorted(wanted - set(stored_manifests.existing(name, wanted)))[:MAX_NEW]
        revalidate_at, expires_at = pull.lifetimes(cache)
        for digest in missing:
            parsed = pull.download(upstream, MANIFEST_TYPES, digest)
            store.store_manifest(name, parsed, None, revalidate_at, expires_at)
    except RegistryError as error:
        logger.warning(
            "proxy cache stale: referrers of %s@%s from the cache only: %s",
            name,
            subject,
            error.message,
        )


def _upstream_referrers(upstream: Upstream, subject: str) -> list[dict[str, object]]:
    """The referrers API's first page, or the tag schema's index (`<alg>-<hex>`)."""
    answer = upstream.request("GET", f"referrers/{subject}", {"Accept": mt.OCI_INDEX})
    if answer.status != 200 or not answer.headers.get("Content-Type", "").startswith(mt.OCI_INDEX):
        answer = upstream.request(
            "GET", f"manifests/{subject.replace(':', '-')}", {"Accept": mt.OCI_INDEX}
        )
    if answer.status != 200:
        return []
    try:
        document = json.loads(answer.data)
        manifests = document.get("manifests") or []
    except (ValueError, AttributeError):
        return []
    return [d for d in manifests if isinstance(d, dict)] if isinstance(manifests, list) else []
