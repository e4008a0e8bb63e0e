"""Referrers: end-12a/end-12b, `OCI-Subject`, filters, paging, the feature switch.

distribution-spec "Pushing Manifests with Subject", "Listing Referrers", "Referrers Tag
Schema", "Enabling the Referrers API"; Quay 16.4.
"""

from __future__ import annotations

import json

from tests.client import Client
from tests.images import OCI_INDEX, OCI_MANIFEST, sha256
from tests.referrers_fixtures import (
    referrer_index,
    referrer_manifest,
    subject_manifest,
)

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def referrers(client: Client, repo: str, subject: bytes, query: str = ""):
    answer = client.get(f"/v2/{repo}/referrers/{sha256(subject)}{query}")
    assert answer.status == 200, answer.body
    assert answer.header("Content-Type") == OCI_INDEX
    index = answer.json()
    assert (index["schemaVersion"], index["mediaType"]) == (2, OCI_INDEX)
    return answer, index["manifests"]


def test_push_with_subject_answers_oci_subject_header(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    answer = client.must_push("org/app", "sbom", referrer_manifest(subject, SBOM))
    assert answer.header("OCI-Subject") == sha256(subject)


def test_push_without_subject_has_no_oci_subject_header(client: Client) -> None:
    assert client.must_push("org/app", "v1", subject_manifest()).header("OCI-Subject") is None


def test_referrers_lists_descriptors_with_artifact_type_and_annotations(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    sbom = referrer_manifest(subject, SBOM, {"org.example.format": "spdx"})
    sig = referrer_manifest(subject, SIG, {"org.example.key": "abc"})
    for body in (sbom, sig):
        client.must_push("org/app", sha256(body), body)
    _, listed = referrers(client, "org/app", subject)
    assert sorted(listed, key=lambda d: d["digest"]) == sorted(
        [
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(sbom),
                "size": len(sbom),
                "artifactType": SBOM,
                "annotations": {"org.example.format": "spdx"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": sha256(sig),
                "size": len(sig),
                "artifactType": SIG,
                "annotations": {"org.example.key": "abc"},
            },
        ],
        key=lambda d: d["digest"],
    )


def test_referrer_without_artifact_type_is_listed_with_its_config_media_type(
    client: Client,
) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    body = referrer_manifest(subject, None, config_type="application/vnd.example.config.v1+json")
    client.must_push("org/app", sha256(body), body)
    _, listed = referrers(client, "org/app", subject)
    assert listed[0]["artifactType"] == "application/vnd.example.config.v1+json"


def test_index_referrer_without_artifact_type_omits_it(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    child = subject_manifest("child")
    client.must_push("org/app", sha256(child), child)
    index = referrer_index(subject, [child], None)
    client.must_push("org/app", sha256(index), index, OCI_INDEX)
    _, listed = referrers(client, "org/app", subject)
    assert listed == [{"mediaType": OCI_INDEX, "digest": sha256(index), "size": len(index)}]


def test_referrers_of_a_digest_nothing_refers_to_is_an_empty_index(client: Client) -> None:
    client.must_push("org/app", "v1", subject_manifest())
    answer, listed = referrers(client, "org/app", b"nothing points here")
    assert listed == []
    assert answer.header("Link") is None


def test_referrers_filter_by_artifact_type_sets_filters_applied(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    bodies = {
        t: referrer_manifest(subject, t, {"n": str(i)})
        for i, t in enumerate((SBOM, SIG, SBOM + ".extra"))
    }
    for body in bodies.values():
        client.must_push("org/app", sha256(body), body)
    answer, listed = referrers(client, "org/app", subject, f"?artifactType={SBOM}")
    assert answer.header("OCI-Filters-Applied") == "artifactType"
    assert [d["digest"] for d in listed] == [sha256(bodies[SBOM])]
    unfiltered, _ = referrers(client, "org/app", subject)
    assert unfiltered.header("OCI-Filters-Applied") is None


def test_referrer_pushed_before_its_subject_is_accepted_and_listed(client: Client) -> None:
    subject = subject_manifest("later")
    referrer = referrer_manifest(subject, SBOM)
    answer = client.must_push("org/app", sha256(referrer), referrer)
    assert answer.header("OCI-Subject") == sha256(subject)
    _, listed = referrers(client, "org/app", subject)
    assert [d["digest"] for d in listed] == [sha256(referrer)]
    client.must_push("org/app", "v1", subject)
    _, listed = referrers(client, "org/app", subject)
    assert [d["digest"] for d in listed] == [sha256(referrer)]


def index_referrers(repo: str, bodies: list[bytes]) -> None:
    """Write referrer entries through the real storage code, without 1,000 transactions
    (moto copies the whole table on every TransactWriteItems, making pushes O(n^2))."""
    from chalicelib.registry.manifests import parse
    from chalicelib.storage import referrers as store
    from chalicelib.storage.models import ReferrerModel

    with ReferrerModel.batch_write() as batch:
        for body in bodies:
            batch.save(store.entry_for(repo, parse(body, OCI_MANIFEST)))


def test_a_thousand_referrers_are_paginated_with_link_headers(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    bodies = [
        referrer_manifest(subject, SBOM if i % 2 else SIG, {"i": str(i)}) for i in range(1000)
    ]
    index_referrers("org/app", bodies)
    seen: list[str] = []
    url: str | None = f"/v2/org/app/referrers/{sha256(subject)}"
    pages = 0
    while url:
        answer = client.get(url)
        page = answer.json()["manifests"]
        assert 0 < len(page) <= 250
        seen += [d["digest"] for d in page]
        link = answer.header("Link")
        url = link[1 : link.index(">")] if link else None
        pages += 1
    assert pages == 4
    assert len(seen) == len(set(seen)) == 1000
    assert set(seen) == {sha256(b) for b in bodies}
    # the filtered listing pages the same way and keeps the filter in its Link
    filtered: list[str] = []
    url = f"/v2/org/app/referrers/{sha256(subject)}?artifactType={SBOM}"
    while url:
        answer = client.get(url)
        assert answer.header("OCI-Filters-Applied") == "artifactType"
        filtered += [d["digest"] for d in answer.json()["manifests"]]
        link = answer.header("Link")
        assert link is None or "artifactType=" in link
        url = link[1 : link.index(">")] if link else None
    assert set(filtered) == {sha256(b) for i, b in enumerate(bodies) if i % 2}
    assert len(filtered) == 500


def test_deleting_a_referrer_removes_it_from_the_index(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    keep, drop = referrer_manifest(subject, SBOM), referrer_manifest(subject, SIG)
    for body in (keep, drop):
        client.must_push("org/app", sha256(body), body)
    assert client.delete(f"/v2/org/app/manifests/{sha256(drop)}").status == 202
    _, listed = referrers(client, "org/app", subject)
    assert [d["digest"] for d in listed] == [sha256(keep)]


def test_deleting_the_subject_leaves_its_referrers_listed(client: Client) -> None:
    """Our rule: referrers outlive their subject until deleted or garbage-collected."""
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    referrer = referrer_manifest(subject, SBOM)
    client.must_push("org/app", sha256(referrer), referrer)
    assert client.delete(f"/v2/org/app/manifests/{sha256(subject)}").status == 202
    _, listed = referrers(client, "org/app", subject)
    assert [d["digest"] for d in listed] == [sha256(referrer)]
    assert client.get(f"/v2/org/app/manifests/{sha256(referrer)}").status == 200


def test_referrers_are_per_repository(client: Client) -> None:
    subject = subject_manifest()
    for repo in ("org/one", "org/two"):
        client.must_push(repo, "v1", subject)
    referrer = referrer_manifest(subject, SBOM)
    client.must_push("org/one", sha256(referrer), referrer)
    _, listed = referrers(client, "org/two", subject)
    assert listed == []


def test_referrers_with_malformed_digest_is_400(client: Client) -> None:
    client.must_push("org/app", "v1", subject_manifest())
    answer = client.get("/v2/org/app/referrers/sha256:nope")
    assert answer.status == 400
    assert answer.error_codes == ["DIGEST_INVALID"]


def test_referrers_of_unknown_repository_is_404(client: Client) -> None:
    answer = client.get(f"/v2/no/such/referrers/{sha256(b'x')}")
    assert answer.status == 404
    assert answer.error_codes == ["NAME_UNKNOWN"]


def test_with_the_feature_off_referrers_is_404_and_pushes_lack_oci_subject(
    client: Client, settings
) -> None:
    settings(referrers_api=False)
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    referrer = referrer_manifest(subject, SBOM)
    answer = client.must_push("org/app", sha256(referrer), referrer)
    assert answer.header("OCI-Subject") is None
    assert client.get(f"/v2/org/app/referrers/{sha256(subject)}").status == 404
    # switched on later, manifests pushed meanwhile are listed ("Enabling the Referrers API")
    settings(referrers_api=True)
    _, listed = referrers(client, "org/app", subject)
    assert [d["digest"] for d in listed] == [sha256(referrer)]


def test_referrers_tag_schema_index_works_beside_the_api(client: Client) -> None:
    """A client maintaining `sha256-<hex>` itself (spec "Referrers Tag Schema")."""
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    referrer = referrer_manifest(subject, SBOM, {"k": "v"})
    client.must_push("org/app", sha256(referrer), referrer)
    tag = sha256(subject).replace(":", "-")
    fallback = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256(referrer),
                    "size": len(referrer),
                    "artifactType": SBOM,
                    "annotations": {"k": "v"},
                }
            ],
        }
    ).encode()
    client.must_push("org/app", tag, fallback, OCI_INDEX)
    assert client.get(f"/v2/org/app/manifests/{tag}").body == fallback
    _, listed = referrers(client, "org/app", subject)
    assert [d["digest"] for d in listed] == [sha256(referrer)]  # the tag index is no referrer


def test_large_referrer_annotations_are_listed_from_the_manifest(client: Client) -> None:
    subject = subject_manifest()
    client.must_push("org/app", "v1", subject)
    annotations = {"big": "x" * 100_000}
    body = referrer_manifest(subject, SBOM, annotations)
    client.must_push("org/app", sha256(body), body)
    _, listed = referrers(client, "org/app", subject)
    assert listed[0]["annotations"] == annotations
