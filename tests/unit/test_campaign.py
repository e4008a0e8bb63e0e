"""A property-based campaign over every route: hostile names, references, digests, query
strings, headers and manifest documents, against a registry that holds real content.

For every request: no 5xx; every refusal is the spec's error JSON with a known code
(distribution-spec "Error Codes"); a refused request changes nothing stored. After the
campaign: every blob reads back to bytes that hash to its digest, every manifest to bytes
that hash to its digest. `make campaign` runs it far longer (STRATUS_CAMPAIGN_EXAMPLES).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import config, errors
from chalicelib.storage.models import ALL_MODELS
from tests.client import Client, follow_blob
from tests.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, sha256

EXAMPLES = int(os.environ.get("STRATUS_CAMPAIGN_EXAMPLES", "30"))  # per route family
REPO = "seed/app"
LAYER = b"a seeded layer"
CONFIG = json.dumps({"architecture": "amd64", "os": "linux"}).encode()


def _codes() -> set[str]:
    found = set()
    pending = [errors.RegistryError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return found - {"UNKNOWN"}  # the base class's, and a 500's: never a refusal's


KNOWN_CODES = _codes()


# -- the registry under attack ----------------------------------------------------------


def seed(client: Client) -> dict[str, str]:
    """Real content for hostile requests to aim at: an image, an index, a referrer, an open
    upload session."""
    client.push_blob(REPO, LAYER)
    client.push_blob(REPO, CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(CONFIG), "size": len(CONFIG)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(LAYER), "size": len(LAYER)}],
    }
    body = json.dumps(manifest).encode()
    client.must_push(REPO, "v1", body)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(body), "size": len(body)}],
        }
    ).encode()
    client.must_push(REPO, "multi", index, OCI_INDEX)
    location = client.post(f"/v2/{REPO}/blobs/uploads/").header("Location") or ""
    direct = client.post(f"/v2/{REPO}/_stratus/direct/uploads/?size=10")
    assert direct.status == 201, direct.body
    return {
        "manifest": sha256(body),
        "index": sha256(index),
        "layer": sha256(LAYER),
        "upload": location.rsplit("/", 1)[-1],
        "direct": json.loads(direct.body)["upload_id"],
    }


def _bookkeeping(item: dict[str, Any]) -> bool:
    if item.get("kind", {}).get("S") == "login_failure":
        return True
    return "performer_kind" in item and item.get("result", {}).get("S") == "failure"


def snapshot() -> dict[str, Any]:
    """Everything stored, but login-failure counters (a refused login must count) and the
    audit log's entries of refusals (a refused request is recorded as one)."""
    state: dict[str, Any] = {}
    dynamodb = boto3.client("dynamodb", region_name=config.settings.region)
    for model in ALL_MODELS:
        table = model.Meta.table_name
        items = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
        kept = [i for i in items if not _bookkeeping(i)]
        state[table] = sorted(json.dumps(i, sort_keys=True, default=str) for i in kept)
    s3 = boto3.client("s3", region_name=config.settings.region)
    listed = s3.list_objects_v2(Bucket=config.settings.bucket).get("Contents", [])
    state["s3"] = sorted((o["Key"], o["ETag"]) for o in listed)
    return state


# -- hostile input ----------------------------------------------------------------------

HEX = "0123456789abcdef"
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
names = st.one_of(
    st.just(REPO),
    st.sampled_from(["a", "seed", "x/y/z", "a" * 300, "UPPER/case", "a..b", "a/", "-a", "é/x"]),
    st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9._-]{1,8}){0,3}", fullmatch=True),
    texts.filter(lambda t: t and "/" not in t[:1]),
)


def digests(known: dict[str, str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from([known["manifest"], known["index"], known["layer"]]),
        st.text(alphabet=HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h),
        st.text(alphabet=HEX, min_size=128, max_size=128).map(lambda h: "sha512:" + h),
        st.sampled_from(
            [
                "x-evil:" + "e" * 64,
                "sha256:" + "A" * 64,
                "sha256:",
                ":",
                "sha384:" + "a" * 96,
                "md5:abc",
                "x:" + "a" * 5000,
                "sha256:" + "a" * 63,
                "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
            ]
        ),
        texts,
    )


references = st.one_of(
    st.sampled_from(["v1", "multi", "latest", ".INVALID_MANIFEST_NAME", "-x", "a" * 129]),
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True),
    texts,
)
numbers = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["²", "٣", "1e3", "0x10", "+5", " 7", "9" * 5000, "", "NaN"]),
    texts,
)
query_keys = st.sampled_from(
    [
        "n",
        "last",
        "digest",
        "mount",
        "from",
        "size",
        "part_size",
        "parts",
        "limit",
        "onlyActiveTags",
        "artifactType",
        "scope",
        "service",
        "offline_token",
    ]
)
header_values = {
    "Accept": st.one_of(
        st.sampled_from(
            [
                "*/*",
                "application/octet-stream",
                "image/png",
                OCI_MANIFEST,
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                "",
            ]
        ),
        texts,
    ),
    "Content-Type": st.one_of(
        st.sampled_from([OCI_MANIFEST, OCI_INDEX, "application/json", "image/png", ""]), texts
    ),
    "Content-Range": st.one_of(
        st.from_regex(r"(bytes )?[0-9]{1,20}-[0-9]{1,20}(/[0-9*]{1,5})?", fullmatch=True), texts
    ),
    "Range": st.one_of(st.from_regex(r"bytes=[0-9]{0,12}-[0-9]{0,12}", fullmatch=True), texts),
    "Content-Length": numbers,
    "Authorization": st.one_of(
        st.sampled_from(["Bearer ", "Bearer a.b.c", "Basic !!!", "Basic " + "QQ==", "Token x"]),
        texts,
    ),
}


def json_values(depth: int = 3) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        texts,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)
        ),
        max_leaves=12,
    )


def descriptors(known: dict[str, str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {
                "mediaType": st.sampled_from([OCI_MANIFEST, OCI_LAYER_GZIP, "a/b", ""]),
                "digest": digests(known),
                "size": st.one_of(st.integers(-5, 2**64), st.sampled_from([10**40, 2**63])),
            },
            optional={
                "data": st.one_of(
                    st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode()), texts
                ),
                "urls": st.lists(texts, max_size=2),
                "annotations": st.dictionaries(texts, json_values(), max_size=3),
            },
        ),
        json_values(),
    )


def manifests(known: dict[str, str]) -> st.SearchStrategy[bytes]:
    documents = st.fixed_dictionaries(
        {},
        optional={
            "schemaVersion": st.one_of(st.just(2), json_values()),
            "mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX, "image/png", "a/b"]),
            "config": descriptors(known),
            "layers": st.lists(descriptors(known), max_size=3),
            "manifests": st.lists(descriptors(known), max_size=3),
            "subject": descriptors(known),
            "annotations": st.dictionaries(
                st.sampled_from(["quay.expires-after", "x"]),
                st.one_of(st.sampled_from(["3000000d", "9000y", "-999999999d", "1h"]), texts),
                max_size=2,
            ),
        },
    )
    deep = st.integers(1, 3000).map(lambda n: ("[" * n + "]" * n).encode())
    return st.one_of(
        documents.map(lambda d: json.dumps(d).encode()),
        deep,
        st.binary(max_size=64),
        json_values().map(lambda d: json.dumps(d).encode()),
    )


UPLOAD_IDS = st.sampled_from(["%00", "..", "x" * 300, "0d9c6ad0-8e8c-4cf7-8e58-6a5c7f0f7e1f"])
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# Every route family of the dispatch tables (chalicelib/endpoints/routes.py): how to build
# its path, its methods, and the query parameters its handlers read.
FAMILIES: dict[str, tuple[Any, list[str], list[str]]] = {
    "version": (lambda k: st.sampled_from(["/v2/", "/v2"]), ["GET", "HEAD"], []),
    "catalog": (lambda k: st.just("/v2/_catalog"), ["GET"], ["n", "last"]),
    "token": (
        lambda k: st.just("/v2/auth"),
        ["GET", "POST"],
        ["scope", "service", "offline_token"],
    ),
    "tags": (lambda k: st.builds(lambda n: f"/v2/{n}/tags/list", names), ["GET"], ["n", "last"]),
    "manifests": (
        lambda k: st.builds(
            lambda n, r: f"/v2/{n}/manifests/{r}", names, st.one_of(references, digests(k))
        ),
        ["GET", "HEAD", "PUT", "DELETE"],
        [],
    ),
    "blobs": (
        lambda k: st.builds(lambda n, x: f"/v2/{n}/blobs/{x}", names, digests(k)),
        ["GET", "HEAD", "DELETE"],
        [],
    ),
    "upload start": (
        lambda k: st.builds(lambda n: f"/v2/{n}/blobs/uploads/", names),
        ["POST"],
        ["digest", "mount", "from"],
    ),
    "upload session": (
        lambda k: st.builds(
            lambda n, u: f"/v2/{n}/blobs/uploads/{u}",
            names,
            st.one_of(st.just(k["upload"]), UPLOAD_IDS, texts),
        ),
        ["GET", "PATCH", "PUT", "DELETE"],
        ["digest"],
    ),
    "referrers": (
        lambda k: st.builds(lambda n, x: f"/v2/{n}/referrers/{x}", names, digests(k)),
        ["GET"],
        ["artifactType"],
    ),
    "discover": (
        lambda k: st.builds(lambda n: f"/v2/{n}/_oci/ext/discover", names),
        ["GET"],
        [],
    ),
    "direct uploads": (
        lambda k: st.builds(lambda n: f"/v2/{n}/_stratus/direct/uploads/", names),
        ["POST"],
        ["size", "part_size"],
    ),
    "direct upload": (
        lambda k: st.builds(
            lambda n, u: f"/v2/{n}/_stratus/direct/uploads/{u}",
            names,
            st.one_of(st.just(k["direct"]), UPLOAD_IDS, texts),
        ),
        ["GET", "PUT", "DELETE"],
        ["parts", "digest"],
    ),
    "management tags": (
        lambda k: st.builds(lambda n: f"/api/v1/repository/{n}/tag/", names),
        ["GET"],
        ["limit", "last", "onlyActiveTags"],
    ),
    "management accounts": (
        lambda k: st.one_of(
            st.sampled_from(["/api/v1/users", "/api/v1/organizations"]),
            st.builds(lambda u: f"/api/v1/users/{u}", texts),
            st.builds(lambda o: f"/api/v1/organization/{o}/robots/ci/regenerate", texts),
            st.builds(lambda o, p: f"/api/v1/organization/{o}/permissions/{p}", texts, texts),
        ),
        ["GET", "POST", "PUT", "DELETE"],
        [],
    ),
    "management repository": (
        lambda k: st.one_of(
            st.builds(lambda n: f"/api/v1/repository/{n}/permissions/", names),
            st.builds(lambda n: f"/api/v1/repository/{n}/changevisibility", names),
            st.builds(lambda n, u: f"/api/v1/repository/{n}/permissions/user/{u}", names, texts),
            st.builds(lambda n: f"/api/v1/repository/{n}", names),
            st.builds(lambda n, t: f"/api/v1/repository/{n}/tag/{t}", names, references),
            st.builds(lambda n, r: f"/api/v1/repository/{n}/manifest/{r}", names, references),
            st.just("/api/v1/user/"),
        ),
        ["GET", "POST", "PUT", "DELETE"],
        [],
    ),
    "v1": (
        lambda k: st.one_of(
            st.just("/v1/_ping"),
            st.builds(lambda n: f"/v1/repositories/{n}/tags", names),
            st.builds(lambda n, t: f"/v1/repositories/{n}/tags/{t}", names, references),
            st.builds(
                lambda i, e: f"/v1/images/{i}/{e}",
                texts,
                st.sampled_from(["json", "ancestry", "layer"]),
            ),
        ),
        ["GET", "PUT"],
        [],
    ),
    "unrouted": (lambda k: st.builds(lambda n, x: f"/v2/{n}/{x}", names, texts), METHODS, []),
}
ALL_KEYS = sorted({key for _, _, keys in FAMILIES.values() for key in keys})


@st.composite
def hostile_requests(draw: st.DrawFn, family: str, known: dict[str, str]) -> dict[str, Any]:
    """Mostly the family's own methods and parameters (so handlers are reached), sometimes
    any."""
    build, methods, keys = FAMILIES[family]
    path = draw(build(known))
    quoted = "/".join(quote(part, safe="%:+@") for part in path.split("/"))
    key = st.sampled_from(keys) if keys and draw(st.integers(0, 4)) else st.sampled_from(ALL_KEYS)
    query = draw(st.lists(st.tuples(key, st.one_of(numbers, digests(known))), max_size=3))
    if query:
        quoted += "?" + urlencode(query)
    headers: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(sorted(header_values)), max_size=3, unique=True)):
        headers[name] = draw(header_values[name])
    method = draw(st.sampled_from(methods if draw(st.integers(0, 5)) else METHODS))
    body = b""
    if method in ("PUT", "POST", "PATCH"):
        body = draw(st.one_of(manifests(known), st.binary(max_size=256)))
    return {"method": method, "path": quoted, "headers": headers, "body": body}


# -- the properties ---------------------------------------------------------------------


def check_refusal(answer: Any, request: dict[str, Any]) -> None:
    if request["method"] == "HEAD":
        return
    assert answer.header("Content-Type") == "application/json", (request, answer.body)
    document = json.loads(answer.body)
    codes = [error["code"] for error in document["errors"]]
    assert codes and set(codes) <= KNOWN_CODES, (request, answer.body)


@pytest.fixture
def registry(client: Client) -> Iterator[tuple[Client, dict[str, str]]]:
    yield client, seed(client)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hostile_requests_get_spec_errors_and_change_nothing(
    registry: tuple[Client, dict[str, str]], family: str
) -> None:
    client, known = registry
    campaign(client, known, family)
    check_integrity(client)


AUTH_FAMILIES = ["catalog", "management accounts", "manifests", "token", "upload start"]


@pytest.mark.usefixtures("auth")
@pytest.mark.parametrize("family", AUTH_FAMILIES)
def test_hostile_requests_with_auth_on_get_spec_errors_and_change_nothing(
    client: Client, family: str
) -> None:
    """The same properties where every request passes the token check first: requests
    carry the superuser's token unless the drawn Authorization header replaces it."""
    from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER

    admin = client.login(ADMIN_USER, ADMIN_PASSWORD, f"repository:{REPO}:*", "registry:catalog:*")
    known = seed(admin)
    campaign(admin, known, family)
    check_integrity(admin)


def campaign(client: Client, known: dict[str, str], family: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        derandomize=os.environ.get("STRATUS_CAMPAIGN_RANDOM") != "1",
        database=None,
    )
    @given(request=hostile_requests(family, known))
    def attack(request: dict[str, Any]) -> None:
        before = snapshot()
        answer = client.request(
            request["method"], request["path"], headers=request["headers"], body=request["body"]
        )
        assert answer.status < 500, (request, answer.status, answer.body)
        if answer.status >= 400:
            check_refusal(answer, request)
            assert snapshot() == before, request

    attack()


def check_integrity(client: Client) -> None:
    """Whatever is stored reads back as what its digest names."""
    from chalicelib.storage.models import BlobLinkModel, ManifestModel

    for manifest in ManifestModel.scan(attributes_to_get=["repository", "digest"]):
        answer = client.get(f"/v2/{manifest.repository}/manifests/{manifest.digest}")
        assert answer.status == 200, answer.body
        algorithm, encoded = manifest.digest.split(":", 1)
        assert hashlib.new(algorithm, answer.body).hexdigest() == encoded
    for link in BlobLinkModel.scan(attributes_to_get=["repository", "digest"]):
        data = follow_blob(client, link.repository, link.digest)
        algorithm, encoded = link.digest.split(":", 1)
        assert hashlib.new(algorithm, data).hexdigest() == encoded
