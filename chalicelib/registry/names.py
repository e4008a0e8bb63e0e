"""Repository names and tags, validated by distribution-spec v1.1 "Pulling manifests"."""

from __future__ import annotations

import re

from chalicelib.errors import NameInvalid, TagInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

# Clients cap "host[:port]/name" at 255 characters; we refuse names that could never be pulled.
MAX_NAME_LENGTH = 255


def is_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and bool(_NAME.fullmatch(name))


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise NameInvalid({"name": name})
    return name


def is_tag(reference: str) -> bool:
    return bool(_TAG.fullmatch(reference))


def validate_tag(tag: str) -> str:
    if not is_tag(tag):
        raise TagInvalid({"tag": tag}, message="invalid tag")
    return tag


def tag_sort_key(tag: str) -> str:
    """Sort key giving the spec's case-insensitive lexical order, ties broken by case.

    A space sorts below every character a tag may hold, so a tag sorts before its extensions.
    """
    return f"{tag.lower()} {tag}"
