"""Who may use each policy endpoint: every principal against every endpoint, every cell
asserted. Namespace admins manage their namespace's policies, repository admins their
repository's, superusers everything; only superusers set quotas, while anyone with a role
on the namespace reads them (Quay's rules). The arrangement is the permission matrix's
(tests/unit/test_permission_matrix.py): `owner` owns `acme`, `boss` administers
`acme/app`, `writer` and `reader` write and read it, the robot `acme+ci` writes the whole
namespace, `mallory` is a stranger, `root` the superuser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chalicelib.storage import policies as policy_store
from chalicelib.storage import quotas as quota_store
from tests.client import Client
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER
from tests.unit.test_permission_matrix import PASSWORD, arrange

pytestmark = pytest.mark.usefixtures("auth")

SUPER = frozenset({"root"})
NAMESPACE_ADMINS = SUPER | {"owner"}
REPOSITORY_ADMINS = NAMESPACE_ADMINS | {"boss"}
NAMESPACE_READERS = NAMESPACE_ADMINS | {"robot"}
REPOSITORY_READERS = REPOSITORY_ADMINS | {"writer", "reader", "robot"}
PRINCIPALS = ["root", "owner", "boss", "writer", "reader", "robot", "mallory", "anonymous"]


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    policy_store.forget()
    quota_store.forget()
    yield
    policy_store.forget()
    quota_store.forget()


@dataclass(frozen=True)
class Op:
    label: str
    method: str
    path: str
    allowed: frozenset[str]
    status: int  # what an allowed caller gets
    body: dict | None = None


def _made(answer) -> str:
    assert answer.status == 201, answer.body
    return str(answer.json()["uuid"])


def fixtures(root: Client) -> dict[str, str]:
    """Policies and a quota for each operation to act on, made by the superuser."""
    ids: dict[str, str] = {}
    for scope, base in (
        ("ns", "/api/v1/organization/acme"),
        ("repo", "/api/v1/repository/acme/app"),
    ):
        for kind, document in (
            ("immutabilitypolicy", {"tagPattern": "^fixture-{n}"}),
            ("autoprunepolicy", {"method": "number_of_tags", "value": 100, "tagPattern": "^f{n}"}),
        ):
            for n in ("get", "put", "delete"):
                body = {k: v.format(n=n) if isinstance(v, str) else v for k, v in document.items()}
                made = root.post(f"{base}/{kind}/", body=json.dumps(body).encode())
                ids[f"{scope}-{kind}-{n}"] = _made(made)
    quota = "/api/v1/organization/acme/quota"
    assert root.post(quota, body=b'{"limit_bytes": 1000000}').status == 201
    ids["quota"] = root.get(quota).json()[0]["id"]
    for kind, percent in (("Warning", 50), ("Warning", 60), ("Reject", 100)):
        body = json.dumps({"type": kind, "threshold_percent": percent}).encode()
        assert root.post(f"{quota}/{ids['quota']}/limit", body=body).status == 201
    limits = root.get(f"{quota}/{ids['quota']}/limit").json()
    by_percent = {x["limit_percent"]: x["id"] for x in limits}
    ids["limit-get"], ids["limit-put"] = by_percent[50], by_percent[60]
    ids["limit-delete"] = by_percent[100]
    return ids


def operations(ids: dict[str, str], who: str) -> list[Op]:
    ops: list[Op] = []
    for scope, base, admins in (
        ("ns", "/api/v1/organization/acme", NAMESPACE_ADMINS),
        ("repo", "/api/v1/repository/acme/app", REPOSITORY_ADMINS),
    ):
        for kind, create, change in (
            ("immutabilitypolicy", {"tagPattern": f"^{who}-"}, {"tagPattern": f"^{who}2-"}),
            (
                "autoprunepolicy",
                {"method": "creation_date", "value": "9d", "tagPattern": who},
                {"method": "creation_date", "value": "8d", "tagPattern": who},
            ),
        ):
            one = f"{base}/{kind}/"
            ops += [
                Op(f"{scope} {kind} list", "GET", one, admins, 200),
                Op(f"{scope} {kind} create", "POST", one, admins, 201, create),
                Op(f"{scope} {kind} get", "GET", one + ids[f"{scope}-{kind}-get"], admins, 200),
                Op(
                    f"{scope} {kind} change",
                    "PUT",
                    one + ids[f"{scope}-{kind}-put"],
                    admins,
                    204,
                    change,
                ),
                Op(
                    f"{scope} {kind} delete",
                    "DELETE",
                    one + ids[f"{scope}-{kind}-delete"],
                    admins,
                    200,
                ),
            ]
        ops.append(
            Op(f"{scope} prune preview", "GET", f"{base}/autoprunepolicy/preview", admins, 200)
        )
    quota = "/api/v1/organization/acme/quota"
    one = f"{quota}/{ids['quota']}"
    ops += [
        Op(
            "quota create",
            "POST",
            "/api/v1/organization/owner/quota",
            SUPER,
            201,
            {"limit_bytes": 5},
        ),
        Op("quota list", "GET", quota, NAMESPACE_READERS, 200),
        Op("quota get", "GET", one, NAMESPACE_READERS, 200),
        Op("quota change", "PUT", one, SUPER, 200, {"limit_bytes": 2000000}),
        Op("limit list", "GET", f"{one}/limit", NAMESPACE_READERS, 200),
        Op(
            "limit create",
            "POST",
            f"{one}/limit",
            SUPER,
            201,
            {"type": "Warning", "threshold_percent": 70},
        ),
        Op("limit get", "GET", f"{one}/limit/{ids['limit-get']}", NAMESPACE_READERS, 200),
        Op(
            "limit change",
            "PUT",
            f"{one}/limit/{ids['limit-put']}",
            SUPER,
            200,
            {"threshold_percent": 65},
        ),
        Op("limit delete", "DELETE", f"{one}/limit/{ids['limit-delete']}", SUPER, 204),
        Op("namespace usage", "GET", f"{quota}/usage", NAMESPACE_READERS, 200),
        Op("repository usage", "GET", "/api/v1/repository/acme/app/usage", REPOSITORY_READERS, 200),
        Op("usage repair", "POST", f"{quota}/repair", SUPER, 200),
        Op("quota delete", "DELETE", one, SUPER, 204),
    ]
    return ops


@pytest.mark.parametrize("who", PRINCIPALS)
def test_policy_endpoint_permission_matrix(client: Client, who: str) -> None:
    credentials = arrange(client)
    credentials["owner"] = ("owner", PASSWORD)
    root = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    ids = fixtures(root)
    user, secret = credentials[who]
    caller = client if user is None else client.as_basic(user, secret)
    expected, actual = {}, {}
    for op in operations(ids, who):
        if who == "anonymous":
            expected[op.label] = 401
        else:
            expected[op.label] = op.status if who in op.allowed else 403
        body = json.dumps(op.body).encode() if op.body is not None else b""
        actual[op.label] = caller.request(op.method, op.path, body=body).status
    assert actual == expected


def test_users_manage_their_own_namespace_through_quays_user_paths(client: Client) -> None:
    credentials = arrange(client)
    root = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    reader = client.as_basic("reader", PASSWORD)
    body = json.dumps({"method": "number_of_tags", "value": 3}).encode()
    made = reader.post("/api/v1/user/autoprunepolicy/", body=body)
    policy = _made(made)
    listed = root.get("/api/v1/organization/reader/autoprunepolicy/").json()["policies"]
    assert [p["uuid"] for p in listed] == [policy]
    assert reader.delete(f"/api/v1/user/autoprunepolicy/{policy}").status == 200
    imm = reader.post("/api/v1/user/immutabilitypolicy/", body=b'{"tagPattern": "^v"}')
    assert _made(imm)
    robot_user, robot_token = credentials["robot"]
    assert robot_user is not None
    robot = client.as_basic(robot_user, robot_token)
    assert robot.get("/api/v1/user/immutabilitypolicy/").status == 403
    assert root.post("/api/v1/organization/reader/quota", body=b'{"limit_bytes": 10}').status == 201
    (quota,) = reader.get("/api/v1/user/quota").json()
    assert quota["limit_bytes"] == 10
    assert reader.get(f"/api/v1/user/quota/{quota['id']}").json()["id"] == quota["id"]
    assert reader.get(f"/api/v1/user/quota/{quota['id']}/limit").json() == []
    assert reader.post("/api/v1/user/quota", body=b'{"limit_bytes": 99}').status == 405
    assert client.get("/api/v1/user/quota").status == 401
