"""Pull-through cache: configuration API, manifests through the cache, TTL, stale-if-error,
push refusal and blob redirects, against a small upstream registry served on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from infra import policies
from tests.client import Client

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Upstream:
    """A tiny registry: manifests and blobs in dicts, optional Basic auth, can go down."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[str, bytes]] = {}  # reference -> (type, body)
        self.blobs: dict[str, bytes] = {}
        self.credentials: tuple[str, str] | None = None
        self.down = False
        self.redirect = False  # blobs: 307 to /storage/ on another host name, unsigned
        self.requests: list[tuple[str, str]] = []
        self.accepts: list[str] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(head=True)

            def do_GET(self) -> None:
                self.answer(head=False)

            def answer(self, head: bool) -> None:
                upstream.requests.append((self.command, self.path))
                upstream.accepts.append(self.headers.get("Accept", ""))
                if upstream.down:
                    self.send(503, b"down", "text/plain", head)
                    return
                if self.path.startswith("/storage/"):  # "signed": needs no credentials
                    digest = self.path.rsplit("/", 1)[1]
                    data = upstream.blobs[digest]
                    self.send(200, data, "application/octet-stream", head)
                    return
                if upstream.credentials is not None:
                    wanted = (
                        "Basic "
                        + base64.b64encode(":".join(upstream.credentials).encode()).decode()
                    )
                    if self.headers.get("Authorization") != wanted:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="up"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if self.path == "/v2/":
                    self.send(200, b"{}", "application/json", head)
                    return
                if "/manifests/" in self.path:
                    reference = self.path.rsplit("/", 1)[1]
                    if reference not in upstream.manifests:
                        self.send(404, b"{}", "application/json", head)
                        return
                    media_type, body = upstream.manifests[reference]
                    self.send(200, body, media_type, head, {"Docker-Content-Digest": sha(body)})
                    return
                digest = self.path.rsplit("/", 1)[1]
                if digest not in upstream.blobs:
                    self.send(404, b"{}", "application/json", head)
                    return
                if upstream.redirect:
                    port = upstream.server.server_address[1]
                    location = f"http://localhost:{port}/storage/{digest}"
                    self.send(307, b"", "text/plain", head, {"Location": location})
                    return
                self.send(200, upstream.blobs[digest], "application/octet-stream", head)

            def send(
                self,
                status: int,
                body: bytes,
                media_type: str,
                head: bool,
                extra: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def image(self, tag: str, layer: bytes) -> bytes:
        config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
        self.blobs[sha(config)] = config
        self.blobs[sha(layer)] = layer
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(layer),
                        "size": len(layer),
                    }
                ],
            },
            indent=3,  # not our formatting: the bytes must come back as they are
        ).encode()
        self.manifests[tag] = (OCI_MANIFEST, manifest)
        self.manifests[sha(manifest)] = (OCI_MANIFEST, manifest)
        return manifest


@pytest.fixture
def upstream(settings) -> Iterator[Upstream]:
    settings(proxycache_private_upstreams=True, proxycache_blob_wait_seconds=5.0)
    served = Upstream()
    yield served
    served.server.shutdown()


def configure(client: Client, org: str, upstream: Upstream, **extra: object) -> None:
    made = client.post("/api/v1/organizations", body=json.dumps({"name": org}).encode())
    assert made.status == 201, made.body
    document = {"upstream_registry": upstream.host, "insecure": True, **extra}
    answer = client.post(
        f"/api/v1/organization/{org}/proxycache", body=json.dumps(document).encode()
    )
    assert answer.status == 201, answer.body


RIGHT = {"upstream_registry_username": "bob", "upstream_registry_password": "right"}
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}


def test_proxycache_config_has_quays_shape_and_never_returns_the_password(
    client: Client, upstream: Upstream
) -> None:
    configure(
        client,
        "hub",
        upstream,
        expiration_s=600,
        upstream_registry_username="bob",
        upstream_registry_password="s3cret-pass",
    )
    shown = client.get("/api/v1/organization/hub/proxycache")
    expected = {"upstream_registry": upstream.host, "expiration_s": 600, "insecure": True}
    assert shown.json() == expected
    assert b"s3cret" not in shown.body
    again = client.post(
        "/api/v1/organization/hub/proxycache",
        body=json.dumps({"upstream_registry": upstream.host}).encode(),
    )
    assert again.status == 409


def test_proxycache_password_lives_in_ssm_securestring_not_dynamodb(
    client: Client, upstream: Upstream
) -> None:
    configure(
        client, "hub", upstream, upstream_registry_username="bob", upstream_registry_password="pw-1"
    )
    parameter = boto3.client("ssm").get_parameter(
        Name="/stratus/local/proxycache/hub", WithDecryption=True
    )["Parameter"]
    assert parameter["Type"] == "SecureString" and parameter["Value"] == "pw-1"
    from chalicelib import config

    items = boto3.client("dynamodb").scan(TableName=config.settings.accounts_table)["Items"]
    assert "pw-1" not in json.dumps(items)
    assert client.delete("/api/v1/organization/hub/proxycache").status == 201
    with pytest.raises(boto3.client("ssm").exceptions.ParameterNotFound):
        boto3.client("ssm").get_parameter(Name="/stratus/local/proxycache/hub")
    assert client.get("/api/v1/organization/hub/proxycache").json()["upstream_registry"] == ""


def test_proxycache_config_refuses_bad_input(client: Client, upstream: Upstream) -> None:
    client.post("/api/v1/organizations", body=b'{"name": "hub"}')
    for document in (
        {},
        {"upstream_registry": "https://quay.io"},
        {"upstream_registry": "quay.io", "expiration_s": "soon"},
        {"upstream_registry": "quay.io", "expiration_s": 10**30},
        {"upstream_registry": "quay.io", "expiration_s": True},
        {"upstream_registry": "quay.io", "insecure": "yes"},
        {"upstream_registry": "quay.io/UPPER"},
        {"upstream_registry": "quay.io", "upstream_registry_username": "only-user"},
        {"upstream_registry": "quay.io", "surprise": 1},
    ):
        body = json.dumps(document).encode()
        answer = client.post("/api/v1/organization/hub/proxycache", body=body)
        assert answer.status == 400, document
    assert client.get("/api/v1/organization/hub/proxycache").json()["upstream_registry"] == ""


def test_proxycache_config_needs_the_org_admin(client: Client, auth, upstream: Upstream) -> None:
    root = client.as_basic("root", "root-password-1")
    root.post("/api/v1/users", body=b'{"username": "eve", "password": "eve-password"}')
    root.post("/api/v1/organizations", body=b'{"name": "hub", "owners": ["root"]}')
    eve = client.as_basic("eve", "eve-password")
    answer = eve.post(
        "/api/v1/organization/hub/proxycache",
        body=json.dumps({"upstream_registry": upstream.host}).encode(),
    )
    assert answer.status == 403
    assert eve.get("/api/v1/organization/hub/proxycache").status == 403


def test_validateproxycache_tries_the_credentials(client: Client, upstream: Upstream) -> None:
    client.post("/api/v1/organizations", body=b'{"name": "hub"}')
    upstream.credentials = ("bob", "right")

    def validate(**extra: object):
        document = {"upstream_registry": upstream.host, "insecure": True, **extra}
        return client.post(
            "/api/v1/organization/hub/validateproxycache", body=json.dumps(document).encode()
        )

    good = validate(upstream_registry_username="bob", upstream_registry_password="right")
    assert (good.status, good.json()) == (202, "Valid")
    assert validate().json() == "Anonymous"
    bad = validate(upstream_registry_username="bob", upstream_registry_password="wrong")
    assert bad.status == 400 and "Failed login" in bad.body.decode()


def test_proxycache_refuses_private_upstreams_unless_allowed(
    client: Client, upstream: Upstream, settings
) -> None:
    settings(proxycache_private_upstreams=False)
    client.post("/api/v1/organizations", body=b'{"name": "hub"}')
    answer = client.post(
        "/api/v1/organization/hub/validateproxycache",
        body=json.dumps({"upstream_registry": upstream.host, "insecure": True}).encode(),
    )
    assert answer.status == 403 and "not allowed" in answer.body.decode()


def test_pull_by_tag_through_the_cache_stores_the_manifest_byte_identical(
    client: Client, upstream: Upstream
) -> None:
    manifest = upstream.image("v1", b"layer-one")
    configure(client, "hub", upstream)
    first = client.get("/v2/hub/library/app/manifests/v1", headers=ACCEPT)
    assert first.status == 200 and first.body == manifest
    assert first.header("Docker-Content-Digest") == sha(manifest)
    upstream.down = True
    second = client.get("/v2/hub/library/app/manifests/v1", headers=ACCEPT)
    assert second.body == manifest
    by_digest = client.get(f"/v2/hub/library/app/manifests/{sha(manifest)}", headers=ACCEPT)
    assert by_digest.body == manifest
    assert client.get("/v2/hub/library/app/tags/list").json()["tags"] == ["v1"]
    assert "hub/library/app" in client.get("/v2/_catalog").json()["repositories"]


def test_pull_by_digest_of_cached_content_never_asks_upstream(
    client: Client, upstream: Upstream
) -> None:
    manifest = upstream.image("v1", b"layer")
    configure(client, "hub", upstream)
    assert client.get(f"/v2/hub/app/manifests/{sha(manifest)}", headers=ACCEPT).status == 200
    before = len(upstream.requests)
    for _ in range(3):
        assert client.head(f"/v2/hub/app/manifests/{sha(manifest)}", headers=ACCEPT).status == 200
    assert len(upstream.requests) == before


def test_cached_tag_moved_upstream_is_picked_up_after_the_ttl_not_before(
    client: Client, upstream: Upstream, clock
) -> None:
    old = upstream.image("v1", b"old")
    configure(client, "hub", upstream, expiration_s=60)
    assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == old
    new = upstream.image("v1", b"new")
    clock.advance(seconds=30)
    before = len(upstream.requests)
    assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == old
    assert len(upstream.requests) == before  # fresh: not even a HEAD
    clock.advance(seconds=31)
    assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == new


def test_unchanged_tag_is_revalidated_with_one_head(
    client: Client, upstream: Upstream, clock
) -> None:
    manifest = upstream.image("v1", b"same")
    configure(client, "hub", upstream, expiration_s=60)
    client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    clock.advance(seconds=61)
    before = len(upstream.requests)
    assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == manifest
    assert [m for m, _ in upstream.requests[before:]] == ["HEAD"]
    assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == manifest
    assert len(upstream.requests) == before + 1  # valid again for expiration_s


def test_stale_tag_is_served_when_the_upstream_is_down(
    client: Client, upstream: Upstream, clock, caplog
) -> None:
    manifest = upstream.image("v1", b"layer")
    configure(client, "hub", upstream, expiration_s=60)
    client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    upstream.down = True
    clock.advance(seconds=120)
    with caplog.at_level("WARNING", logger="stratus.proxycache"):
        assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == manifest
    assert "stale" in caplog.text


def test_miss_with_the_upstream_down_is_a_502_naming_it(client: Client, upstream: Upstream) -> None:
    configure(client, "hub", upstream)
    upstream.down = True
    answer = client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    assert answer.status == 502 and upstream.host in answer.body.decode()
    assert client.get("/v2/hub/app/manifests/nope", headers=ACCEPT).status == 502


def test_unknown_upstream_tag_is_manifest_unknown(client: Client, upstream: Upstream) -> None:
    configure(client, "hub", upstream)
    answer = client.get("/v2/hub/app/manifests/missing", headers=ACCEPT)
    assert (answer.status, answer.error_codes) == (404, ["MANIFEST_UNKNOWN"])


def test_index_children_are_fetched_on_first_pull(client: Client, upstream: Upstream) -> None:
    child = upstream.image("child", b"arm-layer")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(child), "size": len(child)}],
        }
    ).encode()
    upstream.manifests["multi"] = (OCI_INDEX, index)
    configure(client, "hub", upstream)
    assert client.get("/v2/hub/app/manifests/multi", headers=ACCEPT).body == index
    upstream.down = True
    assert client.get(f"/v2/hub/app/manifests/{sha(child)}", headers=ACCEPT).body == child


def test_wrong_upstream_credentials_give_a_clear_error(client: Client, upstream: Upstream) -> None:
    upstream.image("v1", b"layer")
    upstream.credentials = ("bob", "right")
    configure(
        client, "hub", upstream, upstream_registry_username="bob", upstream_registry_password="bad"
    )
    answer = client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    assert (answer.status, answer.error_codes) == (403, ["DENIED"])
    assert "refused access" in answer.body.decode() and "bad" not in answer.body.decode()


def test_push_into_a_cache_org_is_denied_saying_why(client: Client, upstream: Upstream) -> None:
    configure(client, "hub", upstream)
    started = client.post("/v2/hub/app/blobs/uploads/")
    assert started.status == 403 and started.error_codes == ["DENIED"]
    assert "pull-through cache" in started.json()["errors"][0]["message"]
    manifest = client.put(
        "/v2/hub/app/manifests/v1", headers={"Content-Type": OCI_MANIFEST}, body=b"{}"
    )
    assert manifest.status == 403


def test_blob_of_an_anonymous_upstream_redirects_there_then_to_s3(
    client: Client, upstream: Upstream
) -> None:
    upstream.image("v1", b"layer-bytes")
    configure(client, "hub", upstream)
    digest = sha(b"layer-bytes")
    first = client.get(f"/v2/hub/app/blobs/{digest}")
    assert first.status == 307
    assert first.header("Location") == f"http://{upstream.host}/v2/app/blobs/{digest}"
    import time

    from chalicelib.storage import blobs

    deadline = time.monotonic() + 5
    while blobs.get_link("hub/app", digest) is None:
        assert time.monotonic() < deadline, "the copy never landed"
        time.sleep(0.05)
    later = client.get(f"/v2/hub/app/blobs/{digest}")
    assert later.status == 307 and upstream.host not in later.header("Location")


def test_blob_needing_credentials_is_copied_first_then_redirected_to_s3(
    client: Client, upstream: Upstream
) -> None:
    upstream.image("v1", b"private-layer")
    upstream.credentials = ("bob", "right")
    configure(client, "hub", upstream, **RIGHT)
    answer = client.get(f"/v2/hub/app/blobs/{sha(b'private-layer')}")
    assert answer.status == 307
    assert upstream.host not in answer.header("Location")
    assert "right" not in answer.header("Location")


def test_corrupted_upstream_blob_is_refused_and_not_cached(
    client: Client, upstream: Upstream
) -> None:
    upstream.image("v1", b"good")
    upstream.credentials = ("bob", "right")
    upstream.blobs[sha(b"good")] = b"evil"
    configure(client, "hub", upstream, **RIGHT)
    answer = client.get(f"/v2/hub/app/blobs/{sha(b'good')}")
    assert answer.status == 502 and "digest mismatch" in answer.body.decode()
    from chalicelib.storage import blobs

    assert blobs.get_link("hub/app", sha(b"good")) is None


def test_copy_of_a_large_blob_uses_multipart_and_verifies(
    client: Client, upstream: Upstream, monkeypatch
) -> None:
    from chalicelib.proxycache import blobs as cached
    from chalicelib.storage import blobs

    monkeypatch.setattr(cached, "SMALL", 1024)
    monkeypatch.setattr(cached, "PART", 5 * 1024 * 1024)
    layer = bytes(range(256)) * (6 * 1024 * 1024 // 256 + 3)
    upstream.image("v1", layer)
    configure(client, "hub", upstream)
    cached.copy("hub/app", sha(layer))
    assert blobs.get_link("hub/app", sha(layer)) is not None
    assert blobs.read(sha(layer)) == layer


def test_blob_head_in_a_cache_org_asks_the_upstream(client: Client, upstream: Upstream) -> None:
    upstream.image("v1", b"twelve bytes")
    configure(client, "hub", upstream)
    answer = client.head(f"/v2/hub/app/blobs/{sha(b'twelve bytes')}")
    assert answer.status == 200 and answer.header("Content-Length") == "12"


def test_docker_hub_library_rule_and_path_prefix() -> None:
    from chalicelib.proxycache.upstream import parse_location

    hub = parse_location("docker.io", insecure=False)
    assert hub.base == "https://registry-1.docker.io"
    assert hub.repository("hub/alpine") == "library/alpine"
    assert hub.repository("hub/bitnami/redis") == "bitnami/redis"
    quay = parse_location("quay.io/projectquay", insecure=False)
    assert quay.repository("q/quay") == "projectquay/quay"


def test_api_policy_may_write_only_proxycache_parameters() -> None:
    statements = policies.api_policy("dev")["Statement"]
    writes = [s for s in statements if "ssm:PutParameter" in s["Action"]]
    ours = [s for s in writes if "proxycache" in str(s["Resource"])]
    assert [s["Resource"] for s in ours] == ["arn:aws:ssm:*:*:parameter/stratus/dev/proxycache/*"]
    assert set(ours[0]["Action"]) == {"ssm:PutParameter", "ssm:DeleteParameter"}
    assert all(str(s["Resource"]).endswith("/*") and s["Resource"] != "*" for s in writes)
    assert not policies.missing({("api", "ssm", "PutParameter"), ("api", "ssm", "DeleteParameter")})


def test_pull_through_the_cache_needs_pull_permission_on_the_org(
    client: Client, auth, upstream: Upstream
) -> None:
    manifest = upstream.image("v1", b"layer")
    root = client.as_basic("root", "root-password-1")
    root.post("/api/v1/users", body=b'{"username": "dev", "password": "dev-password"}')
    configure(root, "hub", upstream)
    scope = "repository:hub/app:pull"
    anonymous = client.login(None, "", scope)
    assert anonymous.get("/v2/hub/app/manifests/v1", headers=ACCEPT).status == 401
    dev = client.login("dev", "dev-password", scope)
    assert dev.get("/v2/hub/app/manifests/v1", headers=ACCEPT).status == 403
    granted = root.put("/api/v1/organization/hub/permissions/dev", body=b'{"role": "read"}')
    assert granted.status == 200, granted.body
    dev = client.login("dev", "dev-password", scope)
    assert dev.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == manifest


def test_anonymous_pulls_through_a_public_cache_org(
    client: Client, auth, upstream: Upstream
) -> None:
    manifest = upstream.image("v1", b"layer")
    root = client.as_basic("root", "root-password-1")
    configure(root, "hub", upstream)
    public = root.put("/api/v1/organization/hub/permissions/*", body=b'{"role": "read"}')
    assert public.status == 200, public.body
    anonymous = client.login(None, "", "repository:hub/app:pull,push")
    assert anonymous.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == manifest
    assert anonymous.post("/v2/hub/app/blobs/uploads/").status == 401  # pull only


def test_cached_tag_unused_past_its_eviction_is_fetched_again(
    client: Client, upstream: Upstream, clock, settings
) -> None:
    settings(proxycache_evict_seconds=3600)
    old = upstream.image("v1", b"old")
    configure(client, "hub", upstream, expiration_s=60)
    client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    from chalicelib.registry.names import tag_sort_key
    from chalicelib.storage.models import TagModel

    item = TagModel.get("hub/app", tag_sort_key("v1"))
    assert item.expires_at == item.revalidate_at + __import__("datetime").timedelta(seconds=3600)
    clock.advance(seconds=60 + 3600 + 1)  # expired: cleanup's TTL and GC take it from here
    upstream.down = True
    answer = client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    assert answer.status == 502  # evicted: nothing stale left to serve
    upstream.down = False
    new = upstream.image("v1", b"new")
    assert client.get("/v2/hub/app/manifests/v1", headers=ACCEPT).body == new != old


def test_referrers_of_cached_content_are_fetched_from_the_upstream(
    client: Client, upstream: Upstream
) -> None:
    subject = upstream.image("v1", b"signed")
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha(b"{}"),
                "size": 2,
            },
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": sha(subject), "size": len(subject)},
        }
    ).encode()
    upstream.manifests[sha(signature)] = (OCI_MANIFEST, signature)
    tag_schema = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    tag_schema["manifests"] = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha(signature),
            "size": len(signature),
            "artifactType": "application/vnd.example.signature",
        }
    ]
    upstream.manifests[sha(subject).replace(":", "-")] = (
        OCI_INDEX,
        json.dumps(tag_schema).encode(),
    )
    configure(client, "hub", upstream)
    client.get("/v2/hub/app/manifests/v1", headers=ACCEPT)
    listed = client.get(f"/v2/hub/app/referrers/{sha(subject)}").json()
    assert [d["digest"] for d in listed["manifests"]] == [sha(signature)]
    upstream.down = True  # cached now: still listed, and pullable by digest
    listed = client.get(f"/v2/hub/app/referrers/{sha(subject)}").json()
    assert [d["digest"] for d in listed["manifests"]] == [sha(signature)]
    assert client.get(f"/v2/hub/app/manifests/{sha(signature)}", headers=ACCEPT).body == signature


def test_blob_redirected_upstream_with_credentials_hands_on_the_signed_url(
    client: Client, upstream: Upstream
) -> None:
    upstream.image("v1", b"cdn-layer")
    upstream.credentials = ("bob", "right")
    upstream.redirect = True
    configure(client, "hub", upstream, **RIGHT)
    digest = sha(b"cdn-layer")
    port = upstream.server.server_address[1]
    answer = client.get(f"/v2/hub/app/blobs/{digest}")
    assert answer.status == 307
    assert answer.header("Location") == f"http://localhost:{port}/storage/{digest}"
    head = client.head(f"/v2/hub/app/blobs/{digest}")
    assert (head.status, head.header("Content-Length")) == (200, str(len(b"cdn-layer")))
    import time

    from chalicelib.storage import blobs

    deadline = time.monotonic() + 5  # the copy followed the redirect without credentials
    while blobs.get_link("hub/app", digest) is None:
        assert time.monotonic() < deadline, "the copy never landed"
        time.sleep(0.05)
    assert blobs.read(digest) == b"cdn-layer"


def test_the_clients_accept_is_passed_upstream(client: Client, upstream: Upstream) -> None:
    upstream.image("v1", b"layer")
    configure(client, "hub", upstream)
    schema2 = "application/vnd.docker.distribution.manifest.v2+json"
    client.get("/v2/hub/app/manifests/v1", headers={"Accept": f"{OCI_MANIFEST}, {schema2}"})
    assert upstream.accepts[-1] == f"{OCI_MANIFEST}, {schema2}"
    client.get("/v2/hub/other/manifests/v1", headers={"Accept": "*/*"})
    assert OCI_INDEX in upstream.accepts[-1] and schema2 in upstream.accepts[-1]
