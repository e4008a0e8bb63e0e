"""`GET /v2/_catalog`: repository names, paged like the tags list.

With auth on, each caller sees only what it may pull: its grants and the public
repositories are read first (two Queries on the `by_principal` index), then catalog pages
are filtered until the page is full. Superusers see everything.
"""

from __future__ import annotations

from collections.abc import Callable

from chalice import Response

from chalicelib.auth.permissions import EVERYONE, USER, namespace_of, namespace_resource
from chalicelib.endpoints.http import RegistryRequest, json_response
from chalicelib.endpoints.pagination import next_link, page_size
from chalicelib.registry.names import validate_name
from chalicelib.storage import accounts, repositories

Visible = Callable[[str], bool]


def _visibility(subject: str) -> Visible | None:
    """A filter for what `subject` may pull, or None for everything."""
    account = accounts.get_account(subject) if subject else None
    if account is not None and account.superuser:
        return None
    resources = set(accounts.permissions_of(EVERYONE))
    if account is not None:
        resources |= set(accounts.permissions_of(subject))
        if account.account_type == USER:
            resources.add(namespace_resource(subject))

    def visible(name: str) -> bool:
        namespace = namespace_of(name)
        return name in resources or (bool(namespace) and namespace_resource(namespace) in resources)

    return visible


def _filtered_page(visible: Visible, last: str | None, n: int) -> tuple[list[str], bool]:
    names: list[str] = []
    while True:
        batch, more = repositories.list_names(last, max(n, 100))
        for name in batch:
            if visible(name):
                if len(names) == n:
                    return names, True
                names.append(name)
        if not more or not batch:
            return names, False
        last = batch[-1]


def list_repositories(request: RegistryRequest) -> Response:
    n = page_size(request)
    last = request.param("last")
    if last:
        validate_name(last)
    visible = _visibility(request.access.subject) if request.access is not None else None
    names: list[str]
    if not n:
        names, more = [], False
    elif visible is None:
        names, more = repositories.list_names(last, n)
    else:
        names, more = _filtered_page(visible, last, n)
    headers = next_link("/v2/_catalog", n, names[-1]) if more else {}
    return json_response({"repositories": names}, headers=headers)
