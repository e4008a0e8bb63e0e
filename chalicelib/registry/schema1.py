"""Docker image manifest v2, schema 1: parse and verify on push, build and sign on the way out.

Signed schema 1 manifests are libtrust "pretty" JWS: the manifest JSON with a `signatures`
array spliced in before its closing brace. Each signature's protected header says where
(`formatLength`) and with what tail (`formatTail`) to cut the signatures out again; what is
left, the payload, is what each signature covers and what the digest is computed over, as
in Distribution. Pulls return the bytes pushed; their digest is the payload's.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import ManifestInvalid, ManifestUnverified
from chalicelib.registry import mediatypes as mt
from chalicelib.registry.digests import parse_digest

# The gzipped empty tar schema 1 uses for history entries without a layer (Distribution's).
EMPTY_LAYER = base64.b64decode("H4sIAAAJbogA/2IYBaNgFIxYAAgAAP//Lq+17wAEAAA=")
EMPTY_LAYER_DIGEST = "sha256:" + hashlib.sha256(EMPTY_LAYER).hexdigest()
LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Schema1:
    name: str
    tag: str
    layers: list[str]  # fsLayers' blobSums, top (newest) first
    history: list[str]  # v1Compatibility JSON strings, top first
    payload: bytes  # what the digest covers: the manifest without its signatures

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.payload).hexdigest()

    @property
    def top_config(self) -> bytes:
        """The newest history entry: a V1 image config, labels included (expiry reads it)."""
        return self.history[0].encode() if self.history else b"{}"


def _invalid(reason: str, **detail: Any) -> ManifestInvalid:
    return ManifestInvalid({"reason": reason, **detail})


def _algorithm(name: str) -> Any:
    from jwt.algorithms import get_default_algorithms

    algorithm = get_default_algorithms().get(name)
    if algorithm is None or name in ("none", "HS256", "HS384", "HS512"):
        raise ManifestUnverified({"alg": name}, message="unsupported signature algorithm")
    return algorithm


def _payload_of(body: bytes, signature: dict[str, Any]) -> tuple[bytes, bytes, dict[str, Any]]:
    try:
        protected_text = signature["protected"]
        protected = json.loads(_unb64(protected_text))
        length = protected["formatLength"]
        tail = _unb64(protected["formatTail"])
        if not isinstance(length, int) or not 0 < length <= len(body):
            raise ValueError("formatLength out of range")
    except (KeyError, TypeError, ValueError, RecursionError) as error:
        raise ManifestUnverified(message=f"malformed signature: {error}") from error
    return body[:length] + tail, protected_text.encode(), protected


def _verify(body: bytes, signature: Any) -> bytes:
    """The payload this signature covers, if the signature over it checks out."""
    from jwt.api_jwk import PyJWK
    from jwt.exceptions import PyJWTError

    if not isinstance(signature, dict) or not isinstance(signature.get("header"), dict):
        raise ManifestUnverified(message="malformed signature")
    payload, protected, _ = _payload_of(body, signature)
    header = signature["header"]
    algorithm = _algorithm(str(header.get("alg")))
    try:
        key = PyJWK.from_dict(header["jwk"], algorithm=header["alg"]).key
        raw = _unb64(signature["signature"])
        signing_input = protected + b"." + _b64(payload).encode()
        valid = algorithm.verify(signing_input, key, raw)
    except (KeyError, TypeError, ValueError, PyJWTError) as error:
        raise ManifestUnverified(message=f"unusable signature key: {error}") from error
    if not valid:
        raise ManifestUnverified(message="signature does not match the manifest")
    return payload


def parse(body: bytes, doc: dict[str, Any], media_type: str) -> Schema1:
    """Structure checked; every signature verified; the payload every signature covers."""
    if doc.get("schemaVersion") != 1:
        raise _invalid("schemaVersion must be 1")
    for key in ("name", "tag", "architecture"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise _invalid(f"{key} is required")
    fs_layers, history = doc.get("fsLayers"), doc.get("history")
    if not isinstance(fs_layers, list) or not fs_layers or not isinstance(history, list):
        raise _invalid("fsLayers and history are required")
    if len(fs_layers) != len(history):
        raise _invalid("fsLayers and history differ in length")
    layers = []
    for i, layer in enumerate(fs_layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("blobSum"), str):
            raise _invalid(f"fsLayers[{i}].blobSum is required")
        layers.append(str(parse_digest(layer["blobSum"])))
    entries = []
    for i, entry in enumerate(history):
        text = entry.get("v1Compatibility") if isinstance(entry, dict) else None
        if not isinstance(text, str):
            raise _invalid(f"history[{i}].v1Compatibility is required")
        try:
            if not isinstance(json.loads(text), dict):
                raise ValueError
        except (ValueError, RecursionError):
            raise _invalid(f"history[{i}].v1Compatibility is not a JSON object") from None
        entries.append(text)
    signatures = doc.get("signatures")
    if signatures is None:
        if media_type == mt.DOCKER_SCHEMA1_SIGNED:
            raise ManifestUnverified(message="a prettyjws manifest must be signed")
        payload = body
    else:
        if not isinstance(signatures, list) or not signatures:
            raise ManifestUnverified(message="signatures must be a non-empty list")
        payloads = {_verify(body, signature) for signature in signatures}
        if len(payloads) != 1:
            raise ManifestUnverified(message="signatures cover different payloads")
        (payload,) = payloads
        try:
            unsigned = json.loads(payload)
        except (ValueError, RecursionError):
            raise ManifestUnverified(message="the signed payload is not JSON") from None
        if unsigned != {k: v for k, v in doc.items() if k != "signatures"}:
            raise ManifestUnverified(message="the signed payload differs from the manifest")
    return Schema1(doc["name"], doc["tag"], layers, entries, payload)


# -- building schema 1 from an image (down-conversion) --------------------------------------


def v1_id(blob_sum: str, parent: str, config_digest: str | None = None) -> str:
    """A V1 image id derived from V2 data only: the same image always gets the same ids."""
    seed = f"{blob_sum} {parent}" + (f" {config_digest}" if config_digest else "")
    return hashlib.sha256(seed.encode()).hexdigest()


@dataclass(frozen=True)
class V1Image:
    id: str
    parent: str
    blob_sum: str
    config: dict[str, Any]  # the v1Compatibility document


def v1_chain(config: bytes, layers: list[str]) -> list[V1Image]:
    """The V1 images of a schema 2 / OCI image, base first (Distribution's conversion)."""
    try:
        doc = json.loads(config)
    except (ValueError, RecursionError):
        raise _invalid("the image config is not JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("the image config is not a JSON object")
    history = doc.get("history")
    if not isinstance(history, list) or not history:
        history = [{} for _ in layers]
    non_empty = [h for h in history if isinstance(h, dict) and not h.get("empty_layer")]
    if len(non_empty) != len(layers):
        raise _invalid("the config's history does not match the layers")
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    chain: list[V1Image] = []
    parent = ""
    layer_index = 0
    for i, entry in enumerate(history):
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("empty_layer"):
            blob_sum = EMPTY_LAYER_DIGEST
        else:
            blob_sum = layers[layer_index]
            layer_index += 1
        top = i == len(history) - 1
        image_id = v1_id(blob_sum, parent, config_digest if top else None)
        if top:
            v1 = {k: v for k, v in doc.items() if k not in ("history", "rootfs")}
            v1["id"] = image_id
        else:
            v1 = {"id": image_id, "container_config": {"Cmd": [entry.get("created_by", "")]}}
            for key in ("created", "author", "comment"):
                if key in entry:
                    v1[key] = entry[key]
        if parent:
            v1["parent"] = parent
        if entry.get("empty_layer"):
            v1["throwaway"] = True
        chain.append(V1Image(image_id, parent, blob_sum, v1))
        parent = image_id
    return chain


def payload_for(name: str, tag: str, config: bytes, layers: list[str]) -> dict[str, Any]:
    chain = v1_chain(config, layers)
    architecture = json.loads(config).get("architecture") or "amd64"
    return {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": architecture,
        "fsLayers": [{"blobSum": image.blob_sum} for image in reversed(chain)],
        "history": [
            {"v1Compatibility": json.dumps(image.config, separators=(",", ":"), sort_keys=True)}
            for image in reversed(chain)
        ],
    }


def _libtrust_kid(public: Any) -> str:
    """libtrust's key id: base32 of the DER key's SHA-256, 240 bits, in groups of four."""
    from cryptography.hazmat.primitives import serialization

    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def sign(document: dict[str, Any], private: Any, algorithm_name: str) -> bytes:
    """libtrust pretty JWS of `document`, signed with the registry's key."""
    from jwt.algorithms import get_default_algorithms

    content = json.dumps(document, indent=3).encode()
    length = content.rstrip().rfind(b"}")
    length = len(content[:length].rstrip())
    protected = _b64(
        json.dumps(
            {
                "formatLength": length,
                "formatTail": _b64(content[length:]),
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            separators=(",", ":"),
        ).encode()
    )
    algorithm = get_default_algorithms()[algorithm_name]
    public = private.public_key()
    jwk = json.loads(algorithm.to_jwk(public))
    jwk["kid"] = _libtrust_kid(public)
    raw = algorithm.sign(f"{protected}.{_b64(content)}".encode(), private)
    signature = {
        "header": {"jwk": jwk, "alg": algorithm_name},
        "signature": _b64(raw),
        "protected": protected,
    }
    signatures = json.dumps([signature], indent=3).replace("\n", "\n   ")
    return content[:length] + b',\n   "signatures": ' + signatures.encode() + content[length:]
