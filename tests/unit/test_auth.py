"""The Docker token protocol (docker-registry/token.md, jwt.md, oauth.md, scope.md)."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import jwt
import pytest

from chalicelib.auth import keys
from tests.client import Client
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER

pytestmark = pytest.mark.usefixtures("auth")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def make_user(client: Client, name: str, password: str = "password-1234") -> None:
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    answer = admin.post(
        "/api/v1/users", body=json.dumps({"username": name, "password": password}).encode()
    )
    assert answer.status == 201, answer.body


# -- challenge (token.md "How to authenticate") -----------------------------------------------


def test_version_check_without_token_is_challenged(client: Client) -> None:
    answer = client.get("/v2/")
    assert answer.status == 401
    assert answer.error_codes == ["UNAUTHORIZED"]
    assert answer.header("WWW-Authenticate") == (
        'Bearer realm="http://localhost/v2/auth",service="stratus"'
    )


def test_manifest_get_without_token_is_challenged_with_its_scope(client: Client) -> None:
    answer = client.get("/v2/acme/app/manifests/v1", headers={"Host": "registry.test"})
    assert answer.status == 401
    assert answer.header("WWW-Authenticate") == (
        'Bearer realm="http://registry.test/v2/auth",service="stratus",'
        'scope="repository:acme/app:pull"'
    )
    assert answer.json()["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "acme/app", "Action": "pull"}
    ]


def test_push_challenge_asks_for_pull_and_push(client: Client) -> None:
    answer = client.post("/v2/acme/app/blobs/uploads/")
    assert answer.status == 401
    assert 'scope="repository:acme/app:pull,push"' in answer.header("WWW-Authenticate")


def test_delete_challenge_asks_for_delete(client: Client) -> None:
    answer = client.delete("/v2/acme/app/manifests/v1")
    assert 'scope="repository:acme/app:delete"' in answer.header("WWW-Authenticate")


def test_catalog_challenge_asks_for_registry_catalog(client: Client) -> None:
    answer = client.get("/v2/_catalog")
    assert 'scope="registry:catalog:*"' in answer.header("WWW-Authenticate")


def test_token_without_scope_gets_insufficient_scope_403(client: Client) -> None:
    """RFC 6750 section 3.1; the oras SDK refreshes its token only on a 403."""
    holder = client.login(ADMIN_USER, ADMIN_PASSWORD)
    answer = holder.get("/v2/acme/app/manifests/v1")
    assert answer.status == 403
    assert answer.error_codes == ["DENIED"]
    assert answer.header("WWW-Authenticate").endswith(
        'scope="repository:acme/app:pull",error="insufficient_scope"'
    )


def test_unknown_path_is_404_before_any_challenge(client: Client) -> None:
    assert client.get("/v2/acme/app/nothing-here").status == 404


def test_version_check_with_any_valid_token_is_200(client: Client) -> None:
    assert client.login(None).get("/v2/").status == 200


# -- token endpoint -----------------------------------------------------------------------------


def test_token_response_has_the_fields_clients_read(client: Client) -> None:
    answer = client.get(
        "/v2/auth?service=stratus&scope=repository:root/app:pull,push",
        headers=basic(ADMIN_USER, ADMIN_PASSWORD),
    )
    assert answer.status == 200
    body = answer.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    assert answer.header("Cache-Control") == "no-store"
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and header["kid"] == keys.ring().signing.kid
    token = claims(body["token"])
    assert token["aud"] == "stratus" and token["iss"] == "stratus" and token["sub"] == "root"
    assert token["access"] == [
        {"type": "repository", "name": "root/app", "actions": ["pull", "push"]}
    ]


def test_token_grants_less_than_asked_without_error(client: Client) -> None:
    make_user(client, "alice")
    token = client.token("alice", "password-1234", "repository:bob/app:pull,push")
    assert claims(token)["access"] == []


def test_several_scopes_in_one_token_request(client: Client) -> None:
    make_user(client, "alice")
    token = client.token(
        "alice",
        "password-1234",
        "repository:alice/one:pull",
        "repository:alice/two:push repository:alice/three:pull",
    )
    assert [entry["name"] for entry in claims(token)["access"]] == [
        "alice/one",
        "alice/two",
        "alice/three",
    ]


def test_token_with_wrong_password_is_401(client: Client) -> None:
    answer = client.get("/v2/auth?service=stratus", headers=basic(ADMIN_USER, "wrong-password"))
    assert answer.status == 401
    assert answer.error_codes == ["UNAUTHORIZED"]


def test_token_for_unknown_user_is_401(client: Client) -> None:
    answer = client.get("/v2/auth?service=stratus", headers=basic("nobody", "whatever-1"))
    assert answer.status == 401


@pytest.mark.parametrize(
    "authorization",
    ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic "],
)
def test_token_with_malformed_basic_credentials_is_401(client: Client, authorization) -> None:
    answer = client.get("/v2/auth?service=stratus", headers={"Authorization": authorization})
    assert answer.status == 401


@pytest.mark.parametrize(
    "scope", ["repository::pull", "bad type:x:pull", "nocolons", "repository:app:PULL"]
)
def test_token_with_malformed_scope_is_400(client: Client, scope: str) -> None:
    answer = client.get("/v2/auth?" + urlencode({"service": "stratus", "scope": scope}))
    assert answer.status == 400


def test_token_for_another_service_is_refused(client: Client) -> None:
    answer = client.get("/v2/auth?service=other", headers=basic(ADMIN_USER, ADMIN_PASSWORD))
    assert answer.status == 400


def test_scope_name_with_a_port_keeps_its_colon() -> None:
    from chalicelib.auth import scopes

    parsed = scopes.parse("repository(plugin):localhost:5000/app:pull,push")
    assert (parsed.type, parsed.name) == ("repository", "localhost:5000/app")
    assert parsed.actions == {"pull", "push"}


def test_token_for_a_name_we_cannot_host_grants_nothing(client: Client) -> None:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD, "repository:Other.Host:5000/app:pull")
    assert claims(token)["access"] == []


def test_oauth_password_grant_returns_refresh_token(client: Client) -> None:
    form = urlencode(
        {
            "grant_type": "password",
            "service": "stratus",
            "client_id": "test",
            "access_type": "offline",
            "username": ADMIN_USER,
            "password": ADMIN_PASSWORD,
            "scope": "repository:root/app:pull",
        }
    ).encode()
    answer = client.post(
        "/v2/auth",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["scope"] == "repository:root/app:pull"
    refresh = body["refresh_token"]
    again = client.post(
        "/v2/auth",
        body=urlencode(
            {
                "grant_type": "refresh_token",
                "service": "stratus",
                "client_id": "test",
                "refresh_token": refresh,
                "scope": "repository:root/other:push",
            }
        ).encode(),
    )
    assert again.status == 200, again.body
    assert again.json()["refresh_token"] == refresh
    assert claims(again.json()["access_token"])["access"][0]["name"] == "root/other"


def test_refresh_token_is_not_an_access_token(client: Client) -> None:
    answer = client.get(
        "/v2/auth?service=stratus&offline_token=true", headers=basic(ADMIN_USER, ADMIN_PASSWORD)
    )
    refresh = answer.json()["refresh_token"]
    assert client.as_bearer(refresh).get("/v2/").status == 401


def test_access_token_is_not_a_refresh_token(client: Client) -> None:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD)
    answer = client.post(
        "/v2/auth",
        body=urlencode(
            {"grant_type": "refresh_token", "service": "stratus", "refresh_token": token}
        ).encode(),
    )
    assert answer.status == 401


def test_refresh_token_of_deleted_user_is_refused(client: Client) -> None:
    make_user(client, "alice")
    answer = client.get(
        "/v2/auth?service=stratus&offline_token=true", headers=basic("alice", "password-1234")
    )
    refresh = answer.json()["refresh_token"]
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    assert admin.delete("/api/v1/users/alice").status == 204
    again = client.post(
        "/v2/auth",
        body=urlencode(
            {"grant_type": "refresh_token", "service": "stratus", "refresh_token": refresh}
        ).encode(),
    )
    assert again.status == 401


def offline_refresh_token(client: Client, user: str, password: str) -> str:
    answer = client.get(
        "/v2/auth?service=stratus&offline_token=true", headers=basic(user, password)
    )
    assert answer.status == 200, answer.body
    return answer.json()["refresh_token"]


def refresh(client: Client, token: str, scope: str = "") -> tuple[int, dict]:
    form = {"grant_type": "refresh_token", "service": "stratus", "refresh_token": token}
    answer = client.post("/v2/auth", body=urlencode({**form, "scope": scope}).encode())
    return answer.status, answer.json()


def test_refresh_token_does_not_carry_over_to_a_recreated_account_of_the_same_name(
    client: Client,
) -> None:
    make_user(client, "alice")
    old = offline_refresh_token(client, "alice", "password-1234")
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    assert admin.delete("/api/v1/users/alice").status == 204
    make_user(client, "alice", "another-password-1")
    status, body = refresh(client, old, "repository:alice/app:pull,push")
    assert status == 401, body
    assert refresh(client, offline_refresh_token(client, "alice", "another-password-1"))[0] == 200


def test_refresh_token_is_revoked_by_a_password_change(client: Client) -> None:
    make_user(client, "alice")
    old = offline_refresh_token(client, "alice", "password-1234")
    assert refresh(client, old)[0] == 200
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    changed = admin.put("/api/v1/users/alice", body=b'{"password": "new-password-1234"}')
    assert changed.status == 204, changed.body
    assert refresh(client, old)[0] == 401


def test_robot_refresh_tokens_are_revoked_by_regenerating_or_deleting_it(client: Client) -> None:
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    org = admin.post("/api/v1/organizations", body=b'{"name": "acme", "owners": ["root"]}')
    assert org.status == 201, org.body
    first = admin.put("/api/v1/organization/acme/robots/ci").json()["token"]
    old = offline_refresh_token(client, "acme+ci", first)
    regenerated = admin.post("/api/v1/organization/acme/robots/ci/regenerate")
    assert regenerated.status == 200, regenerated.body
    second = regenerated.json()["token"]
    assert second != first
    assert refresh(client, old)[0] == 401
    assert client.get("/v2/auth?service=stratus", headers=basic("acme+ci", first)).status == 401
    current = offline_refresh_token(client, "acme+ci", second)
    assert refresh(client, current)[0] == 200
    assert admin.delete("/api/v1/organization/acme/robots/ci").status == 204
    assert refresh(client, current)[0] == 401


def test_refresh_token_without_a_credential_generation_is_refused(client: Client) -> None:
    """Refresh tokens from before the binding carry none: they no longer refresh."""
    from chalicelib.auth import tokens

    bound = offline_refresh_token(client, ADMIN_USER, ADMIN_PASSWORD)
    unbound = tokens._sign({**claims(bound), "gen": None})
    assert refresh(client, bound)[0] == 200
    assert refresh(client, unbound)[0] == 401


def test_token_minted_by_an_open_registry_is_refused_by_a_private_one(
    client: Client, settings
) -> None:
    """An open registry lets anyone be a superuser; its tokens must be good nowhere else,
    even with the same checkout's key file, issuer and audience."""
    settings(auth=False)
    keys.forget()
    opened = client.get("/v2/auth?service=stratus&scope=repository:root/app:pull,push")
    assert opened.status == 200, opened.body
    forged = opened.json()["token"]
    settings(auth=True)
    keys.forget()
    answer = client.as_bearer(forged).get("/v2/root/app/tags/list")
    assert answer.status == 401
    assert answer.error_codes == ["UNAUTHORIZED"]
    assert client.as_bearer(forged).get("/api/v1/users").status == 401


def test_anonymous_caller_without_permission_is_challenged_with_401(client: Client) -> None:
    """So that skopeo and docker say "authentication required" and offer to log in."""
    anonymous = client.login(None, "", "repository:root/app:pull")
    answer = anonymous.get("/v2/root/app/manifests/v1")
    assert answer.status == 401
    assert answer.error_codes == ["UNAUTHORIZED"]
    challenge = answer.header("WWW-Authenticate") or ""
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="repository:root/app:pull"' in challenge


def test_unknown_grant_type_is_400(client: Client) -> None:
    answer = client.post("/v2/auth", body=b"grant_type=authorization_code&service=stratus")
    assert answer.status == 400


# -- token checks on every request (jwt.md "Verifying the token") ------------------------------


def _forged(payload: dict, key, algorithm: str = "ES256", kid: str | None = None) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def _payload(client: Client, **changes) -> dict:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD, "repository:root/app:pull")
    return {**claims(token), **changes}


def test_tampered_token_is_401(client: Client) -> None:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD, "repository:root/app:pull")
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["access"][0]["name"] = "other/app"
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    answer = client.as_bearer(f"{head}.{forged_body}.{signature}").get("/v2/other/app/tags/list")
    assert answer.status == 401
    assert 'error="invalid_token"' in answer.header("WWW-Authenticate")


def test_token_signed_by_another_key_is_401(client: Client) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    payload = _payload(client)
    stranger = _forged(
        payload, ec.generate_private_key(ec.SECP256R1()), kid=keys.ring().signing.kid
    )
    assert client.as_bearer(stranger).get("/v2/root/app/tags/list").status == 401


def test_alg_none_token_is_401(client: Client) -> None:
    payload = _payload(client)
    unsigned = jwt.encode(payload, None, algorithm="none", headers={"kid": keys.ring().signing.kid})
    assert client.as_bearer(unsigned).get("/v2/root/app/tags/list").status == 401


def test_wrong_audience_token_is_401(client: Client) -> None:
    key = keys.ring().signing
    token = _forged(_payload(client, aud="someone-else"), key.private, kid=key.kid)
    assert client.as_bearer(token).get("/v2/root/app/tags/list").status == 401


def test_wrong_issuer_token_is_401(client: Client) -> None:
    key = keys.ring().signing
    token = _forged(_payload(client, iss="mallory"), key.private, kid=key.kid)
    assert client.as_bearer(token).get("/v2/root/app/tags/list").status == 401


def test_expired_token_is_401(client: Client, clock) -> None:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD, "repository:root/app:pull")
    holder = client.as_bearer(token)
    assert holder.get("/v2/root/app/tags/list").status == 404  # valid: the repo is unknown
    clock.advance(seconds=301)
    answer = holder.get("/v2/root/app/tags/list")
    assert answer.status == 401
    assert "expired" in answer.json()["errors"][0]["message"]


def test_token_not_yet_valid_is_401(client: Client, clock) -> None:
    key = keys.ring().signing
    payload = _payload(client)
    token = _forged({**payload, "nbf": payload["nbf"] + 3600}, key.private, kid=key.kid)
    assert client.as_bearer(token).get("/v2/root/app/tags/list").status == 401


def test_garbage_bearer_is_401(client: Client) -> None:
    for garbage in ("x", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30."):
        assert client.as_bearer(garbage).get("/v2/").status == 401


def test_rs256_key_signs_and_verifies(client: Client, tmp_path, settings) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "rsa.pem"
    path.write_bytes(pem)
    settings(signing_key_file=str(path))
    keys.forget()
    token = client.token(ADMIN_USER, ADMIN_PASSWORD)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert client.as_bearer(token).get("/v2/").status == 200


# -- keys ---------------------------------------------------------------------------------------


def test_local_signing_key_is_generated_once_and_kept(tmp_path, settings) -> None:
    path = tmp_path / "k" / "signing-key.pem"
    settings(signing_key_file=str(path))
    keys.forget()
    first = keys.ring().signing.kid
    assert path.stat().st_mode & 0o777 == 0o600
    keys.forget()
    assert keys.ring().signing.kid == first


def test_key_rotation_keeps_tokens_of_the_previous_key_valid(client: Client, settings) -> None:
    """In AWS the ring is an SSM SecureString; a new key goes first, the old one stays."""
    from chalicelib.storage import aws

    old, new = keys.new_private_pem(), keys.new_private_pem()
    aws.ssm().put_parameter(Name="/stratus/test/keys", Value=old, Type="SecureString")
    settings(signing_key_parameter="/stratus/test/keys")
    keys.forget()
    old_token = client.token(ADMIN_USER, ADMIN_PASSWORD)
    aws.ssm().put_parameter(
        Name="/stratus/test/keys", Value=new + "\n" + old, Type="SecureString", Overwrite=True
    )
    keys.forget()  # what the refresh interval does in a warm Lambda
    new_token = client.token(ADMIN_USER, ADMIN_PASSWORD)
    assert (
        jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
    )
    assert client.as_bearer(old_token).get("/v2/").status == 200
    assert client.as_bearer(new_token).get("/v2/").status == 200
    aws.ssm().put_parameter(
        Name="/stratus/test/keys", Value=new, Type="SecureString", Overwrite=True
    )
    keys.forget()
    assert client.as_bearer(old_token).get("/v2/").status == 401


def test_token_from_a_newer_key_is_accepted_before_the_cache_refreshes(
    client: Client, settings
) -> None:
    from chalicelib.auth.keys import _cache
    from chalicelib.storage import aws

    old, new = keys.new_private_pem(), keys.new_private_pem()
    aws.ssm().put_parameter(Name="/stratus/test/ring", Value=old, Type="SecureString")
    settings(signing_key_parameter="/stratus/test/ring")
    keys.forget()
    keys.ring()
    _cache["loaded"] -= 60  # this container loaded the ring a minute ago
    aws.ssm().put_parameter(
        Name="/stratus/test/ring", Value=new + old, Type="SecureString", Overwrite=True
    )
    ring = keys.parse_ring(new)
    token = jwt.encode(
        _payload(client), ring.signing.private, algorithm="ES256", headers={"kid": ring.signing.kid}
    )
    assert client.as_bearer(token).get("/v2/").status == 200


# -- principals and login -----------------------------------------------------------------------


def test_bootstrap_admin_is_created_on_first_login_as_superuser(client: Client) -> None:
    from chalicelib.storage import accounts

    assert accounts.get_account(ADMIN_USER) is None
    client.token(ADMIN_USER, ADMIN_PASSWORD)
    account = accounts.get_account(ADMIN_USER)
    assert account.superuser and account.secret.startswith("scrypt$")
    assert ADMIN_PASSWORD not in account.secret


def test_bootstrap_admin_with_wrong_password_is_not_created(client: Client) -> None:
    from chalicelib.storage import accounts

    answer = client.get("/v2/auth?service=stratus", headers=basic(ADMIN_USER, "guess-guess"))
    assert answer.status == 401
    assert accounts.get_account(ADMIN_USER) is None


def test_failed_logins_are_throttled_per_user(client: Client, settings, clock) -> None:
    settings(login_failures_per_user=3)
    make_user(client, "alice")
    for _ in range(3):
        answer = client.get("/v2/auth?service=stratus", headers=basic("alice", "wrong-one"))
        assert answer.status == 401
    answer = client.get("/v2/auth?service=stratus", headers=basic("alice", "password-1234"))
    assert answer.status == 429
    assert answer.error_codes == ["TOOMANYREQUESTS"]
    assert 0 < int(answer.header("Retry-After")) <= 900
    clock.advance(seconds=901)
    answer = client.get("/v2/auth?service=stratus", headers=basic("alice", "password-1234"))
    assert answer.status == 200


def test_failed_logins_are_throttled_per_source(client: Client, settings) -> None:
    settings(login_failures_per_source=4, login_failures_per_user=100)
    for name in ("u1", "u2", "u3", "u4"):
        client.get("/v2/auth?service=stratus", headers=basic(name, "wrong-one"))
    answer = client.get("/v2/auth?service=stratus", headers=basic(ADMIN_USER, ADMIN_PASSWORD))
    assert answer.status == 429


def test_password_is_stored_with_a_slow_salted_kdf(client: Client, auth) -> None:
    from chalicelib.storage import accounts

    assert auth["scrypt_n"] >= 2**14  # OWASP's minimum for scrypt
    make_user(client, "alice", "same-password")
    make_user(client, "bob", "same-password")
    alice, bob = accounts.get_account("alice"), accounts.get_account("bob")
    assert alice.secret.startswith("scrypt$1024,8,1$")
    assert alice.secret != bob.secret  # salted


def test_tokens_and_passwords_are_never_logged(client: Client, caplog) -> None:
    caplog.set_level("DEBUG")
    token = client.token(ADMIN_USER, ADMIN_PASSWORD, "repository:root/app:pull")
    client.as_bearer(token).get("/v2/root/app/tags/list")
    client.get("/v2/auth?service=stratus", headers=basic(ADMIN_USER, "wrong-password"))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged and ADMIN_PASSWORD not in logged and "wrong-password" not in logged


def test_star_scope_grants_what_the_role_allows(client: Client) -> None:
    """skopeo asks `repository:<name>:*` to delete: a writer gets pull, push, delete, and
    only admins get `*` itself."""
    make_user(client, "alice")
    make_user(client, "bob")
    admin = client.as_basic(ADMIN_USER, ADMIN_PASSWORD)
    grant = admin.put(
        "/api/v1/repository/alice/app/permissions/user/bob", body=b'{"role": "write"}'
    )
    assert grant.status == 200, grant.body
    writer = claims(client.token("bob", "password-1234", "repository:alice/app:*"))
    assert writer["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["delete", "pull", "push"]}
    ]
    owner = claims(client.token("alice", "password-1234", "repository:alice/app:*"))
    assert owner["access"][0]["actions"] == ["*", "delete", "pull", "push"]
