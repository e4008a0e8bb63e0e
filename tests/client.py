"""An in-process HTTP client: requests become API Gateway events for the real app.

It goes through `chalicelib.local.events`, the same translation the local server uses, so
unit tests exercise the Lambda code path (multi-value headers, base64 bodies) without
sockets.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.local import events
from tests.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

Headers = dict[str, str] | list[tuple[str, str]] | None


class Response(events.HttpResponse):
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_codes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]


class Client:
    def __init__(self, app: Any, authorization: str | None = None) -> None:
        self.app = app
        self.authorization = authorization

    def request(
        self, method: str, path: str, *, headers: Headers = None, body: bytes = b""
    ) -> Response:
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if self.authorization and not any(k.lower() == "authorization" for k, _ in pairs):
            pairs.append(("Authorization", self.authorization))
        if not any(k.lower() == "accept" for k, _ in pairs):
            # What curl and requests send; old Docker's missing Accept is `Accept: ""` here.
            pairs.append(("Accept", "*/*"))
        raw = events.invoke(self.app, method, path, pairs, body)
        return Response(raw.status, raw.headers, raw.body)

    # -- auth -----------------------------------------------------------------------------

    def token(self, user: str | None, password: str = "", *scopes: str) -> str:
        """A token from `/v2/auth` (Basic credentials, or anonymous with `user=None`)."""
        import base64
        from urllib.parse import urlencode

        query = urlencode([("service", "stratus"), *(("scope", s) for s in scopes)])
        headers = {}
        if user is not None:
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        answer = self.get(f"/v2/auth?{query}", headers=headers)
        assert answer.status == 200, answer.body
        return answer.json()["token"]

    def as_bearer(self, token: str) -> Client:
        return Client(self.app, f"Bearer {token}")

    def login(self, user: str | None, password: str = "", *scopes: str) -> Client:
        """This client with a token for `scopes`, as a registry client would hold one."""
        return self.as_bearer(self.token(user, password, *scopes))

    def as_basic(self, user: str, password: str) -> Client:
        import base64

        return Client(self.app, "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def head(self, path: str, **kw: Any) -> Response:
        return self.request("HEAD", path, **kw)

    def post(self, path: str, **kw: Any) -> Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    # -- conveniences for arranging state through the API itself ---------------------------

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        answer = self.post(
            f"/v2/{repo}/blobs/uploads/?digest={digest}",
            headers={"Content-Type": "application/octet-stream"},
            body=data,
        )
        assert answer.status == 201, answer.body
        return digest

    def push_manifest(
        self, repo: str, reference: str, body: bytes | dict, media_type: str | None = None
    ) -> Response:
        if isinstance(body, dict):
            media_type = media_type or body.get("mediaType")
            body = json.dumps(body).encode()
        return self.put(
            f"/v2/{repo}/manifests/{reference}",
            headers={"Content-Type": media_type or "application/vnd.oci.image.manifest.v1+json"},
            body=body,
        )

    def image_document(
        self,
        repo: str,
        *,
        seed: str = "x",
        layers: tuple[bytes, ...] = (),
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        docker: bool = False,
    ) -> dict:
        """Push a config (with `labels`) and `layers`, and return an image manifest document
        that references them (OCI, or Docker schema 2 with `docker`)."""
        config = {"architecture": "amd64", "os": "linux", "seed": seed}
        if labels:
            config["config"] = {"Labels": labels}
        config_blob = json.dumps(config).encode()
        for blob in (config_blob, *layers):
            self.push_blob(repo, blob)

        def descriptor(media_type: str, blob: bytes) -> dict:
            return {"mediaType": media_type, "digest": sha256(blob), "size": len(blob)}

        doc: dict = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, config_blob),
            "layers": [descriptor(DOCKER_LAYER if docker else OCI_LAYER_GZIP, b) for b in layers],
        }
        if annotations:
            doc["annotations"] = annotations
        return doc

    def must_push(
        self, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> Response:
        """Push a manifest that the test needs stored (fails the test otherwise)."""
        answer = self.push_manifest(repo, reference, body, media_type)
        assert answer.status == 201, answer.body
        return answer


def follow_blob(client: Client, repo: str, digest: str) -> bytes:
    """Pull a blob as a client does: GET, then fetch the presigned URL it redirects to."""
    import requests

    answer = client.get(f"/v2/{repo}/blobs/{digest}")
    assert answer.status == 307, answer.body
    fetched = requests.get(answer.header("Location") or "", timeout=30)
    assert fetched.status_code == 200
    return fetched.content
