"""The package as Lambda runs it: the zip infra/package.py builds with `chalice package`,
unzipped into an empty directory, its handlers run in fresh interpreters that have only the
zip's contents and the runtime's own boto3 (no dev dependency), against a moto server
holding the stage's stack and secrets, auth on.

Driven with what AWS sends them: API Gateway proxy events with base64 bodies (the API's
binary media types are `*/*`), a schedule event and an asynchronous invocation. A
dependency missing from requirements.txt, or an import only the dev venv satisfies, fails
here before it fails in Lambda.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests import lambda_package as lp
from tests import servers
from tests.images import OCI_MANIFEST, Image, make_image, random_layer, sha256

ADMIN, PASSWORD = "admin", "admin-password-1"
SERVICE = "stratus-dev"  # STRATUS_AUTH_SERVICE in the dev stage


@dataclass
class Stage:
    endpoint: str
    outputs: dict[str, str]

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=lp.REGION
        ).client(service, endpoint_url=self.endpoint)


@dataclass
class Package:
    sam: dict[str, Any]
    task_root: Path
    python: Path


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    tmp = tmp_path_factory.mktemp("package")
    sam = lp.build_package(tmp / "out")
    return Package(sam, lp.unzip(tmp / "out" / "deployment.zip", tmp / "task"), lp.lambda_python())


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    moto = servers.start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield Stage(moto.url, lp.stage_on_moto(moto.url, PASSWORD))
    finally:
        moto.stop()


class _Invocations(BaseHTTPRequestHandler):
    """Lambda's Invoke API, answering 202 as it does for InvocationType=Event."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


Invokes = tuple[str, list[tuple[str, bytes]]]  # the capturing endpoint, what it received


@pytest.fixture(scope="module")
def lambda_invokes() -> Iterator[Invokes]:
    """Where the API function's asynchronous invocations go, and what they carried."""
    received: list[tuple[str, bytes]] = []
    handler = type("Invocations", (_Invocations,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def _container(package: Package, stage: Stage, logical_id: str, **env: str) -> lp.Container:
    base = lp.function_environment(package.sam, logical_id, stage.outputs, stage.endpoint)
    return lp.Container(package.python, package.task_root, {**base, **env})


@pytest.fixture(scope="module")
def api(package: Package, stage: Stage, lambda_invokes: Invokes) -> Iterator[lp.Container]:
    """The API function. Every direct upload is verified asynchronously here (the stage's
    threshold is 512 MiB), and its Lambda invocations are captured."""
    container = _container(
        package,
        stage,
        "APIHandler",
        STRATUS_SYNC_VERIFY_BYTES="0",
        AWS_ENDPOINT_URL_LAMBDA=lambda_invokes[0],
    )
    yield container
    container.close()


@dataclass
class Registry:
    """HTTP through API Gateway to the packaged API function."""

    api: lp.Container
    token: str = ""
    logs: list[str] = field(default_factory=list)

    def call(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> lp.HttpAnswer:
        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        invocation = self.api.invoke(lp.proxy_event(method, target, sent, body))
        assert invocation.error is None, invocation.error
        self.logs.extend(invocation.logs)
        return lp.http_answer(invocation.result)

    def login(self, scope: str) -> None:
        basic = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
        self.token = ""
        answer = self.call(
            "GET",
            f"/v2/auth?service={SERVICE}&scope={scope}",
            headers={"Authorization": "Basic " + basic},
        )
        assert answer.status == 200, answer.body
        self.token = json.loads(answer.body)["token"]

    def push_blob(self, repository: str, data: bytes) -> None:
        digest = sha256(data)
        answer = self.call(
            "POST",
            f"/v2/{repository}/blobs/uploads/?digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert answer.status == 201, answer.body
        assert answer.headers["docker-content-digest"] == digest

    def push_image(self, repository: str, tag: str, seed: str) -> Image:
        image = make_image([random_layer(4096, seed)])
        for blob in (image.config, *image.layers):
            self.push_blob(repository, blob)
        answer = self.call(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            image.manifest,
            {"Content-Type": OCI_MANIFEST},
        )
        assert answer.status == 201, answer.body
        return image


@pytest.fixture
def registry(api: lp.Container) -> Registry:
    registry = Registry(api)
    registry.login("repository:demo/app:pull,push")
    return registry


def test_packaged_api_pushes_and_pulls_with_auth_on(api: lp.Container) -> None:
    anonymous = Registry(api)
    challenge = anonymous.call("GET", "/v2/")
    assert challenge.status == 401
    assert 'service="stratus-dev"' in challenge.headers["www-authenticate"]
    refused = anonymous.call("POST", "/v2/demo/app/blobs/uploads/?digest=" + sha256(b"x"), b"x")
    assert refused.status == 401

    registry = Registry(api)
    registry.login("repository:demo/app:pull,push")
    image = registry.push_image("demo/app", "v1", "pushed")
    pulled = registry.call("GET", "/v2/demo/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled.status == 200
    assert pulled.body == image.manifest
    layer = image.layers[0]
    redirect = registry.call("GET", f"/v2/demo/app/blobs/{sha256(layer)}")
    assert redirect.status == 307
    with urllib.request.urlopen(redirect.headers["location"], timeout=30) as presigned:
        assert presigned.read() == layer


def test_packaged_api_logs_one_line_per_request(registry: Registry) -> None:
    registry.push_image("demo/app", "logged", "logged")
    registry.logs.clear()
    registry.call("GET", "/v2/demo/app/manifests/logged", headers={"Accept": OCI_MANIFEST})
    lines = [json.loads(line) for line in registry.logs if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert [(r["operation"], r["status"]) for r in requests] == [("manifests.get", 200)]


def test_package_leaves_out_the_cli_push_client_and_local_mode(package: Package) -> None:
    shipped = {str(f.relative_to(package.task_root)) for f in package.task_root.rglob("*")}
    assert "app.py" in shipped
    assert "chalicelib/endpoints/routes.py" in shipped
    assert "chalicelib/admin.py" not in shipped
    assert "chalicelib/policies/cli.py" not in shipped
    assert "chalicelib/console/index.html" in shipped  # the web console is served by Lambda
    assert "chalicelib/push" not in shipped
    assert "chalicelib/local" not in shipped
    assert [f for f in shipped if "__pycache__" in f or f.endswith(".pyc")] == []


def test_package_runs_on_its_contents_with_its_own_pinned_sdk(
    package: Package, api: lp.Container, registry: Registry
) -> None:
    registry.push_image("demo/app", "imports", "imports")  # a token, a push: most code paths
    task, runtime = str(package.task_root) + "/", str(package.python.parents[1]) + "/"
    stdlib = sys.base_prefix + "/lib/"

    def allowed(path: str) -> bool:
        standard = path.startswith(stdlib) and "/site-packages/" not in path
        return standard or path.startswith((task, runtime))

    modules = api.modules()
    assert [m for m in modules if not allowed(m)] == []
    by_name = {Path(m).parent.name: m for m in modules if m.endswith("/__init__.py")}
    bundled_packages = (
        *("chalicelib", "chalice", "pynamodb", "jwt", "cryptography", "aws_xray_sdk"),
        *("boto3", "botocore", "s3transfer"),  # pinned in requirements.txt, not the runtime's
    )
    for bundled in bundled_packages:
        assert by_name[bundled].startswith(task), bundled


def test_packaged_cleanup_aborts_abandoned_uploads_on_its_schedule(
    package: Package, stage: Stage, registry: Registry
) -> None:
    started = registry.call("POST", "/v2/demo/app/blobs/uploads/")
    assert started.status == 202
    cleanup = _container(package, stage, "Cleanup", STRATUS_UPLOAD_TTL_SECONDS="0")
    try:
        invocation = cleanup.invoke(
            {
                "version": "0",
                "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": lp.ACCOUNT,
                "time": "2026-01-01T00:00:00Z",
                "region": lp.REGION,
                "resources": [
                    f"arn:aws:events:{lp.REGION}:{lp.ACCOUNT}:rule/stratus-dev-cleanup-event"
                ],
                "detail": {},
            }
        )
    finally:
        cleanup.close()
    assert invocation.error is None, invocation.error
    assert invocation.result["uploads_aborted"] >= 1
    assert invocation.result["errors"] == 0
    assert registry.call("GET", started.headers["location"]).status == 404


def test_packaged_verify_upload_completes_an_asynchronous_direct_upload(
    package: Package, stage: Stage, registry: Registry, lambda_invokes: Invokes
) -> None:
    data = random_layer(8192, "direct")
    digest = sha256(data)
    started = registry.call("POST", f"/v2/demo/app/_stratus/direct/uploads/?size={len(data)}")
    assert started.status == 201, started.body
    location = json.loads(started.body)["location"]
    (part,) = json.loads(registry.call("GET", location).body)["parts"]
    put = urllib.request.Request(
        part["url"], data, {"Content-Type": "application/octet-stream"}, method="PUT"
    )
    with urllib.request.urlopen(put, timeout=30) as answer:
        etag = answer.headers["ETag"]
    body = json.dumps({"parts": [{"number": 1, "etag": etag}]}).encode()
    del lambda_invokes[1][:]
    completed = registry.call("PUT", f"{location}?digest={digest}", body)
    assert completed.status == 202, completed.body
    assert registry.call("GET", location).status == 202  # still verifying
    ((path, payload),) = lambda_invokes[1]
    assert "/functions/stratus-dev-verify_upload/invocations" in path

    verifier = _container(package, stage, "VerifyUpload")
    try:
        invocation = verifier.invoke(json.loads(payload))
    finally:
        verifier.close()
    assert invocation.error is None, invocation.error
    done = registry.call("GET", location)
    assert done.status == 201, done.body
    assert done.headers["docker-content-digest"] == digest
    assert registry.call("HEAD", f"/v2/demo/app/blobs/{digest}").status == 200
