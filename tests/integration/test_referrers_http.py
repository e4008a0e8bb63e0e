"""Referrers over HTTP: artifacts attached with the oras SDK, listed, filtered, paged, and
the tag-schema fallback with FEATURE_REFERRERS_API off (distribution-spec v1.1)."""

from __future__ import annotations

import json
from pathlib import Path

import oras.client
import oras.oci
import pytest
import requests

from tests.images import OCI_INDEX, OCI_MANIFEST, sha256
from tests.integration.conftest import SMALL_PAGE, Registry
from tests.referrers_fixtures import referrer_manifest, subject_manifest

pytestmark = pytest.mark.integration

SBOM = "application/vnd.example.sbom.v1+json"
SIG = "application/vnd.example.signature.v1+json"


def put_manifest(registry: Registry, repo: str, ref: str, body: bytes, media_type: str):
    answer = requests.put(
        f"{registry.url}/v2/{repo}/manifests/{ref}",
        data=body,
        headers={"Content-Type": media_type},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer


def list_referrers(registry: Registry, repo: str, subject: str, query: str = ""):
    return requests.get(f"{registry.url}/v2/{repo}/referrers/{subject}{query}", timeout=10)


def test_oras_attaches_artifacts_that_the_referrers_api_lists(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    subject = subject_manifest("oras-subject")
    put_manifest(registry, "ref/oras", "v1", subject, OCI_MANIFEST)
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    attached = oras.oci.Subject(OCI_MANIFEST, sha256(subject), len(subject))
    for artifact_type, payload in ((SBOM, "sbom.json"), (SIG, "sig.json")):
        Path(payload).write_text(json.dumps({"payload": payload}))
        Path("config.json").write_text("{}")
        answer = client.push(
            target=f"{registry.host}/ref/oras:{payload.split('.')[0]}",
            files=[f"{payload}:application/json"],
            manifest_config=f"config.json:{artifact_type}",
            manifest_annotations={"org.example.kind": payload},
            subject=attached,
        )
        assert answer.status_code == 201
        assert answer.headers["OCI-Subject"] == sha256(subject)

    listed = list_referrers(registry, "ref/oras", sha256(subject))
    assert listed.status_code == 200
    assert listed.headers["Content-Type"] == OCI_INDEX
    manifests = listed.json()["manifests"]
    assert sorted(d["artifactType"] for d in manifests) == sorted([SBOM, SIG])
    assert {d["annotations"]["org.example.kind"] for d in manifests} == {"sbom.json", "sig.json"}

    filtered = list_referrers(registry, "ref/oras", sha256(subject), f"?artifactType={SIG}")
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["artifactType"] for d in filtered.json()["manifests"]] == [SIG]


def test_referrer_pushed_before_its_subject_is_listed_over_http(registry: Registry) -> None:
    subject = subject_manifest("http-later")
    referrer = referrer_manifest(subject, SBOM)
    answer = put_manifest(registry, "ref/early", sha256(referrer), referrer, OCI_MANIFEST)
    assert answer.headers["OCI-Subject"] == sha256(subject)
    listed = list_referrers(registry, "ref/early", sha256(subject)).json()["manifests"]
    assert [d["digest"] for d in listed] == [sha256(referrer)]


def test_referrers_are_paged_with_link_over_http(small_page_registry: Registry) -> None:
    subject = subject_manifest("paged")
    put_manifest(small_page_registry, "ref/paged", "v1", subject, OCI_MANIFEST)
    pushed = set()
    for i in range(2 * SMALL_PAGE + 3):
        body = referrer_manifest(subject, SBOM, {"i": str(i)})
        put_manifest(small_page_registry, "ref/paged", sha256(body), body, OCI_MANIFEST)
        pushed.add(sha256(body))
    seen: list[str] = []
    url = f"{small_page_registry.url}/v2/ref/paged/referrers/{sha256(subject)}"
    pages = 0
    while url:
        answer = requests.get(url, timeout=10)
        seen += [d["digest"] for d in answer.json()["manifests"]]
        pages += 1
        url = answer.links.get("next", {}).get("url")
        if url:
            url = small_page_registry.url + url
    assert pages == 3
    assert sorted(seen) == sorted(pushed)


def test_deleting_a_referrer_over_http_removes_it(registry: Registry) -> None:
    subject = subject_manifest("http-delete")
    put_manifest(registry, "ref/delete", "v1", subject, OCI_MANIFEST)
    referrer = referrer_manifest(subject, SBOM)
    put_manifest(registry, "ref/delete", sha256(referrer), referrer, OCI_MANIFEST)
    gone = requests.delete(f"{registry.url}/v2/ref/delete/manifests/{sha256(referrer)}", timeout=10)
    assert gone.status_code == 202
    assert list_referrers(registry, "ref/delete", sha256(subject)).json()["manifests"] == []


def test_with_the_feature_off_clients_fall_back_to_the_tag_schema(
    referrers_off_registry: Registry,
) -> None:
    """What `oras attach --distribution-spec v1.1-referrers-tag` does, step by step."""
    registry = referrers_off_registry
    subject = subject_manifest("fallback")
    put_manifest(registry, "ref/fallback", "v1", subject, OCI_MANIFEST)
    tag = sha256(subject).replace(":", "-")
    index: dict = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    for artifact_type in (SBOM, SIG):
        referrer = referrer_manifest(subject, artifact_type, {"t": artifact_type})
        pushed = put_manifest(registry, "ref/fallback", sha256(referrer), referrer, OCI_MANIFEST)
        assert "OCI-Subject" not in pushed.headers  # so the client maintains the tag itself
        assert list_referrers(registry, "ref/fallback", sha256(subject)).status_code == 404
        current = requests.get(f"{registry.url}/v2/ref/fallback/manifests/{tag}", timeout=10)
        if current.status_code == 200:
            index = current.json()
        index["manifests"].append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(referrer),
                "size": len(referrer),
                "artifactType": artifact_type,
                "annotations": {"t": artifact_type},
            }
        )
        put_manifest(registry, "ref/fallback", tag, json.dumps(index).encode(), OCI_INDEX)
    pulled = requests.get(f"{registry.url}/v2/ref/fallback/manifests/{tag}", timeout=10)
    assert [d["artifactType"] for d in pulled.json()["manifests"]] == [SBOM, SIG]
    assert sha256(pulled.content) == pulled.headers["Docker-Content-Digest"]
