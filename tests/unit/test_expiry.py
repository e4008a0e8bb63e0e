"""Tag expiry from `quay.expires-after`: TTL attribute, immediate effect."""

from __future__ import annotations

import json

import boto3

from chalicelib import config
from tests.client import Client
from tests.images import OCI_INDEX, oci_index, sha256

KEY = "quay.expires-after"


def image(
    client: Client,
    repo: str,
    *,
    annotation: str | None = None,
    label: str | None = None,
    seed: str = "x",
) -> bytes:
    doc = client.image_document(
        repo,
        seed=seed,
        labels={KEY: label} if label else None,
        annotations={KEY: annotation} if annotation else None,
    )
    return json.dumps(doc).encode()


def ttl_attribute(repo: str, tag: str) -> int | None:
    """The raw DynamoDB attribute DynamoDB's TTL reads: epoch seconds."""
    from chalicelib.registry.names import tag_sort_key

    item = boto3.client("dynamodb").get_item(
        TableName=config.settings.tags_table,
        Key={"repository": {"S": repo}, "sort_key": {"S": tag_sort_key(tag)}},
    )["Item"]
    return int(item["expires_at"]["N"]) if "expires_at" in item else None


def test_annotation_sets_the_tags_ttl_to_push_time_plus_duration(client: Client, clock) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", annotation="2d"))
    assert ttl_attribute("org/app", "v1") == int(clock.now().timestamp()) + 2 * 86400


def test_expired_tag_is_404_tag_expired_before_any_cleanup(client: Client, clock) -> None:
    body = image(client, "org/app", annotation="2d")
    client.must_push("org/app", "v1", body)
    client.must_push("org/app", "keep", image(client, "org/app", seed="other"))
    clock.advance(days=2, seconds=-1)
    assert client.get("/v2/org/app/manifests/v1").status == 200
    clock.advance(seconds=1)
    answer = client.get("/v2/org/app/manifests/v1")
    assert (answer.status, answer.error_codes) == (404, ["TAG_EXPIRED"])
    assert client.head("/v2/org/app/manifests/v1").status == 404
    assert client.get("/v2/org/app/tags/list").json()["tags"] == ["keep"]
    assert client.delete("/v2/org/app/manifests/v1").status == 404
    # the manifest itself is still there by digest until cleanup collects it
    assert client.get(f"/v2/org/app/manifests/{sha256(body)}").status == 200


def test_config_label_sets_expiry_for_an_image(client: Client, clock) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", label="20h"))
    clock.advance(hours=20)
    assert client.get("/v2/org/app/manifests/v1").error_codes == ["TAG_EXPIRED"]


def test_annotation_wins_over_the_config_label(client: Client, clock) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", annotation="1h", label="20h"))
    clock.advance(hours=1)
    assert client.get("/v2/org/app/manifests/v1").status == 404


def test_repushing_the_tag_without_expiry_clears_it(client: Client, clock) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", annotation="1h"))
    client.must_push("org/app", "v1", image(client, "org/app", seed="no-expiry"))
    assert ttl_attribute("org/app", "v1") is None
    clock.advance(days=30)
    assert client.get("/v2/org/app/manifests/v1").status == 200


def test_negative_expiry_expires_the_tag_at_once(client: Client, clock) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", annotation="-1h"))
    assert client.get("/v2/org/app/manifests/v1").error_codes == ["TAG_EXPIRED"]


def test_expiry_beyond_a_century_is_ignored_like_an_unparsable_value(client: Client, clock) -> None:
    """Quay would fail on a date past year 9999; Stratus reads such values as "never"."""
    values = ("3000000d", "500000w", "9000y", "999999999d", "36501d")
    for index, value in enumerate(values):
        tag = f"t{index}"
        by_label = image(client, "org/app", label=value, seed=f"l{index}")
        client.must_push("org/app", tag, image(client, "org/app", annotation=value, seed=tag))
        client.must_push("org/app", f"l{index}", by_label)
        assert ttl_attribute("org/app", tag) is None
        assert ttl_attribute("org/app", f"l{index}") is None
    clock.advance(weeks=5200)
    assert len(client.get("/v2/org/app/tags/list").json()["tags"]) == 2 * len(values)


def test_huge_negative_expiry_expires_the_tag_at_once(client: Client, clock) -> None:
    client.must_push("org/app", "v1", image(client, "org/app", annotation="-999999999d"))
    assert client.get("/v2/org/app/manifests/v1").error_codes == ["TAG_EXPIRED"]
    # A TTL instant far in the past would be ignored by DynamoDB (over five years).
    assert (ttl_attribute("org/app", "v1") or 0) > clock.now().timestamp() - 2 * 86400


def test_zero_or_unparsable_expiry_means_the_tag_never_expires(client: Client, clock) -> None:
    for tag, value in (("zero", "0h"), ("never", "never"), ("junk", "2x")):
        client.must_push("org/app", tag, image(client, "org/app", annotation=value, seed=tag))
        assert ttl_attribute("org/app", tag) is None
    clock.advance(weeks=520)
    assert client.get("/v2/org/app/tags/list").json()["tags"] == ["junk", "never", "zero"]


def test_index_expires_when_all_children_carry_the_same_value(client: Client, clock) -> None:
    def index_of(children: list[bytes]) -> bytes:
        return oci_index(children, annotations={KEY: "1s"})

    same = [image(client, "org/multi", annotation="3d", seed=s) for s in ("a", "b")]
    mixed = [image(client, "org/multi", annotation=v, seed=v) for v in ("3d", "5d")]
    for child in same + mixed:
        client.must_push("org/multi", sha256(child), child)
    client.must_push("org/multi", "same", index_of(same), OCI_INDEX)
    client.must_push("org/multi", "mixed", index_of(mixed), OCI_INDEX)
    clock.advance(days=3)
    assert client.get("/v2/org/multi/manifests/same").status == 404
    assert client.get("/v2/org/multi/manifests/mixed").status == 200


def test_referrers_tag_schema_index_expires_with_its_referrers(client: Client, clock) -> None:
    """A `sha256-<hex>` index whose referrers all expire in 1h expires with them."""
    subject = image(client, "org/app", seed="subject")
    client.must_push("org/app", "v1", subject)
    referrers = [image(client, "org/app", annotation="1h", seed=f"sig{i}") for i in range(2)]
    for body in referrers:
        client.must_push("org/app", sha256(body), body)
    tag = sha256(subject).replace(":", "-")
    fallback = oci_index(referrers)
    client.must_push("org/app", tag, fallback, OCI_INDEX)
    assert client.get(f"/v2/org/app/manifests/{tag}").status == 200
    clock.advance(hours=1)
    assert client.get(f"/v2/org/app/manifests/{tag}").error_codes == ["TAG_EXPIRED"]
    assert client.get("/v2/org/app/tags/list").json()["tags"] == ["v1"]


def test_management_tags_api_shows_each_tags_expiry(client: Client, clock) -> None:
    client.must_push("org/app", "temp", image(client, "org/app", annotation="2d", seed="t"))
    client.must_push("org/app", "stable", image(client, "org/app", seed="s"))
    answer = client.get("/api/v1/repository/org/app/tag/")
    assert answer.status == 200
    tags = {t["name"]: t for t in answer.json()["tags"]}
    assert tags["temp"]["end_ts"] == int(clock.now().timestamp()) + 2 * 86400
    assert tags["temp"]["expired"] is False and "expiration" in tags["temp"]
    assert "end_ts" not in tags["stable"]
    clock.advance(days=3)
    active = client.get("/api/v1/repository/org/app/tag/").json()["tags"]
    assert [t["name"] for t in active] == ["stable"]
    everything = client.get("/api/v1/repository/org/app/tag/?onlyActiveTags=false").json()
    assert {t["name"]: t["expired"] for t in everything["tags"]} == {"stable": False, "temp": True}


def test_management_tags_api_pages_and_rejects_bad_input(client: Client) -> None:
    for i in range(3):
        client.must_push("org/app", f"t{i}", image(client, "org/app", seed=str(i)))
    first = client.get("/api/v1/repository/org/app/tag/?limit=2").json()
    assert ([t["name"] for t in first["tags"]], first["has_additional"]) == (["t0", "t1"], True)
    rest = client.get("/api/v1/repository/org/app/tag/?limit=2&last=t1").json()
    assert ([t["name"] for t in rest["tags"]], rest["has_additional"]) == (["t2"], False)
    assert client.get("/api/v1/repository/org/app/tag/?limit=0").status == 400
    assert client.get("/api/v1/repository/No/Such/tag/").error_codes == ["NAME_INVALID"]
    assert client.get("/api/v1/repository/no/such/tag/").error_codes == ["NAME_UNKNOWN"]
    assert client.get("/api/v1/repository/org/app/other").status == 404
