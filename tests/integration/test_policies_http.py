"""Policies over real HTTP, with real clients: skopeo and the oras SDK meet immutable tags,
auto-prune and quotas on the local registry (auth off: the caller administers everything);
the policies themselves are set with the admin CLI, as an operator does."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import oras.client
import pytest
import requests

from tests.images import image_layout, make_image, random_layer, sha256
from tests.integration.conftest import Registry, admin_cli, skopeo

pytestmark = pytest.mark.integration


def push(registry: Registry, layout: Path, ref: str, *, check: bool = True):
    return skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--retry-times=0",
        f"oci:{layout}:latest",
        f"docker://{registry.host}/{ref}",
        check=check,
    )


def layout(tmp_path: Path, seed: str, size: int = 2000) -> Path:
    return image_layout(tmp_path / seed, make_image([random_layer(size, seed)]))


def tags(registry: Registry, repo: str) -> list[str]:
    answer = requests.get(f"{registry.url}/v2/{repo}/tags/list", timeout=10)
    return sorted(answer.json()["tags"] or [])


def cli(registry: Registry, *args: str) -> dict:
    return json.loads(admin_cli(registry, *args))


def oras_push(registry: Registry, tmp_path: Path, ref: str, content: str):
    """One text file as an artifact (oras-py takes files under the working directory)."""
    name = f"{sha256(content.encode())[7:19]}.txt"
    (tmp_path / name).write_text(content)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    with contextlib.chdir(tmp_path):
        return client.push(target=f"{registry.host}/{ref}", files=[f"{name}:text/plain"])


def test_skopeo_cannot_move_or_delete_an_immutable_tag(registry: Registry, tmp_path: Path) -> None:
    first, second = layout(tmp_path, "imm-a"), layout(tmp_path, "imm-b")
    push(registry, first, "polimm/app:v1.2.0")
    policy = cli(registry, "add-immutability-policy", "polimm/", "--pattern", r"^v[0-9]")["uuid"]
    moved = push(registry, second, "polimm/app:v1.2.0", check=False)
    assert moved.returncode != 0
    assert f"tag v1.2.0 is immutable (policy {policy})" in moved.stderr
    deleted = skopeo(
        "delete", "--tls-verify=false", f"docker://{registry.host}/polimm/app:v1.2.0", check=False
    )
    assert deleted.returncode != 0
    assert "is immutable" in deleted.stderr
    push(registry, first, "polimm/app:v1.2.0")  # the same digest again: no change, accepted
    push(registry, second, "polimm/app:latest")  # not covered: free to move
    push(registry, first, "polimm/app:latest")


@pytest.fixture
def no_oras_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """oras-py answers a 403 as an authentication challenge it cannot meet, and retries any
    failure five times with backoff (2 to 83 seconds): the retries stay, the waits go."""
    import oras.decorator

    monkeypatch.setattr(oras.decorator, "time", SimpleNamespace(sleep=lambda seconds: None))


def digest_of(registry: Registry, repo: str, tag: str) -> str | None:
    answer = requests.head(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None


@pytest.mark.usefixtures("no_oras_backoff")
def test_oras_cannot_overwrite_an_immutable_tag(registry: Registry, tmp_path: Path) -> None:
    assert oras_push(registry, tmp_path, "polimm/artifact:release", "one").status_code == 201
    before = digest_of(registry, "polimm/artifact", "release")
    cli(registry, "add-immutability-policy", "polimm/artifact", "--pattern", "^release$")
    with pytest.raises(ValueError):  # oras-py reports any 403 as failed authentication
        oras_push(registry, tmp_path, "polimm/artifact:release", "two")
    assert digest_of(registry, "polimm/artifact", "release") == before
    assert oras_push(registry, tmp_path, "polimm/artifact:other", "two").status_code == 201


def test_skopeo_pushes_beyond_number_of_tags_prune_the_oldest(
    registry: Registry, tmp_path: Path
) -> None:
    image = layout(tmp_path, "prune")
    push(registry, image, "polprune/app:keep")
    cli(registry, "add-autoprune-policy", "polprune/app", "number_of_tags", "2")
    for tag in ("b", "c"):
        push(registry, image, f"polprune/app:{tag}")
    assert tags(registry, "polprune/app") == ["b", "c"]


def test_prune_preview_lists_what_a_new_policy_would_take(
    registry: Registry, tmp_path: Path
) -> None:
    for n in range(3):
        assert oras_push(registry, tmp_path, f"polpreview/notes:pr-{n}", f"n{n}").status_code == 201
    cli(registry, "add-autoprune-policy", "polpreview/", "number_of_tags", "1", "--pattern", "^pr-")
    preview = cli(registry, "prune-preview", "polpreview/")
    assert preview["dry_run"] is True
    assert sorted(t["tag"] for t in preview["tags"]) == ["pr-0", "pr-1"]
    assert tags(registry, "polpreview/notes") == ["pr-0", "pr-1", "pr-2"]  # nothing went


@pytest.mark.usefixtures("no_oras_backoff")
def test_skopeo_and_oras_pushes_over_the_quota_are_refused(
    registry: Registry, tmp_path: Path
) -> None:
    push(registry, layout(tmp_path, "q-small", 1000), "polquota/app:small")
    used = cli(registry, "usage", "polquota")["used_bytes"]
    assert used > 1000
    assert cli(registry, "usage", "polquota/app")["used_bytes"] == used
    cli(registry, "set-quota", "polquota", str(used + 500), "--reject", "100", "--warning", "50")
    refused = push(registry, layout(tmp_path, "q-big", 20_000), "polquota/app:big", check=False)
    assert refused.returncode != 0
    assert "quota exceeded for namespace polquota: " in refused.stderr
    with pytest.raises(ValueError):  # oras-py reports any 403 as failed authentication
        oras_push(registry, tmp_path, "polquota/notes:big", "x" * 5000)
    assert digest_of(registry, "polquota/notes", "big") is None
    assert oras_push(registry, tmp_path, "polquota/notes:tiny", "ok").status_code == 201
    shown = cli(registry, "quota", "polquota")
    assert shown["quota"]["limit_bytes"] == used + 500
    assert used < shown["used_bytes"] <= used + 500
