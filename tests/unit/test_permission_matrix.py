"""Who may do what: each principal against each operation, every cell asserted.

Arrangement (all through the management API): organization `acme` (owner `owner`) with a
private `acme/app` on which `reader` reads, `writer` writes and `boss` is admin; the robot
`acme+ci` holds write on the whole `acme` namespace; `acme/public` is public; `mallory`
owns another organization, `evil`, with its private `evil/secret`; `root` is the superuser.
A token is fetched from `/v2/auth` for exactly the scopes each operation needs, as a
client does; a token granting less than needed gets 403 (jwt.md "Verifying the token"), but
an anonymous one gets 401 and the challenge, since logging in may help (as in Distribution).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.client import Client
from tests.images import sha256
from tests.referrers_fixtures import referrer_manifest, subject_manifest
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.usefixtures("auth")
PASSWORD = "password-1234"
SUBJECT = subject_manifest("matrix")
BLOB = b"a layer everyone may or may not mount"


@dataclass(frozen=True)
class Row:
    pull: int
    push: int
    delete: int
    mount: int  # 201 mounted, 202 an ordinary upload instead (no right to the source)
    catalog: list[str]
    tags: int
    referrers: int
    pull_public: int = 200


DENIED, LOG_IN = 403, 401
MATRIX: dict[str, Row] = {
    "anonymous": Row(LOG_IN, LOG_IN, LOG_IN, LOG_IN, ["acme/public"], LOG_IN, LOG_IN),
    "reader": Row(200, DENIED, DENIED, 201, ["acme/app", "acme/public"], 200, 200),
    "writer": Row(200, 201, 202, 201, ["acme/app", "acme/public"], 200, 200),
    "boss": Row(200, 201, 202, 201, ["acme/app", "acme/public"], 200, 200),
    "robot": Row(200, 201, 202, 201, ["acme/app", "acme/public"], 200, 200),
    "mallory": Row(DENIED, DENIED, DENIED, 202, ["acme/public", "evil/secret"], DENIED, DENIED),
    "root": Row(200, 201, 202, 201, ["acme/app", "acme/public", "evil/secret"], 200, 200),
}


def _ok(answer, status: int = 201) -> None:
    assert answer.status == status, answer.body


def arrange(client: Client) -> dict[str, tuple[str | None, str]]:
    """The registry above; returns each principal's credentials."""
    root = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    for user in ("owner", "reader", "writer", "boss", "mallory"):
        body = {"username": user, "password": PASSWORD}
        _ok(root.post("/api/v1/users", body=json.dumps(body).encode()))
    for org, owner in (("acme", "owner"), ("evil", "mallory")):
        body = {"name": org, "owners": [owner]}
        _ok(root.post("/api/v1/organizations", body=json.dumps(body).encode()))
    owner = client.as_basic("owner", PASSWORD)
    robot = owner.put("/api/v1/organization/acme/robots/ci")
    _ok(robot)
    robot_token = robot.json()["token"]
    for user, role in (("reader", "read"), ("writer", "write"), ("boss", "admin")):
        path = f"/api/v1/repository/acme/app/permissions/user/{user}"
        _ok(owner.put(path, body=json.dumps({"role": role}).encode()), 200)
    _ok(
        owner.put(
            "/api/v1/organization/acme/permissions/acme+ci",
            body=json.dumps({"role": "write"}).encode(),
        ),
        200,
    )
    _ok(
        owner.post(
            "/api/v1/repository/acme/public/changevisibility",
            body=json.dumps({"visibility": "public"}).encode(),
        ),
        200,
    )
    pusher = client.login(
        ADMIN_USER,
        ADMIN_PASSWORD,
        "repository:acme/app:pull,push",
        "repository:acme/public:pull,push",
    )
    pusher.push_blob("acme/app", BLOB)
    pusher.must_push("acme/app", "v1", SUBJECT)
    pusher.must_push(
        "acme/app",
        sha256(referrer_manifest(SUBJECT, "application/x-sig")),
        referrer_manifest(SUBJECT, "application/x-sig"),
    )
    for who in MATRIX:
        pusher.must_push("acme/app", f"del-{who}", subject_manifest(f"del-{who}"))
    pusher.must_push("acme/public", "v1", subject_manifest("public"))
    mallory = client.login("mallory", PASSWORD, "repository:evil/secret:pull,push")
    mallory.must_push("evil/secret", "v1", subject_manifest("secret"))
    credentials: dict[str, tuple[str | None, str]] = {
        user: (user, PASSWORD) for user in ("reader", "writer", "boss", "mallory")
    }
    credentials.update(
        anonymous=(None, ""), robot=("acme+ci", robot_token), root=(ADMIN_USER, ADMIN_PASSWORD)
    )
    return credentials


MOUNT_TARGET = {"anonymous": "acme/app", "robot": "acme/other", "root": "root/copy"}


@pytest.mark.parametrize("who", list(MATRIX))
def test_permission_matrix(client: Client, who: str) -> None:
    user, secret = arrange(client)[who]
    expected = MATRIX[who]

    def holder(*scopes: str) -> Client:
        return client.login(user, secret, *scopes)

    cells: dict[str, object] = {}
    cells["pull"] = holder("repository:acme/app:pull").get("/v2/acme/app/manifests/v1").status
    cells["push"] = (
        holder("repository:acme/app:pull,push")
        .push_manifest("acme/app", f"push-{who}", subject_manifest(f"push-{who}"))
        .status
    )
    cells["delete"] = (
        holder("repository:acme/app:delete").delete(f"/v2/acme/app/manifests/del-{who}").status
    )
    target = MOUNT_TARGET.get(who, f"{who}/copy")
    cells["mount"] = (
        holder(f"repository:{target}:pull,push", "repository:acme/app:pull")
        .post(f"/v2/{target}/blobs/uploads/?mount={sha256(BLOB)}&from=acme/app")
        .status
    )
    cells["catalog"] = holder("registry:catalog:*").get("/v2/_catalog").json()["repositories"]
    cells["tags"] = holder("repository:acme/app:pull").get("/v2/acme/app/tags/list").status
    cells["referrers"] = (
        holder("repository:acme/app:pull").get(f"/v2/acme/app/referrers/{sha256(SUBJECT)}").status
    )
    cells["pull_public"] = (
        holder("repository:acme/public:pull").get("/v2/acme/public/manifests/v1").status
    )
    assert cells == expected.__dict__


def test_mount_without_from_never_reaches_another_repository(client: Client) -> None:
    """With auth on, knowing a digest opens nothing: mallory's blind mount is an upload."""
    arrange(client)
    mallory = client.login("mallory", PASSWORD, "repository:mallory/copy:pull,push")
    answer = mallory.post(f"/v2/mallory/copy/blobs/uploads/?mount={sha256(BLOB)}")
    assert answer.status == 202


def test_robot_cannot_be_granted_outside_its_namespace(client: Client) -> None:
    arrange(client)
    mallory = client.as_basic("mallory", PASSWORD)
    answer = mallory.put(
        "/api/v1/organization/evil/permissions/acme+ci", body=json.dumps({"role": "read"}).encode()
    )
    assert answer.status == 400


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        ("reader", "GET", "/api/v1/users", 403),
        ("owner", "POST", "/api/v1/organizations", 403),
        ("reader", "PUT", "/api/v1/organization/acme/robots/mine", 403),
        ("writer", "PUT", "/api/v1/repository/acme/app/permissions/user/mallory", 403),
        ("writer", "POST", "/api/v1/repository/acme/app/changevisibility", 403),
        ("boss", "GET", "/api/v1/repository/acme/app/permissions", 200),
        ("mallory", "GET", "/api/v1/repository/acme/app/tag/", 403),
        ("reader", "GET", "/api/v1/repository/acme/app/tag/", 200),
        ("owner", "GET", "/api/v1/organization/acme/robots", 200),
    ],
)
def test_management_api_is_limited_to_admins(client: Client, who, method, path, status) -> None:
    arrange(client)
    body = json.dumps({"role": "read", "visibility": "public", "name": "x1"}).encode()
    answer = client.as_basic(who, PASSWORD).request(method, path, body=body)
    assert answer.status == status, answer.body


def test_management_api_without_credentials_is_401(client: Client) -> None:
    answer = client.get("/api/v1/users")
    assert answer.status == 401
    assert answer.header("WWW-Authenticate") == 'Basic realm="stratus"'


def test_management_api_accepts_a_bearer_token(client: Client) -> None:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD)
    assert client.as_bearer(token).get("/api/v1/users").status == 200


def test_private_repository_becomes_public_and_private_again(client: Client) -> None:
    arrange(client)
    anonymous = client.login(None, "", "repository:acme/app:pull")
    assert anonymous.get("/v2/acme/app/manifests/v1").status == LOG_IN
    owner = client.as_basic("owner", PASSWORD)
    visibility = "/api/v1/repository/acme/app/changevisibility"
    owner.post(visibility, body=b'{"visibility": "public"}')
    anonymous = client.login(None, "", "repository:acme/app:pull,push")
    assert anonymous.get("/v2/acme/app/manifests/v1").status == 200
    assert anonymous.push_manifest("acme/app", "x", SUBJECT).status == LOG_IN  # pull only
    owner.post(visibility, body=b'{"visibility": "private"}')
    anonymous = client.login(None, "", "repository:acme/app:pull")
    assert anonymous.get("/v2/acme/app/manifests/v1").status == LOG_IN


def test_users_push_to_their_own_namespace(client: Client) -> None:
    arrange(client)
    reader = client.login("reader", PASSWORD, "repository:reader/tool:pull,push")
    assert reader.push_manifest("reader/tool", "v1", SUBJECT).status == 201


def test_robot_token_is_shown_once_and_stored_hashed(client: Client) -> None:
    from chalicelib.storage import accounts

    arrange(client)
    created = client.as_basic("owner", PASSWORD).put("/api/v1/organization/acme/robots/deploy")
    token = created.json()["token"]
    assert created.json()["name"] == "acme+deploy"
    stored = accounts.get_account("acme+deploy").secret
    assert token not in stored
    listed = client.as_basic("owner", PASSWORD).get("/api/v1/organization/acme/robots").json()
    assert token not in json.dumps(listed)


def test_wrong_robot_token_is_refused(client: Client) -> None:
    arrange(client)
    answer = client.get(
        "/v2/auth?service=stratus",
        headers={
            "Authorization": "Basic " + __import__("base64").b64encode(b"acme+ci:nope").decode()
        },
    )
    assert answer.status == 401
