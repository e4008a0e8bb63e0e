"""`quay.expires-after`: how long a pushed tag lives, read exactly as Quay reads it.

Quay's parser is `int(value[:-1])` plus a unit letter; an unparsable value (Quay's own docs
show `never`) is ignored, not an error. `0<unit>` means no expiry and a negative value
expires the tag at once. Sources, by manifest kind:
- image manifests (OCI, Docker schema 2): the manifest's annotations, else the image
  config's labels (annotations win);
- any other manifest (artifacts): its annotations;
- indexes and manifest lists: a value only when every child carries the identical one; the
  index's own annotations are not used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta

from chalicelib.registry import mediatypes as mt
from chalicelib.registry.manifests import ParsedManifest

KEY = "quay.expires-after"

_UNITS = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}

# Configs read for labels: image configs only, and never a large blob.
IMAGE_CONFIGS = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)
MAX_CONFIG_BYTES = 1024 * 1024


# The longest lifetime honoured. Longer values are treated like unparsable ones (no
# expiry): a tag meant to outlive a century means "never", and the expiry instant must stay
# a date DynamoDB's TTL and Python can hold. Negative values, however large, expire the tag
# at once; they are bounded at a day past, since TTL ignores instants five years past.
MAX_LIFETIME = timedelta(days=36500)
_LONGEST_PAST = timedelta(days=1)


def parse(value: str | None) -> timedelta | None:
    """The lifetime a value asks for; None for no expiry (absent, unparsable, zero or more
    than MAX_LIFETIME)."""
    if not value or value[-1:] not in _UNITS:
        return None
    try:
        number = int(value[:-1])
    except ValueError:
        return None
    if number == 0:
        return None
    seconds = number * _UNITS[value[-1]]
    if seconds > MAX_LIFETIME.total_seconds():
        return None
    return timedelta(seconds=max(seconds, -_LONGEST_PAST.total_seconds()))


def wants_config_labels(parsed: ParsedManifest) -> bool:
    """Whether the image config must be read: an image manifest without the annotation."""
    return (
        parsed.media_type in mt.IMAGE_MANIFESTS
        and KEY not in (parsed.annotations or {})
        and bool(parsed.blobs)
        and parsed.blobs[0].media_type in IMAGE_CONFIGS
        and parsed.blobs[0].size <= MAX_CONFIG_BYTES
    )


def config_label(config: bytes) -> str | None:
    try:
        doc = json.loads(config)
        labels = (doc.get("config") or {}).get("Labels") or {}
    except (ValueError, AttributeError, RecursionError):
        return None
    value = labels.get(KEY) if isinstance(labels, dict) else None
    return value if isinstance(value, str) else None


def value_for(
    parsed: ParsedManifest,
    config: bytes | None = None,
    children: Iterable[str | None] = (),
) -> str | None:
    """The raw `quay.expires-after` value that applies to this manifest, if any."""
    if parsed.media_type in mt.INDEXES:
        values = set(children)
        if len(values) == 1:
            (only,) = values
            return only
        return None
    annotation = (parsed.annotations or {}).get(KEY)
    if annotation is not None:
        return annotation
    if parsed.legacy_config is not None:  # schema 1: the top layer's labels
        return config_label(parsed.legacy_config)
    if config is not None and parsed.media_type in mt.IMAGE_MANIFESTS:
        return config_label(config)
    return None
