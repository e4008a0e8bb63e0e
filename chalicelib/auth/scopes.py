"""Resource scopes as clients request them (docker-registry/scope.md, "Resource Scope Grammar").

`repository:org/app:pull,push` names a type, a resource and actions. The name may hold a
`host:port`, so the actions are what follows the last colon, not the second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.errors import BadQuery

PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"
CATALOG = "catalog"
_TYPE = re.compile(r"[a-z0-9]+(?:\([a-z0-9]+\))?")
_ACTION = re.compile(r"[a-z]*|\*")
# The grammar's `[hostname '/'] component ['/' component]*`, loosely: a name we cannot host
# (another host's, say) is well-formed and simply granted nothing.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
# A token request may name at most this many scopes (one BatchGetItem reads their grants).
MAX_SCOPES = 20


@dataclass(frozen=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def claim(self) -> dict[str, object]:
        """The scope as an entry of the JWT `access` claim (docker-registry/jwt.md)."""
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def repository(name: str, *actions: str) -> Scope:
    return Scope("repository", name, frozenset(actions))


def parse(text: str) -> Scope:
    """One resource scope; a class like `repository(plugin)` counts as its type (scope.md)."""
    kind, _, rest = text.partition(":")
    name, _, action_text = rest.rpartition(":")
    actions = frozenset(a for a in action_text.split(",") if a)
    if not _TYPE.fullmatch(kind) or not name or not all(_ACTION.fullmatch(a) for a in actions):
        raise BadQuery({"scope": text}, message="malformed scope")
    return Scope(kind.split("(")[0], name, actions)


def parse_all(values: list[str]) -> list[Scope]:
    """Every scope of the request's `scope` parameters (each may be a space-separated list)."""
    scopes = [parse(text) for value in values for text in value.split(" ") if text]
    if len(scopes) > MAX_SCOPES:
        raise BadQuery({"scopes": len(scopes), "limit": MAX_SCOPES}, message="too many scopes")
    return scopes
