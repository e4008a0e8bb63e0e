"""Manifests with a `subject`, shared by the in-process and HTTP referrers tests."""

from __future__ import annotations

import base64
import json

from tests.images import OCI_INDEX, OCI_MANIFEST, sha256

EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


def empty_descriptor() -> dict:
    return {
        "mediaType": EMPTY_TYPE,
        "digest": sha256(EMPTY),
        "size": 2,
        "data": base64.b64encode(EMPTY).decode(),
    }


def subject_manifest(seed: str = "subject") -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": empty_descriptor(),
            "layers": [empty_descriptor()],
            "annotations": {"seed": seed},
        }
    ).encode()


def referrer_manifest(
    subject: bytes,
    artifact_type: str | None,
    annotations: dict[str, str] | None = None,
    *,
    config_type: str = EMPTY_TYPE,
) -> bytes:
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {**empty_descriptor(), "mediaType": config_type},
        "layers": [empty_descriptor()],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)},
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc).encode()


def referrer_index(subject: bytes, children: list[bytes], artifact_type: str | None) -> bytes:
    doc: dict = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256(c), "size": len(c)} for c in children
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject), "size": len(subject)},
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    return json.dumps(doc).encode()
