"""The web console's static serving: hashed immutable assets, an uncached page naming them,
and the security headers on every answer."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.endpoints import console
from tests.client import Client

ROOT = Path(__file__).resolve().parents[2]


def asset_paths(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/console/assets/[^"]+)"', page)


def test_hashed_name_is_the_content_hash() -> None:
    data = b"console.log(1)"
    expected = hashlib.sha256(data).hexdigest()[:16]
    assert console.hashed_name("app.js", data) == f"app.{expected}.js"
    assert console.hashed_name("app.js", data + b"\n") != console.hashed_name("app.js", data)


def test_build_fills_every_placeholder_with_a_hashed_asset(tmp_path: Path) -> None:
    for source in console.SOURCES:
        (tmp_path / source).write_text(f"/* {source} */")
    (tmp_path / "index.html").write_text('<script src="{{app.js}}"></script>{{app.css}}')
    built = console.build(tmp_path)
    js = console.hashed_name("app.js", b"/* app.js */")
    assert built.index.startswith(f'<script src="/console/assets/{js}">')
    assert "{{" not in built.index
    assert built.assets[js].body == "/* app.js */"
    assert built.assets[js].content_type.startswith("text/javascript")


def test_asset_changes_get_a_new_name(tmp_path: Path) -> None:
    for source in console.SOURCES:
        (tmp_path / source).write_text("one")
    (tmp_path / "index.html").write_text("{{app.js}}")
    first = console.build(tmp_path).index
    (tmp_path / "app.js").write_text("two")
    assert console.build(tmp_path).index != first


def test_console_page_is_served_at_root_uncached_with_security_headers(client: Client) -> None:
    answer = client.get("/")
    assert answer.status == 200
    assert answer.header("Content-Type") == "text/html; charset=utf-8"
    assert answer.header("Cache-Control") == "no-cache"
    assert answer.header("Content-Security-Policy") == console.CSP
    assert answer.header("X-Content-Type-Options") == "nosniff"
    assert answer.header("Referrer-Policy") == "no-referrer"
    assert "frame-ancestors 'none'" in console.CSP
    assert "'unsafe-inline'" not in console.CSP
    page = answer.body.decode()
    assert len(asset_paths(page)) >= 3


def test_console_page_has_no_inline_script_or_style(client: Client) -> None:
    page = client.get("/").body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert "<style" not in page and "style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    assert "http://" not in page and "https://" not in page  # nothing from the internet


def test_console_assets_are_immutable_under_their_hashed_names(client: Client) -> None:
    for path in asset_paths(client.get("/").body.decode()):
        answer = client.get(path)
        assert answer.status == 200, path
        assert answer.header("Cache-Control") == "public, max-age=31536000, immutable"
        assert answer.header("X-Content-Type-Options") == "nosniff"
        name = path.rsplit("/", 1)[1]
        stem, digest, suffix = name.rsplit(".", 2)
        assert hashlib.sha256(answer.body).hexdigest()[:16] == digest
        assert (ROOT / "chalicelib/console" / f"{stem}.{suffix}").read_bytes() == answer.body


@pytest.mark.parametrize(
    "path", ["/console/assets/app.js", "/console/assets/app.0000000000000000.js", "/console/x"]
)
def test_unknown_console_asset_is_404_and_not_cached(client: Client, path: str) -> None:
    answer = client.get(path)
    assert answer.status == 404
    assert answer.header("Cache-Control") == "no-store"
    assert answer.header("Content-Security-Policy") == console.CSP


def test_console_is_not_imported_by_registry_requests() -> None:
    """The Lambda cold start of /v2 requests pays nothing for the console."""
    code = (
        "import sys, app\n"
        "from chalicelib.endpoints import routes\n"
        "assert 'chalicelib.endpoints.console' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_console_script_uses_only_its_own_origin() -> None:
    script = (ROOT / "chalicelib/console/app.js").read_text()
    assert not re.search(r"https?://", script)
    assert "innerHTML" not in script and "eval(" not in script
    assert "localStorage" not in script  # tokens live in sessionStorage only


def test_console_routes_are_declared_for_api_gateway() -> None:
    """API Gateway gets a resource for the page and for the assets (GET only)."""
    from app import app

    assert set(app.routes["/"]) == {"GET"}
    assert set(app.routes["/console/{proxy+}"]) == {"GET"}
