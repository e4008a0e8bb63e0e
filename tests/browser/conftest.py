"""Browser tests of the web console: Debian's Chromium driven by Playwright (from PyPI),
against a real local registry with auth on, over HTTP. Playwright never downloads a browser
here: it drives /usr/bin/chromium (`apt-get install chromium`, done by .ci/run)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.images import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Image,
    make_image,
    make_index,
    random_layer,
    sha256,
)
from tests.integration.conftest import ADMIN, ADMIN_PASSWORD, Registry, _start, _stop

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
SBOM_TYPE = "application/spdx+json"
PASSWORD = "password-1234"
MANY_TAGS = 60  # more than the console's page of 50


def chromium() -> str:
    """The Debian browser: CI must have it; elsewhere the browser tests are skipped."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    return path


class Api:
    """Arranges content over HTTP as registry clients do: tokens from /v2/auth."""

    def __init__(self, registry: Registry, user: str, password: str) -> None:
        self.url = registry.url
        self.auth = (user, password)

    def token(self, *scopes: str) -> str:
        answer = requests.get(
            f"{self.url}/v2/auth",
            params=[("service", "stratus"), *(("scope", s) for s in scopes)],
            auth=self.auth,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def bearer(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes)}"}

    def management(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(
            method, f"{self.url}/api/v1/{path}", json=body, auth=self.auth, timeout=10
        )

    def push(self, repo: str, blobs: list[bytes], manifests: list[tuple[str, bytes, str]]) -> None:
        headers = self.bearer(f"repository:{repo}:pull,push")
        with requests.Session() as http:
            http.headers.update(headers)
            for blob in blobs:
                answer = http.post(
                    f"{self.url}/v2/{repo}/blobs/uploads/?digest={sha256(blob)}",
                    data=blob,
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=10,
                )
                assert answer.status_code == 201, answer.text
            for reference, body, media_type in manifests:
                answer = http.put(
                    f"{self.url}/v2/{repo}/manifests/{reference}",
                    data=body,
                    headers={"Content-Type": media_type},
                    timeout=10,
                )
                assert answer.status_code == 201, answer.text


@dataclass
class Content:
    registry: Registry
    index_digest: str
    amd64_digest: str
    sbom_digest: str
    admin: Api
    alice: Api
    bob: Api


def _image(arch: str, size: int) -> Image:
    """An image whose config has what the manifest page shows: created, entrypoint, env,
    labels and history."""
    layer = random_layer(size, f"console-{arch}")
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "created": "2026-01-02T03:04:05Z",
            "config": {
                "Entrypoint": ["/app/server"],
                "Cmd": ["--port", "8080"],
                "Env": ["PATH=/usr/bin", "MODE=production"],
                "Labels": {"org.opencontainers.image.source": "https://example.com/app"},
            },
            "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(layer))]},
            "history": [{"created": "2026-01-02T03:04:05Z", "created_by": "COPY app /app"}],
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}],
    }
    return Image(json.dumps(manifest).encode(), config, [layer])


def _images() -> tuple[list[Image], bytes]:
    images = [_image("amd64", 3000), _image("arm64", 4000)]
    return images, make_index(images, [("linux", "amd64"), ("linux", "arm64")])


def _sbom(subject: bytes) -> tuple[bytes, bytes]:
    document = b'{"spdxVersion":"SPDX-2.3","name":"app"}'
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SBOM_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha256(b"{}"),
                "size": 2,
                "data": base64.b64encode(b"{}").decode(),
            },
            "layers": [{"mediaType": SBOM_TYPE, "digest": sha256(document), "size": len(document)}],
            "subject": {"mediaType": OCI_INDEX, "digest": sha256(subject), "size": len(subject)},
            "annotations": {"org.opencontainers.image.title": "sbom.spdx.json"},
        }
    ).encode()
    return document, manifest


@pytest.fixture(scope="session")
def content(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Content]:
    """A registry with auth on and: alice owning the acme organization; bob, a user who may
    only read acme/app; acme/app with a two-platform index, its SBOM, a tag expiring in two
    days and tags to delete; acme/many with more tags than a page; acme/public, public."""
    chromium()  # skip (or fail in CI) before starting anything
    tmp = tmp_path_factory.mktemp("console")
    registry = _start(
        tmp,
        "console",
        {
            "STRATUS_AUTH": "1",
            "STRATUS_ADMIN_USER": ADMIN,
            "STRATUS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "STRATUS_SIGNING_KEY_FILE": str(tmp / "signing-key.pem"),
        },
    )
    try:
        admin = Api(registry, ADMIN, ADMIN_PASSWORD)
        for user in ("alice", "bob"):
            made = admin.management("POST", "users", {"username": user, "password": PASSWORD})
            assert made.status_code == 201, made.text
        made = admin.management("POST", "organizations", {"name": "acme", "owners": ["alice"]})
        assert made.status_code == 201, made.text
        alice = Api(registry, "alice", PASSWORD)
        images, index = _images()
        document, sbom = _sbom(index)
        blobs = [blob for image in images for blob in (image.config, *image.layers)]
        expiring = make_image(
            [random_layer(500, "ci")], labels={"quay.expires-after": "2d"}, architecture="amd64"
        )
        alice.push(
            "acme/app",
            [*blobs, document, *expiring.layers, expiring.config],
            [
                *[(image.digest, image.manifest, OCI_MANIFEST) for image in images],
                ("v1", index, OCI_INDEX),
                ("latest", index, OCI_INDEX),
                ("to-delete", images[0].manifest, OCI_MANIFEST),
                (sha256(sbom), sbom, OCI_MANIFEST),
                ("ci-1", expiring.manifest, OCI_MANIFEST),
            ],
        )
        alice.push(
            "acme/many",
            [images[0].config, *images[0].layers],
            [(f"t{n:04d}", images[0].manifest, OCI_MANIFEST) for n in range(MANY_TAGS)],
        )
        alice.push(
            "acme/public",
            [images[1].config, *images[1].layers],
            [("stable", images[1].manifest, OCI_MANIFEST)],
        )
        visible = alice.management(
            "POST", "repository/acme/public/changevisibility", {"visibility": "public"}
        )
        assert visible.status_code == 200, visible.text
        granted = alice.management(
            "PUT", "repository/acme/app/permissions/user/bob", {"role": "read"}
        )
        assert granted.status_code == 200, granted.text
        yield Content(
            registry,
            sha256(index),
            images[0].digest,
            sha256(sbom),
            admin,
            alice,
            Api(registry, "bob", PASSWORD),
        )
    finally:
        _stop(registry)


@pytest.fixture(scope="session")
def browser(content: Content) -> Iterator[Any]:
    """Chromium, closed before the registry stops (its keep-alive connections would hold
    the registry's shutdown)."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, content: Content, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage); a screenshot of how it ended is kept under
    .artifacts/screenshots."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="light")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, errors


def sign_in(page: Any, content: Content, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{content.registry.url}/")
    page.click("#signin-open")
    page.fill("#signin-user", user)
    page.fill("#signin-password", password)
    page.click("#signin-submit")
    page.wait_for_selector(f"#who-name:text-is('{user}')")
