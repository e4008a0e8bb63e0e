"""Manifests through the cache: a miss is resolved upstream and stored byte-identical; a
cached tag is trusted for `expiration_s`, then re-validated with one upstream HEAD; an
upstream that fails meanwhile leaves the cached copy served (stale-if-error, logged).
Pulls by digest of cached content never ask the upstream: a digest cannot go stale.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from chalicelib import clock, config
from chalicelib.endpoints.http import RegistryRequest
from chalicelib.errors import DigestInvalid, ManifestUnknown, PayloadTooLarge
from chalicelib.proxycache.upstream import MANIFEST_TYPES, Upstream, UpstreamError
from chalicelib.registry import manifests as rules
from chalicelib.registry.digests import looks_like_digest, parse_supported
from chalicelib.registry.names import is_tag
from chalicelib.storage import bodies
from chalicelib.storage import manifests as stored_manifests
from chalicelib.storage import proxycache as store
from chalicelib.storage.models import TagModel
from chalicelib.storage.proxycache import CacheConfig

logger = logging.getLogger("stratus.proxycache")
CHILD_FETCHES = 8


def lookup(
    cache: CacheConfig, request: RegistryRequest, name: str, reference: str, *, with_body: bool
) -> bodies.StoredManifest:
    """What a pull of `name:reference` in a cache organization answers."""
    if looks_like_digest(reference):
        try:
            digest = str(parse_supported(reference))
        except DigestInvalid:
            raise ManifestUnknown({"reference": reference}) from None
        try:
            return stored_manifests.get_by_digest(name, digest, with_body=with_body)
        except ManifestUnknown:
            return _fetch(cache, _accept(request), name, digest, None, with_body=with_body)
    if not is_tag(reference):
        raise ManifestUnknown({"reference": reference})
    item = store.cached_tag(name, reference)
    now = clock.now()
    if item is None or (item.expires_at is not None and item.expires_at <= now):
        return _fetch(cache, _accept(request), name, reference, reference, with_body=with_body)
    if item.revalidate_at is not None and item.revalidate_at <= now:
        return _revalidate(cache, request, name, reference, item, with_body=with_body)
    return _from_item(item, with_body=with_body)


def _accept(request: RegistryRequest) -> str:
    """The client's Accept, passed through (content negotiation happens upstream); one that
    names no manifest type (`*/*` from curl, none at all) asks for the current ones, lest an
    upstream answer a converted legacy form the cache would then keep."""
    accept = ", ".join(request.header_list("accept"))
    return accept if "application/vnd." in accept else MANIFEST_TYPES


def _from_item(item: TagModel, *, with_body: bool) -> bodies.StoredManifest:
    size = int(item.size)
    return bodies.stored(item.digest, item.media_type, size, item.body, with_body=with_body)


def lifetimes(cache: CacheConfig) -> tuple[datetime, datetime]:
    now = clock.now()
    revalidate_at = now + timedelta(seconds=cache.expiration_s)
    evict = timedelta(seconds=config.settings.proxycache_evict_seconds)
    return revalidate_at, revalidate_at + evict


def _upstream(cache: CacheConfig, name: str) -> Upstream:
    return Upstream(cache, name, store.password(cache))


def _fetch(
    cache: CacheConfig,
    accept: str,
    name: str,
    reference: str,
    tag: str | None,
    *,
    with_body: bool,
) -> bodies.StoredManifest:
    """GET the manifest upstream, check it, store it (children of an index first)."""
    upstream = _upstream(cache, name)
    parsed = download(upstream, accept, reference)
    missing = {d.digest for d in parsed.children}
    if missing:
        missing -= set(stored_manifests.existing(name, missing))
    if missing:
        with ThreadPoolExecutor(min(CHILD_FETCHES, len(missing))) as pool:
            children = list(pool.map(lambda d: download(upstream, accept, d), sorted(missing)))
        revalidate_at, expires_at = lifetimes(cache)
        for child in children:
            store.store_manifest(name, child, None, revalidate_at, expires_at)
    revalidate_at, expires_at = lifetimes(cache)
    store.store_manifest(name, parsed, tag, revalidate_at, expires_at)
    logger.info(
        "proxy cache miss: %s:%s stored from %s as %s",
        name,
        reference,
        cache.upstream_registry,
        parsed.digest,
    )
    body = parsed.body if with_body else None
    return bodies.StoredManifest(parsed.digest, parsed.media_type, parsed.size, body)


def download(upstream: Upstream, accept: str, reference: str) -> rules.ParsedManifest:
    answer = upstream.request(
        "GET", f"manifests/{reference}", {"Accept": accept}, preload_content=False
    )
    try:
        if answer.status == 404:
            raise ManifestUnknown({"reference": reference, "upstream": upstream.location.host})
        if answer.status != 200:
            raise UpstreamError(
                {"upstream": upstream.location.host, "status": answer.status},
                message=f"upstream {upstream.location.host} answered {answer.status} for "
                f"{upstream.repository}:{reference}",
            )
        limit = config.settings.max_manifest_bytes
        body = answer.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge({"limit": limit}, message=f"upstream manifest exceeds {limit}")
    finally:
        answer.release_conn()
    algorithm = parse_supported(reference).algorithm if looks_like_digest(reference) else "sha256"
    parsed = rules.parse(body, answer.headers.get("Content-Type", ""), algorithm)
    announced = answer.headers.get("Docker-Content-Digest")
    expected = reference if looks_like_digest(reference) else announced
    if expected and expected.startswith(f"{algorithm}:") and expected != parsed.digest:
        raise UpstreamError(
            {"expected": expected, "actual": parsed.digest},
            message=f"upstream {upstream.location.host} sent a manifest whose digest does "
            "not match: not cached",
        )
    return parsed


def _revalidate(
    cache: CacheConfig,
    request: RegistryRequest,
    name: str,
    tag: str,
    item: TagModel,
    *,
    with_body: bool,
) -> bodies.StoredManifest:
    """One upstream HEAD: the same digest extends the cached tag, another one is fetched;
    an upstream failure serves the cached copy (stale-if-error)."""
    accept = _accept(request)
    try:
        upstream = _upstream(cache, name)
        # The cached representation first, so an upstream that still has it names its digest.
        head = {"Accept": f"{item.media_type}, {accept}"}
        answer = upstream.request("HEAD", f"manifests/{tag}", head)
        current = answer.headers.get("Docker-Content-Digest")
        if answer.status == 200 and current == item.digest:
            revalidate_at, expires_at = lifetimes(cache)
            store.extend_tag(name, tag, item.digest, revalidate_at, expires_at)
            return _from_item(item, with_body=with_body)
        if answer.status == 404:
            logger.warning(
                "proxy cache stale: %s:%s is gone upstream; serving the cached %s",
                name,
                tag,
                item.digest,
            )
            return _from_item(item, with_body=with_body)
        return _fetch(cache, accept, name, tag, tag, with_body=with_body)
    except (UpstreamError, ManifestUnknown) as error:
        logger.warning(
            "proxy cache stale: serving cached %s:%s (%s) because the upstream failed: %s",
            name,
            tag,
            item.digest,
            error.message,
        )
        return _from_item(item, with_body=with_body)
