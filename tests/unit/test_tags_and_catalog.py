"""Tags list (end-8a, end-8b) and `_catalog`: order, `n`, `last` and the `Link` header."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.client import Client
from tests.images import OCI_CONFIG, OCI_MANIFEST, sha256


def push_tags(client: Client, repo: str, tags: list[str]) -> None:
    config = b"{}"
    client.push_blob(repo, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": 2},
            "layers": [],
        }
    ).encode()
    for tag in tags:
        assert client.push_manifest(repo, tag, body, OCI_MANIFEST).status == 201


def next_page(answer) -> str | None:
    link = answer.header("Link")
    if link is None:
        return None
    assert link.endswith('>; rel="next"')
    return link[1 : link.index(">")]


def test_tags_list_is_in_case_insensitive_lexical_order(client: Client) -> None:
    push_tags(client, "org/app", ["b", "A", "latest", "a", "B", "1.0", "v1-rc"])
    answer = client.get("/v2/org/app/tags/list")
    assert answer.status == 200
    assert answer.json() == {
        "name": "org/app",
        "tags": ["1.0", "A", "a", "B", "b", "latest", "v1-rc"],
    }
    assert answer.header("Link") is None


def test_tags_list_pages_with_n_last_and_link_header(client: Client) -> None:
    tags = [f"t{i:02d}" for i in range(7)]
    push_tags(client, "org/app", tags)
    seen: list[str] = []
    url: str | None = "/v2/org/app/tags/list?n=3"
    pages = 0
    while url:
        answer = client.get(url)
        page = answer.json()["tags"]
        url = next_page(answer)
        if url:
            assert len(page) == 3  # a short page only when no more tags follow
            assert parse_qs(urlsplit(url).query) == {"n": ["3"], "last": [page[-1]]}
        seen += page
        pages += 1
    assert seen == tags
    assert pages == 3


def test_tags_list_with_last_starts_after_it(client: Client) -> None:
    push_tags(client, "org/app", ["a", "b", "c", "d"])
    answer = client.get("/v2/org/app/tags/list?last=b")
    assert answer.json()["tags"] == ["c", "d"]
    answer = client.get("/v2/org/app/tags/list?n=1&last=b")
    assert answer.json()["tags"] == ["c"]
    assert next_page(answer) == "/v2/org/app/tags/list?n=1&last=c"


def test_tags_list_with_n_zero_is_empty_without_link(client: Client) -> None:
    push_tags(client, "org/app", ["a"])
    answer = client.get("/v2/org/app/tags/list?n=0")
    assert answer.json()["tags"] == []
    assert answer.header("Link") is None


def test_tags_list_exact_page_has_no_link(client: Client) -> None:
    push_tags(client, "org/app", ["a", "b"])
    answer = client.get("/v2/org/app/tags/list?n=2")
    assert answer.json()["tags"] == ["a", "b"]
    assert answer.header("Link") is None


@pytest.mark.parametrize("query", ["n=-1", "n=abc", "n=1.5", "last=-bad"])
def test_tags_list_with_malformed_paging_is_400(client: Client, query: str) -> None:
    push_tags(client, "org/app", ["a"])
    assert client.get(f"/v2/org/app/tags/list?{query}").status == 400


def test_tags_list_of_unknown_repository_is_404_name_unknown(client: Client) -> None:
    answer = client.get("/v2/no/such/repo/tags/list")
    assert answer.status == 404
    assert answer.error_codes == ["NAME_UNKNOWN"]


def test_tags_list_of_repository_whose_tags_were_deleted_is_empty(client: Client) -> None:
    push_tags(client, "org/app", ["only"])
    client.delete("/v2/org/app/manifests/only")
    answer = client.get("/v2/org/app/tags/list")
    assert (answer.status, answer.json()["tags"]) == (200, [])


def test_catalog_lists_repositories_in_order_with_paging(client: Client) -> None:
    for repo in ("zeta/app", "alpha", "alpha/one", "mid"):
        push_tags(client, repo, ["v1"])
    assert client.get("/v2/_catalog").json() == {
        "repositories": ["alpha", "alpha/one", "mid", "zeta/app"]
    }
    first = client.get("/v2/_catalog?n=2")
    assert first.json()["repositories"] == ["alpha", "alpha/one"]
    url = next_page(first)
    assert url == "/v2/_catalog?n=2&last=alpha%2Fone"
    assert client.get(url).json()["repositories"] == ["mid", "zeta/app"]
