"""The web console: static HTML, JS and CSS from chalicelib/console/, served at `/`.

Assets are served under content-hashed names (`/console/assets/app.<hash>.js`), cacheable
for a year; the page naming them is never cached, so a deploy shows at once. The hashes are
computed once per process, on the first console request: the registry's own routes never
import this module. Every answer carries a strict Content-Security-Policy: the console runs
no inline script or style and talks only to its own origin.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from chalice import Response

ROOT = Path(__file__).resolve().parent.parent / "console"
# The files index.html names as `{{name}}`, served hashed.
SOURCES = ("app.css", "app.js", "icon.svg")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
_PLACEHOLDER = re.compile(r"\{\{([a-z0-9._-]+)\}\}")


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str


@dataclass(frozen=True)
class Bundle:
    index: str  # index.html with the hashed names filled in
    assets: dict[str, Asset]  # hashed name -> asset
    names: dict[str, str]  # source name -> hashed name


def hashed_name(source: str, data: bytes) -> str:
    """`app.js` -> `app.<first 16 hex of its SHA-256>.js`: a new name for new content."""
    stem, dot, suffix = source.rpartition(".")
    return f"{stem}.{hashlib.sha256(data).hexdigest()[:16]}{dot}{suffix}"


def build(root: Path = ROOT) -> Bundle:
    assets: dict[str, Asset] = {}
    names: dict[str, str] = {}
    for source in SOURCES:
        data = (root / source).read_bytes()
        name = hashed_name(source, data)
        names[source] = name
        assets[name] = Asset(data.decode("utf-8"), CONTENT_TYPES[Path(source).suffix])

    def fill(match: re.Match[str]) -> str:
        return f"/console/assets/{names[match.group(1)]}"

    index = _PLACEHOLDER.sub(fill, (root / "index.html").read_text("utf-8"))
    return Bundle(index, assets, names)


@functools.cache
def bundle() -> Bundle:
    return build()


def index() -> Response:
    """The console's page: revalidated on every load, so it names the current assets."""
    return Response(
        body=bundle().index,
        status_code=200,
        headers={
            "Content-Type": CONTENT_TYPES[".html"],
            "Cache-Control": "no-cache",
            **SECURITY_HEADERS,
        },
    )


def asset(path: str) -> Response:
    """`assets/<hashed name>`: the same bytes forever under that name; anything else 404."""
    folder, _, name = path.partition("/")
    found = bundle().assets.get(name) if folder == "assets" else None
    if found is None:
        return Response(
            body="not found\n",
            status_code=404,
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "Cache-Control": "no-store",
                **SECURITY_HEADERS,
            },
        )
    return Response(
        body=found.body,
        status_code=200,
        headers={
            "Content-Type": found.content_type,
            "Cache-Control": IMMUTABLE,
            **SECURITY_HEADERS,
        },
    )
