"""Who the current request acts for: set by dispatch, read where writes and audit need it.

A context variable rather than a parameter threaded through every storage call: the local
server runs requests on many threads, and each thread (and each Lambda invocation) sees
only its own request's actor.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

USER, ROBOT, ANONYMOUS = "user", "robot", "anonymous"


@dataclass(frozen=True)
class Actor:
    name: str  # "" for anonymous
    kind: str  # "user", "robot" or "anonymous"
    ip: str | None = None

    def stamp(self) -> str:
        """ "user:alice", "robot:acme+ci", "anonymous:": how written items carry it."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def from_stamp(cls, stamp: str | None, ip: str | None = None) -> Actor:
        kind, _, name = (stamp or f"{ANONYMOUS}:").partition(":")
        return cls(name, kind if kind in (USER, ROBOT) else ANONYMOUS, ip)


NOBODY = Actor("", ANONYMOUS)
_current: contextvars.ContextVar[Actor] = contextvars.ContextVar("stratus_actor", default=NOBODY)


def named(name: str, ip: str | None) -> Actor:
    """The actor for an account name (robots are `namespace+name`)."""
    if not name:
        return Actor("", ANONYMOUS, ip)
    return Actor(name, ROBOT if "+" in name else USER, ip)


def begin(ip: str | None) -> None:
    """A new request: anonymous until its credentials say otherwise."""
    _current.set(Actor("", ANONYMOUS, ip))


def identify(name: str, kind: str | None = None) -> None:
    """The request's caller is now known (a token's subject, a management API login)."""
    ip = _current.get().ip
    found = named(name, ip)
    _current.set(Actor(name, kind, ip) if kind and name else found)


def current() -> Actor:
    return _current.get()
