"""Property tests for tag patterns: evaluation is Quay's (`re.match`, inverted by
`tagPatternMatches: false`), and validation refuses every pattern that could backtrack for
long on a tag, while whatever it accepts matches any tag quickly."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.errors import InvalidRequest
from chalicelib.policies import patterns

TAG_ALPHABET = "abcxyz019._-"
tags = st.text(alphabet=TAG_ALPHABET, min_size=1, max_size=128)
atoms = st.sampled_from(["a", "b", "x", "[a-z]", "[0-9]", ".", r"\.", "-", "(?:ab)", "[ab]"])
quantifiers = st.sampled_from(["", "", "*", "+", "?", "{1,3}", "{2}"])
piece = st.builds(lambda a, q: a + q, atoms, quantifiers)
flat_patterns = st.lists(piece, min_size=1, max_size=8).map("".join)


@given(tag=tags, matches=st.booleans())
def test_no_pattern_covers_every_tag(tag: str, matches: bool) -> None:
    assert patterns.covers(None, matches, tag)


@given(pattern=flat_patterns, tag=tags)
def test_pattern_matches_false_is_the_complement(pattern: str, tag: str) -> None:
    try:
        patterns.validate(pattern)
    except InvalidRequest:
        return
    assert patterns.covers(pattern, False, tag) is not patterns.covers(pattern, True, tag)


@given(pattern=flat_patterns, tag=tags)
def test_pattern_is_anchored_at_the_start_like_quay(pattern: str, tag: str) -> None:
    try:
        patterns.validate(pattern)
    except InvalidRequest:
        return
    assert patterns.covers(pattern, True, tag) is (re.match(pattern, tag) is not None)


@given(prefix=st.text(alphabet=TAG_ALPHABET, min_size=1, max_size=20), rest=tags)
def test_escaped_prefix_covers_every_tag_that_starts_with_it(prefix: str, rest: str) -> None:
    pattern = patterns.validate(re.escape(prefix))
    assert patterns.covers(pattern, True, prefix + rest)


@given(inner=piece, outer=st.sampled_from(["*", "+", "{2,}", "{1,5}"]))
def test_a_repeat_around_a_repeat_is_refused(inner: str, outer: str) -> None:
    nested = f"(?:{inner}+){outer}"
    with pytest.raises(InvalidRequest):
        patterns.validate(nested)


words = st.text(alphabet="abxyz01", min_size=2, max_size=6)


@given(a=words, b=words, outer=st.sampled_from(["*", "+", "{2,9}"]))
def test_a_repeated_alternation_is_refused(a: str, b: str, outer: str) -> None:
    """(Alternatives sharing a first character are folded by sre into one sequence, which
    is safe, so the words start differently.)"""
    b = ("b" if a[0] != "b" else "a") + b[1:]
    with pytest.raises(InvalidRequest):
        patterns.validate(f"(?:{a}|{b}){outer}")


@given(text=st.text(max_size=300))
def test_validation_only_ever_answers_invalid_request(text: str) -> None:
    with contextlib.suppress(InvalidRequest):
        patterns.validate(text)


@settings(max_examples=60, deadline=None)
@given(pattern=flat_patterns, filler=st.sampled_from("ab0x.-"), end=st.sampled_from("!#"))
def test_every_accepted_pattern_matches_a_worst_case_tag_quickly(
    pattern: str, filler: str, end: str
) -> None:
    """The adversarial input for backtracking is a long run the pattern almost matches,
    with a final character that fails it (`!`, `#` are never in a tag, so nothing else
    ends the run)."""
    try:
        accepted = patterns.validate(pattern + "$")
    except InvalidRequest:
        return
    tag = filler * 127 + end
    started = time.perf_counter()
    patterns.covers(accepted, True, tag)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "pattern", [".*.*.*.*x$", "a*a*a*a*b$", "[a-z]*[a-z]*[a-z]*[a-z]*!$", "x{1,100}x{1,100}y$"]
)
def test_the_slowest_accepted_shapes_stay_fast(pattern: str) -> None:
    accepted = patterns.validate(pattern)
    started = time.perf_counter()
    patterns.covers(accepted, True, "a" * 128)
    patterns.covers(accepted, True, "x" * 128)
    assert time.perf_counter() - started < 0.5


def test_more_repeats_than_the_cap_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        patterns.validate("a*" * (patterns.MAX_REPEATS + 1))
