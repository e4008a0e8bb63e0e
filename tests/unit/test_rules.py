"""Names, tags and digests (distribution-spec "Pulling manifests"; image-spec "Digests")."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.errors import DigestInvalid, NameInvalid, TagInvalid
from chalicelib.registry.digests import ResumableHash, parse_digest
from chalicelib.registry.names import tag_sort_key, validate_name, validate_tag


@pytest.mark.parametrize(
    "name",
    ["a", "org/team/app", "a.b_c__d-e---f/g", "library/ubuntu", "x" * 200, "a0/1b"],
)
def test_valid_repository_names_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "a//b", "/a", "a/", "a..b", "-a", "a_", "a___b", "a b", "a/B", "x" * 256, "a:b"],
)
def test_malformed_repository_names_are_rejected(name: str) -> None:
    with pytest.raises(NameInvalid):
        validate_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A-b.c_d", "a" * 128])
def test_valid_tags_are_accepted(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a" * 129, "a/b", "a:b", "a b"])
def test_malformed_tags_are_rejected(tag: str) -> None:
    with pytest.raises(TagInvalid):
        validate_tag(tag)


def test_tag_sort_key_gives_case_insensitive_lexical_order() -> None:
    tags = ["b", "A", "a", "B", "a-1", "a.1", "a1", "_z", "0"]
    ordered = sorted(tags, key=tag_sort_key)
    assert ordered == ["0", "_z", "A", "a", "a-1", "a.1", "a1", "B", "b"]


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "a" * 64,
        "sha512:" + "0" * 128,
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
    ],
)
def test_digests_matching_the_grammar_parse(digest: str) -> None:
    assert str(parse_digest(digest)) == digest


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:totallywrong",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "nocolon",
        ":abc",
        "sha256:",
        "SHA256:" + "a" * 64,
    ],
)
def test_malformed_digests_are_rejected(digest: str) -> None:
    with pytest.raises(DigestInvalid):
        parse_digest(digest)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=4096),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=6),
    algorithm=st.sampled_from(["sha256", "sha512"]),
)
def test_resumable_hash_matches_hashlib_at_any_chunk_boundaries(
    data: bytes, cuts: list[int], algorithm: str
) -> None:
    """The state is carried as bytes between chunks, as between Lambda invocations."""
    boundaries = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    state = ResumableHash(algorithm).state()
    for start, end in itertools.pairwise(boundaries):
        hasher = ResumableHash.from_state(algorithm, state)
        hasher.update(data[start:end])
        state = hasher.state()
    final = ResumableHash.from_state(algorithm, state)
    assert final.hexdigest() == hashlib.new(algorithm, data).hexdigest()


def test_resumable_hash_matches_hashlib_across_block_boundaries_on_large_data() -> None:
    rng = random.Random(7)
    data = rng.randbytes(3 * 1024 * 1024 + 17)
    hasher = ResumableHash()
    position = 0
    for size in (1, 63, 64, 65, 1_000_003, 127, 2_000_000):
        chunk = data[position : position + size]
        hasher = ResumableHash.from_state("sha256", hasher.state())
        hasher.update(chunk)
        position += size
    hasher.update(data[position:])
    assert hasher.digest() == "sha256:" + hashlib.sha256(data).hexdigest()


def test_resumable_hash_rejects_a_state_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        ResumableHash.from_state("sha256", b"short")
