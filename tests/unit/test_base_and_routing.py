"""end-1, routing of the catch-all, and error rendering (distribution-spec "Error Codes")."""

from __future__ import annotations

import pytest

from chalicelib.endpoints.http import RegistryRequest
from chalicelib.errors import RegistryError
from tests.client import Client


def test_version_check_answers_200_with_api_version_header(client: Client) -> None:
    answer = client.get("/v2/")
    assert answer.status == 200
    assert answer.header("Docker-Distribution-API-Version") == "registry/2.0"
    assert answer.json() == {}


def test_version_check_without_trailing_slash_is_the_same_endpoint(client: Client) -> None:
    assert client.get("/v2").status == 200


def test_unknown_path_under_v2_is_a_404_with_error_json(client: Client) -> None:
    answer = client.get("/v2/a/b/nothing-here")
    assert answer.status == 404
    assert answer.header("Content-Type") == "application/json"
    assert answer.error_codes == ["UNSUPPORTED"]


def test_path_outside_v2_gets_api_gateways_answer(client: Client) -> None:
    assert client.get("/other").status == 403


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/v2/", "/v2"])
def test_version_check_refuses_other_methods_with_405_json_and_allow(
    client: Client, method: str, path: str
) -> None:
    answer = client.request(method, path)
    assert answer.status == 405
    assert answer.header("Content-Type") == "application/json"
    assert answer.error_codes == ["UNSUPPORTED"]
    assert answer.header("Allow") == "GET, HEAD"


@pytest.mark.parametrize("path", ["/v2/", "/v2/_catalog", "/v2/org/app/tags/list"])
def test_head_is_answered_wherever_get_is_without_a_body(client: Client, path: str) -> None:
    client.must_push("org/app", "v1", b'{"mediaType": "a/b", "layers": []}', "a/b")
    get, head = client.get(path), client.head(path)
    assert get.status == head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == str(len(get.body))
    assert head.header("Content-Type") == get.header("Content-Type")


def test_options_is_405_json_naming_the_allowed_methods(client: Client) -> None:
    answer = client.request("OPTIONS", "/v2/org/app/manifests/v1")
    assert answer.status == 405
    assert answer.error_codes == ["UNSUPPORTED"]
    assert answer.header("Allow") == "GET, HEAD, PUT, DELETE"


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1e3", "0x10", "+5", "9" * 5000])
@pytest.mark.parametrize(
    "path",
    [
        "/v2/_catalog?n={}",
        "/v2/org/app/tags/list?n={}",
        "/api/v1/repository/org/app/tag/?limit={}",
        "/v2/org/app/_stratus/direct/uploads/?size={}&part_size=8",
        "/v2/org/app/_stratus/direct/uploads/?size=8&part_size={}",
    ],
)
def test_query_numbers_that_are_not_ascii_digits_are_400(
    client: Client, path: str, value: str
) -> None:
    """`str.isdigit` takes "\u00b2", which `int` refuses: such input once gave 500."""
    from urllib.parse import quote

    url = path.format(quote(value))
    answer = client.request("POST" if "_stratus" in path else "GET", url)
    assert answer.status == 400, (url, answer.body)
    assert answer.error_codes == ["UNSUPPORTED"]


def test_method_the_endpoint_lacks_is_405_unsupported(client: Client) -> None:
    answer = client.post("/v2/repo/manifests/latest")
    assert answer.status == 405
    assert answer.error_codes == ["UNSUPPORTED"]
    assert "PUT" in (answer.header("Allow") or "")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/UPPER/tags/list",
        "/v2/a//b/tags/list",
        "/v2/-a/manifests/latest",
        "/v2/a_/blobs/uploads/",
    ],
)
def test_malformed_repository_name_is_400_name_invalid(client: Client, path: str) -> None:
    method = "POST" if path.endswith("uploads/") else "GET"
    answer = client.request(method, path)
    assert answer.status == 400
    assert answer.error_codes == ["NAME_INVALID"]


def test_repository_names_may_contain_endpoint_words(client: Client) -> None:
    """The name group is greedy: `a/blobs/b` is a valid name (spec grammar)."""
    digest = client.push_blob("a/blobs/b", b"x")
    assert client.head(f"/v2/a/blobs/b/blobs/{digest}").status == 200


def test_every_error_class_renders_the_spec_error_shape() -> None:
    codes = {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }

    def subclasses(cls: type) -> list[type]:
        found = []
        for sub in cls.__subclasses__():
            found += [sub, *subclasses(sub)]
        return found

    rendered = {cls.code for cls in subclasses(RegistryError)}
    assert codes <= rendered
    for cls in subclasses(RegistryError):
        body = cls({"k": "v"}).body()
        (error,) = body["errors"]
        assert error["code"].replace("_", "").isalpha() and error["code"].isupper()
        assert isinstance(error["message"], str) and error["detail"] == {"k": "v"}


def test_repeated_header_lines_are_merged() -> None:
    """skopeo and podman send Accept on six lines; Lambda has them in multiValueHeaders."""
    event = {
        "requestContext": {"httpMethod": "GET"},
        "headers": {"Accept": "c"},
        "multiValueHeaders": {"Accept": ["a, b", "c"]},
        "pathParameters": {"proxy": "r/manifests/t"},
    }
    request = RegistryRequest.from_event(event, b"")
    assert request.header_list("accept") == ["a", "b", "c"]


def test_throttling_from_aws_becomes_429_toomanyrequests(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from chalicelib.storage import blobs

    def throttled(*args: object, **kwargs: object) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "GetObject")

    monkeypatch.setattr(blobs, "presigned_get_url", throttled)
    digest = client.push_blob("r", b"data")
    answer = client.get(f"/v2/r/blobs/{digest}")
    assert answer.status == 429
    assert answer.error_codes == ["TOOMANYREQUESTS"]


def test_each_route_table_lists_a_pattern_once() -> None:
    """A second entry for a pattern is unreachable (the first match wins): a merge slip."""
    from chalicelib.endpoints import routes as table

    for routes_of in (table.ROUTES, table.MANAGEMENT_ROUTES, table.V1_ROUTES):
        patterns = [route.pattern.pattern for route in routes_of]
        assert sorted(p for p in set(patterns) if patterns.count(p) > 1) == []
