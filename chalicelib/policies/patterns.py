"""Tag patterns (`tagPattern`, `tagPatternMatches`): Python regexes, anchored at the start of
the tag as Quay's `re.match` is, validated so that no pattern can make a push hang.

Python's `re` backtracks, so a pattern like `(a+)+b` takes exponential time on `aaaa…c`.
Tags are at most 128 characters, which turns the question into one of shape:
- a repeat (`*`, `+`, `{m,n}` with n > 1) around anything that itself repeats (even `?`)
  or branches is refused: that nesting is what makes backtracking exponential;
- backreferences and lookarounds are refused (not needed for tag names, and they defeat
  the shape argument);
- at most MAX_REPEATS repeats in all. Without nesting, backtracking is polynomial: k
  repeats over one 128-character tag try at most C(128 + k, k) splits, about 11 million
  for k = 4 in the worst, adversarial case (tens of milliseconds), and real patterns with
  literals between their repeats stay linear;
- at most MAX_LENGTH characters (Quay's limit).

Python 3.11's atomic groups and possessive quantifiers would bound backtracking too, but
rewriting a user's `a+` into `a++` changes which tags match (`a++a` matches nothing), so
patterns are refused rather than silently reinterpreted.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any

from chalicelib.errors import InvalidRequest

MAX_LENGTH = 256
MAX_REPEATS = 4

# sre's parse tree (private, stable within a Python minor version; the validation is tested).
_sre: Any = importlib.import_module("re._constants")
_sre_parse: Any = importlib.import_module("re._parser")

_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT}
_REFUSED = {
    _sre.GROUPREF: "backreferences",
    _sre.GROUPREF_EXISTS: "conditional groups",
    _sre.ASSERT: "lookahead or lookbehind",
    _sre.ASSERT_NOT: "lookahead or lookbehind",
}


class PatternRefused(InvalidRequest):
    message = "invalid tagPattern"


def _children(av: Any) -> list[Any]:
    """The sub-patterns under one node of sre's tree."""
    found: list[Any] = []
    items = av if isinstance(av, (list, tuple)) else [av]
    for item in items:
        if isinstance(item, _sre_parse.SubPattern):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            found += _children(item)
    return found


def _walk(tree: Any, inside_repeat: bool) -> int:
    """Count the repeats in `tree`, refusing nesting under a repeat of more than one."""
    repeats = 0
    for op, av in tree:
        if op in _REFUSED:
            raise PatternRefused(message=f"tagPattern may not use {_REFUSED[op]}")
        if op in _REPEATS:
            _low, high, body = av
            many = high > 1
            if inside_repeat:  # even `(a?){20}` is exponential
                raise PatternRefused(
                    message="tagPattern may not nest repeats (like (a+)+): it could backtrack "
                    "for minutes"
                )
            repeats += int(many) + _walk(body, inside_repeat or many)
            continue
        if op == _sre.BRANCH and inside_repeat:
            raise PatternRefused(
                message="tagPattern may not repeat an alternation (like (a|ab)+): it could "
                "backtrack for minutes; list the alternatives in a character class instead"
            )
        for child in _children(av):
            repeats += _walk(child, inside_repeat)
    return repeats


def validate(pattern: object) -> str:
    """The pattern, if it compiles and is safe to match; InvalidRequest otherwise."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternRefused(message="tagPattern must be a non-empty string")
    pattern = pattern.strip()
    if len(pattern) > MAX_LENGTH:
        raise PatternRefused(message=f"tagPattern must be at most {MAX_LENGTH} characters")
    try:
        tree = _sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise PatternRefused(message=f"tagPattern is not a valid regex: {error}") from None
    if _walk(tree, inside_repeat=False) > MAX_REPEATS:
        raise PatternRefused(message=f"tagPattern may use at most {MAX_REPEATS} repeats")
    return pattern


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def covers(pattern: str | None, pattern_matches: bool, tag: str) -> bool:
    """Whether a policy with this pattern applies to `tag`: no pattern means every tag; with
    `pattern_matches` false, the tags the pattern does not match."""
    if pattern is None:
        return True
    matched = _compiled(pattern).match(tag) is not None
    return matched if pattern_matches else not matched
