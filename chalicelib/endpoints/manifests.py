"""Manifests: end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE), by tag or by digest."""

from __future__ import annotations

from functools import partial

from chalice import Response

from chalicelib import clock, config, proxycache
from chalicelib.endpoints import schema1 as legacy
from chalicelib.endpoints.http import Headers, RegistryRequest, empty
from chalicelib.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    PayloadTooLarge,
    TagInvalid,
)
from chalicelib.policies import prune
from chalicelib.policies import quotas as quota
from chalicelib.registry import expiry
from chalicelib.registry import manifests as rules
from chalicelib.registry.digests import looks_like_digest, parse_digest, parse_supported
from chalicelib.registry.names import is_tag, validate_tag
from chalicelib.storage import blobs, bodies, tags
from chalicelib.storage import manifests as store
from chalicelib.storage.bodies import StoredManifest


def _lookup(
    request: RegistryRequest, name: str, reference: str, *, with_body: bool
) -> StoredManifest:
    """The manifest a pull names. A reference that is neither a tag nor a digest we could
    store names nothing: 404, as the spec answers any pull of what is not there. In a
    pull-through cache organization the cache answers (chalicelib/proxycache/)."""
    cache = proxycache.config_for(name)
    if cache is not None:
        from chalicelib.proxycache import pull

        return pull.lookup(cache, request, name, reference, with_body=with_body)
    if looks_like_digest(reference):
        try:
            digest = parse_supported(reference)
        except DigestInvalid:
            raise ManifestUnknown({"reference": reference}) from None
        return store.get_by_digest(name, str(digest), with_body=with_body)
    if not is_tag(reference):
        raise ManifestUnknown({"reference": reference})
    return tags.get(name, reference, with_body=with_body)


def _headers(manifest: StoredManifest) -> Headers:
    return {
        "Content-Type": manifest.media_type,
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
    }


def _negotiated(
    request: RegistryRequest, name: str, reference: str, *, with_body: bool
) -> StoredManifest:
    """The stored manifest, or its schema 1 form for a client that can take nothing else."""
    manifest = _lookup(request, name, reference, with_body=with_body)
    if looks_like_digest(reference) or not legacy.wanted(request, manifest.media_type):
        return manifest
    if manifest.body is None:
        manifest = _lookup(request, name, reference, with_body=True)
    return legacy.convert(name, reference, manifest)


def get(request: RegistryRequest, name: str, reference: str) -> Response:
    manifest = _negotiated(request, name, reference, with_body=True)
    # Manifests are UTF-8 JSON (checked on push) and go out as text: Chalice would refuse a
    # binary Content-Type the client's Accept does not name. The bytes round-trip exactly.
    assert manifest.body is not None
    return Response(body=manifest.body.decode("utf-8"), status_code=200, headers=_headers(manifest))


def head(request: RegistryRequest, name: str, reference: str) -> Response:
    manifest = _negotiated(request, name, reference, with_body=False)
    return empty(200, {**_headers(manifest), "Content-Length": str(manifest.size)})


def _check_references(name: str, parsed: rules.ParsedManifest) -> dict[str, str | None]:
    """Child manifests must already be in this repository (spec: code-5); their
    `quay.expires-after` values come back from the same read.

    Blob links need no read here: the commit transaction touches each one on condition that
    it exists, and reports the missing ones. Only a push that writes before committing
    (blobs carried in descriptors' `data`) checks them first, so a refusal leaves nothing.
    """
    wanted_blobs = {d.digest for d in parsed.blobs} - set(parsed.embedded)
    if not parsed.embedded:
        wanted_blobs = set()
    missing = (
        sorted(wanted_blobs - blobs.existing_links(name, wanted_blobs)) if wanted_blobs else []
    )
    wanted_children = {d.digest for d in parsed.children}
    children = store.existing(name, wanted_children) if wanted_children else {}
    missing += sorted(wanted_children - set(children))
    if missing:
        raise ManifestBlobUnknown({"missing": missing})
    return children


def _expires_after(parsed: rules.ParsedManifest, children: dict[str, str | None]) -> str | None:
    config = None
    if expiry.wants_config_labels(parsed):
        descriptor = parsed.blobs[0]
        config = parsed.embedded.get(descriptor.digest) or blobs.read(descriptor.digest)
        # None when the config was never uploaded: the commit then refuses the manifest.
    return expiry.value_for(parsed, config, [children[d.digest] for d in parsed.children])


def put(request: RegistryRequest, name: str, reference: str) -> Response:
    proxycache.refuse_push(name)
    body = request.body
    limit = config.settings.max_manifest_bytes
    if len(body) > limit:
        raise PayloadTooLarge(
            {"limit": limit, "size": len(body)}, message=f"manifest exceeds {limit} bytes"
        )
    tag = None
    algorithm = "sha256"
    if looks_like_digest(reference):
        algorithm = parse_supported(reference).algorithm
    else:
        tag = validate_tag(reference)
    parsed = rules.parse(body, request.header("content-type") or "", algorithm)
    if tag is None and parsed.digest != reference:
        raise DigestInvalid({"expected": reference, "actual": parsed.digest})
    if tag is not None and parsed.legacy_tag is not None and parsed.legacy_tag != tag:
        raise TagInvalid({"tag": tag, "manifest_tag": parsed.legacy_tag})
    children = _check_references(name, parsed)
    if not bodies.inline(parsed.size):  # stored in S3: counted against the quota
        quota.check_manifest(name, parsed.size)
    for digest, data in parsed.embedded.items():
        if blobs.get_link(name, digest) is None:
            blobs.store_and_link(name, digest, len(data), partial(blobs.put_object, digest, data))
    store.put(name, parsed, tag, _expires_after(parsed, children))
    if tag is not None:
        prune.after_push(name, tag, clock.now())
    headers = {
        "Location": f"/v2/{name}/manifests/{parsed.digest}",
        "Docker-Content-Digest": parsed.digest,
    }
    if parsed.subject is not None and config.settings.referrers_api:
        # "Pushing Manifests with Subject": tells the client the registry indexed it, so it
        # need not maintain the referrers tag schema itself.
        headers["OCI-Subject"] = parsed.subject.digest
    return empty(201, headers)


def delete(request: RegistryRequest, name: str, reference: str) -> Response:
    if looks_like_digest(reference):
        store.delete_manifest(name, str(parse_digest(reference)))
    else:
        tags.delete(name, validate_tag(reference))
    return empty(202)
