"""AWS calls per operation: every registry operation once, in process on moto, counted at
botocore (chalicelib/storage/calls.py); bench/report.py sets them beside the minimum the
data model allows.

    python -m bench calls
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import report

LAYERS = 5  # a typical image: five layers and a config


@dataclass
class Counted:
    calls: int
    detail: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)


def snapshot() -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """The calls and items counted so far (counting starts with the first snapshot)."""
    from chalicelib.storage import calls

    calls.install(origins=True)
    return Counter(calls.counter), Counter(calls.items)


def since(before: tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]) -> Counted:
    """The calls made since `before`, by "service.Operation"."""
    now = snapshot()
    detail, units = (
        {f"{s}.{o}": n - then[(s, o)] for (s, o), n in current.items() if n - then[(s, o)]}
        for current, then in zip(now, before, strict=True)
    )
    return Counted(sum(detail.values()), detail, units)


def _count(client: Any, method: str, path: str, **kw: Any) -> tuple[Counted, Any]:
    before = snapshot()
    answer = client.request(method, path, **kw)
    return since(before), answer


def _add(total: Counted, part: Counted) -> None:
    total.calls += part.calls
    for key, value in part.detail.items():
        total.detail[key] = total.detail.get(key, 0) + value
    for key, value in part.units.items():
        total.units[key] = total.units.get(key, 0) + value


def count_calls(layers: int) -> dict[str, Counted]:
    """Every operation once, in process on moto, counted at botocore."""
    from moto import mock_aws

    from tests.client import Client
    from tests.images import OCI_MANIFEST, make_image, random_layer, sha256
    from tests.referrers_fixtures import referrer_manifest, subject_manifest

    snapshot()
    results: dict[str, Counted] = {}
    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        from app import app

        client = Client(app)
        image = make_image([random_layer(4096, f"bench-{i}") for i in range(layers)])
        push = Counted(0)
        for blob in (image.config, *image.layers):
            digest = sha256(blob)
            for method, path, kw in (
                ("HEAD", f"/v2/bench/app/blobs/{digest}", {}),
                ("POST", "/v2/bench/app/blobs/uploads/", {}),
            ):
                counted, answer = _count(client, method, path, **kw)
                _add(push, counted)
            location = answer.header("Location")
            counted, answer = _count(
                client,
                "PUT",
                f"{location}{'&' if '?' in location else '?'}digest={digest}",
                body=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert answer.status == 201, answer.body
            _add(push, counted)
        counted, answer = _count(
            client,
            "PUT",
            "/v2/bench/app/manifests/v1",
            body=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert answer.status == 201, answer.body
        manifest_put = counted
        _add(push, counted)
        results["full push"] = push
        results["manifest PUT by tag"] = manifest_put

        pull = Counted(0)
        for method, path in (
            ("GET", "/v2/bench/app/manifests/v1"),
            *(("GET", f"/v2/bench/app/blobs/{sha256(b)}") for b in (image.config, *image.layers)),
        ):
            counted, _ = _count(client, method, path)
            _add(pull, counted)
        results["full pull"] = pull

        subject = subject_manifest("bench")
        client.must_push("bench/app", "subject", subject)
        client.must_push("bench/app", "sig", referrer_manifest(subject, "application/x-sig"))
        single = {
            "GET /v2/ (auth off)": ("GET", "/v2/"),
            "manifest GET by tag": ("GET", "/v2/bench/app/manifests/v1"),
            "manifest HEAD by tag": ("HEAD", "/v2/bench/app/manifests/v1"),
            "manifest GET by digest": ("GET", f"/v2/bench/app/manifests/{image.digest}"),
            "manifest HEAD by digest": ("HEAD", f"/v2/bench/app/manifests/{image.digest}"),
            "blob HEAD": ("HEAD", f"/v2/bench/app/blobs/{sha256(image.layers[0])}"),
            "blob GET (307)": ("GET", f"/v2/bench/app/blobs/{sha256(image.layers[0])}"),
            "tags list": ("GET", "/v2/bench/app/tags/list"),
            "catalog": ("GET", "/v2/_catalog"),
            "referrers list": ("GET", f"/v2/bench/app/referrers/{sha256(subject)}"),
        }
        for label, (method, path) in single.items():
            counted, answer = _count(client, method, path)
            assert answer.status < 400, (label, answer.body)
            results[label] = counted

        results.update(_count_deletes(client))
        results.update(_count_auth(client))
    return results


def _count_deletes(client: Any) -> dict[str, Counted]:
    """A tag, then its manifest (one more tag on it), deleted."""
    from tests.images import make_image, random_layer

    image = make_image([random_layer(1024, "bench-delete")])
    for blob in (image.config, *image.layers):
        client.push_blob("bench/gone", blob)
    for tag in ("doomed", "also"):
        client.must_push("bench/gone", tag, image.manifest)
    tag_delete, answer = _count(client, "DELETE", "/v2/bench/gone/manifests/doomed")
    assert answer.status == 202, answer.body
    manifest_delete, answer = _count(client, "DELETE", f"/v2/bench/gone/manifests/{image.digest}")
    assert answer.status == 202, answer.body
    return {"tag DELETE": tag_delete, "manifest DELETE (1 tag left)": manifest_delete}


def _count_auth(client: Any) -> dict[str, Counted]:
    import dataclasses

    from chalicelib import config
    from chalicelib.auth import keys

    saved = config.settings
    key_file = Path(tempfile.mkdtemp()) / "key.pem"
    config.settings = dataclasses.replace(
        saved,
        auth=True,
        admin_user="bench",
        admin_password="bench-password",
        signing_key_file=str(key_file),
    )
    keys.forget()
    try:
        client.token("bench", "bench-password")  # creates the bootstrap admin
        import base64

        basic = "Basic " + base64.b64encode(b"bench:bench-password").decode()
        counted, answer = _count(
            client,
            "GET",
            "/v2/auth?service=stratus&scope=repository:bench/app:pull",
            headers={"Authorization": basic},
        )
        token = answer.json()["token"]
        holder = client.as_bearer(token)
        version, _ = _count(holder, "GET", "/v2/")
        by_tag, answer = _count(holder, "GET", "/v2/bench/app/manifests/v1")
        assert answer.status == 200
        return {
            "token (Basic, 1 scope)": counted,
            "GET /v2/ (token)": version,
            "manifest GET by tag (token)": by_tag,
        }
    finally:
        config.settings = saved
        keys.forget()


def measure(layers: int = LAYERS) -> dict[str, Any]:
    """{"layers": n, "operations": {label: {"calls", "detail", "units"}}}.

    Counted with the read cache off, so each figure is what a request costs in a container
    that has not read the item within the bound (docs/scale.md), and without the audit
    entries of pulls (`STRATUS_AUDIT_PULLS`), which the report states on their own."""
    import dataclasses

    from chalicelib import config

    saved = config.settings
    config.settings = dataclasses.replace(saved, read_cache_seconds=0, audit_pulls=False)
    try:
        counted = count_calls(layers)
    finally:
        config.settings = saved
    return {"layers": layers, "operations": {k: asdict(v) for k, v in counted.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="(the same: calls are exact)")
    parser.parse_args()
    text = report.calls_section(measure())
    report.write_section("calls", text)
    print(text)
