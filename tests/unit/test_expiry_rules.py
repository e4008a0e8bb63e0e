"""`quay.expires-after` parsing and sources (Quay label handler; quay-oci-support 16.3)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chalicelib.registry import expiry
from chalicelib.registry.manifests import parse as parse_manifest
from tests.images import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, sha256


@pytest.mark.parametrize(
    "value,expected",
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("20h", timedelta(hours=20)),
        ("2d", timedelta(days=2)),
        ("3w", timedelta(weeks=3)),
        ("1y", timedelta(days=365)),
        ("-1h", timedelta(hours=-1)),
        ("+2d", timedelta(days=2)),  # Quay's int() takes a sign
        (" 2d", timedelta(days=2)),  # ... and surrounding blanks
    ],
)
def test_expiry_values_parse_as_quay_parses_them(value: str, expected: timedelta) -> None:
    assert expiry.parse(value) == expected


@pytest.mark.parametrize(
    "value", ["never", "", None, "2", "d", "2x", "2D", "1.5h", "0h", "0s", "-0d", "9" * 400 + "y"]
)
def test_unparsable_or_zero_expiry_means_no_expiry(value: str | None) -> None:
    assert expiry.parse(value) is None


def manifest(annotations: dict | None = None, *, config_type: str = OCI_CONFIG) -> bytes:
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": sha256(b"c"), "size": 1},
        "layers": [],
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc).encode()


def config(labels: dict) -> bytes:
    return json.dumps({"config": {"Labels": labels}}).encode()


def test_annotation_wins_over_config_label() -> None:
    parsed = parse_manifest(manifest({expiry.KEY: "1h"}), OCI_MANIFEST)
    assert not expiry.wants_config_labels(parsed)
    assert expiry.value_for(parsed, config({expiry.KEY: "2d"})) == "1h"


def test_config_label_applies_to_an_image_without_the_annotation() -> None:
    parsed = parse_manifest(manifest(), OCI_MANIFEST)
    assert expiry.wants_config_labels(parsed)
    assert expiry.value_for(parsed, config({expiry.KEY: "20h"})) == "20h"


def test_artifact_manifest_uses_only_its_annotations() -> None:
    parsed = parse_manifest(manifest(config_type="application/vnd.example.v1"), OCI_MANIFEST)
    assert not expiry.wants_config_labels(parsed)
    assert expiry.value_for(parsed) is None


def test_index_expires_only_when_every_child_carries_the_same_value() -> None:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
            "annotations": {expiry.KEY: "1h"},
        }
    ).encode()
    parsed = parse_manifest(index, OCI_INDEX)
    assert expiry.value_for(parsed, children=["2d", "2d"]) == "2d"
    assert expiry.value_for(parsed, children=["2d", "3d"]) is None
    assert expiry.value_for(parsed, children=["2d", None]) is None
    assert expiry.value_for(parsed, children=[]) is None  # own annotations are not used


def test_malformed_config_has_no_label() -> None:
    assert expiry.config_label(b"not json") is None
    assert expiry.config_label(b'{"config": {"Labels": {"quay.expires-after": 5}}}') is None
    assert expiry.config_label(b'{"config": null}') is None
