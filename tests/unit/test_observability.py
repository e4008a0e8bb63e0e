"""Request logs and metrics (Powertools): what ops see, and what they must never see."""

from __future__ import annotations

import json

import pytest

from chalicelib import observability
from tests.client import Client
from tests.referrers_fixtures import subject_manifest
from tests.unit.conftest import ADMIN_PASSWORD, ADMIN_USER


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch):
    """Observability as in Lambda: INFO logs and EMF metrics, on stdout."""
    monkeypatch.setenv("STRATUS_OBSERVABILITY", "1")
    observability.logger.cache_clear()
    observability.metrics.cache_clear()
    yield
    monkeypatch.delenv("STRATUS_OBSERVABILITY")
    observability.logger.cache_clear()
    observability.metrics.cache_clear()
    observability.logger()  # back to local mode's level


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def requests_logged(text: str) -> list[dict]:
    return [line for line in lines(text) if line.get("message") == "request"]


def test_request_log_has_operation_repository_status_latency_and_aws_calls(
    client: Client, observed, capsys
) -> None:
    client.must_push("obs/app", "v1", subject_manifest("obs"))
    capsys.readouterr()
    client.get("/v2/obs/app/manifests/v1")
    (logged,) = requests_logged(capsys.readouterr().out)
    assert logged["operation"] == "manifests.get"
    assert logged["repository"] == "obs/app"
    assert (logged["method"], logged["status"]) == ("GET", 200)
    # A manifest GET by tag is one GetItem, and the audit log's PutItem (STRATUS_AUDIT_PULLS).
    assert logged["aws_calls"] == 2
    assert logged["latency_ms"] > 0
    assert logged["request_id"]


@pytest.mark.usefixtures("auth")
def test_version_check_and_its_challenge_are_logged(client: Client, observed, capsys) -> None:
    client.get("/v2/")
    (logged,) = requests_logged(capsys.readouterr().out)
    assert logged["operation"] == "base.version"
    assert (logged["status"], logged["error_code"]) == (401, "UNAUTHORIZED")


def test_errors_are_logged_and_counted_by_oci_code(client: Client, observed, capsys) -> None:
    client.get("/v2/obs/none/manifests/v1")
    out = capsys.readouterr().out
    (logged,) = requests_logged(out)
    assert (logged["status"], logged["error_code"]) == (404, "MANIFEST_UNKNOWN")
    errors = [line for line in lines(out) if "Errors" in line and "_aws" in line]
    assert errors and errors[0]["code"] == "MANIFEST_UNKNOWN"


def test_pulls_pushes_and_uploaded_bytes_are_emf_metrics(client: Client, observed, capsys) -> None:
    client.push_blob("obs/metrics", b"x" * 1000)
    client.must_push("obs/metrics", "v1", subject_manifest("metrics"))
    client.get("/v2/obs/metrics/manifests/v1")
    emitted = [line for line in lines(capsys.readouterr().out) if "_aws" in line]
    names = {
        m["Name"]
        for line in emitted
        for d in line["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    }
    assert {"Pulls", "Pushes", "BytesUploaded", "Latency"} <= names
    assert any(line.get("BytesUploaded") in (1000, [1000.0]) for line in emitted)
    assert all(line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Stratus" for line in emitted)


def test_logs_never_hold_tokens_passwords_or_presigned_signatures(
    client: Client, observed, auth, capsys
) -> None:
    token = client.token(ADMIN_USER, ADMIN_PASSWORD, "repository:root/app:pull,push")
    holder = client.as_bearer(token)
    digest = holder.push_blob("root/app", b"secret layer")
    redirect = holder.get(f"/v2/root/app/blobs/{digest}")
    signature = redirect.header("Location").split("X-Amz-Signature=")[1]
    client.get("/v2/auth?service=stratus", headers={"Authorization": "Basic cm9vdDp3cm9uZy1wYXNz"})
    out = capsys.readouterr().out
    assert requests_logged(out)  # something was logged
    for secret in (token, ADMIN_PASSWORD, "wrong-pass", signature, "cm9vdDp3cm9uZy1wYXNz"):
        assert secret not in out


def test_local_mode_logs_nothing_for_successful_requests(client: Client, capsys) -> None:
    client.get("/v2/")
    assert requests_logged(capsys.readouterr().out) == []
