"""Request logs, metrics and traces, with Powertools, in one place.

One structured log line per request: request id, operation, repository, method, status,
OCI error code, latency and the AWS calls it made. Never a header, a token, a password or
a URL (presigned URLs carry signatures): only the fields below are logged. Metrics go out
as CloudWatch EMF: pulls, pushes, bytes uploaded through the API, errors by OCI code.
Traces: Powertools Tracer patches botocore, so every AWS call is an X-Ray subsegment.

On in Lambda; in local mode logs are at WARNING (the server's access log is the readable
view) and metrics off, unless STRATUS_OBSERVABILITY=1. Powertools loads on the first
request, not at import: it is most of a cold start's import time otherwise.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from typing import IO, Any, cast

from chalicelib.storage import calls

IN_LAMBDA = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _forced() -> bool:
    from chalicelib import config

    return bool(config.current("STRATUS_OBSERVABILITY"))


class _Stdout:
    """Whatever sys.stdout is when a line is written (Lambda's, or a test's capture)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@cache
def logger() -> Any:
    from aws_lambda_powertools import Logger

    level = os.environ.get("POWERTOOLS_LOG_LEVEL") or (
        "INFO" if IN_LAMBDA or _forced() else "WARNING"
    )
    # Powertools asks for a whole IO; its handler only writes and flushes.
    log = Logger(service="stratus", level=level, stream=cast(IO[str], _Stdout()))
    log.setLevel(level)  # a Logger for the same service reuses the first one's handler
    return log


@cache
def metrics() -> Any | None:
    if not (IN_LAMBDA or _forced()):
        return None
    from aws_lambda_powertools import Metrics

    return Metrics(namespace="Stratus", service="stratus")


@cache
def start() -> None:
    """Once per container: count AWS calls, and trace them where X-Ray is on."""
    calls.install(origins=False)
    if IN_LAMBDA and os.environ.get("_X_AMZN_TRACE_ID") is not None:
        from aws_lambda_powertools import Tracer

        Tracer(service="stratus", patch_modules=["botocore"])


@dataclass
class RequestRecord:
    operation: str
    method: str
    repository: str | None = None
    status: int = 0
    error_code: str | None = None
    uploaded_bytes: int = 0
    request_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # the path's, for the audit log


class Span:
    """Measures one request: its latency and the AWS calls made on its thread."""

    def __init__(self) -> None:
        start()
        self.began = time.perf_counter()
        self.calls_before = calls.thread_count()

    def finish(self, record: RequestRecord) -> None:
        latency_ms = round((time.perf_counter() - self.began) * 1000, 2)
        aws_calls = calls.thread_count() - self.calls_before
        fields = {
            "request_id": record.request_id,
            "operation": record.operation,
            "repository": record.repository,
            "method": record.method,
            "status": record.status,
            "latency_ms": latency_ms,
            "aws_calls": aws_calls,
        }
        if record.error_code:
            fields["error_code"] = record.error_code
        log = logger()
        if record.status >= 500:
            log.error("request", extra=fields)
        else:
            log.info("request", extra=fields)
        _emit_metrics(record, latency_ms)


_PULLS = {"manifests.get"}
_PUSHES = {"manifests.put"}


def _emit_metrics(record: RequestRecord, latency_ms: float) -> None:
    emitter = metrics()
    if emitter is None:
        return
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    ok = record.status < 400
    if ok and record.operation in _PULLS:
        emitter.add_metric(name="Pulls", unit=MetricUnit.Count, value=1)
    if ok and record.operation in _PUSHES:
        emitter.add_metric(name="Pushes", unit=MetricUnit.Count, value=1)
    if ok and record.uploaded_bytes:
        emitter.add_metric(name="BytesUploaded", unit=MetricUnit.Bytes, value=record.uploaded_bytes)
    emitter.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
    emitter.flush_metrics()
    if record.error_code:
        with single_metric(
            name="Errors", unit=MetricUnit.Count, value=1, namespace="Stratus"
        ) as metric:
            metric.add_dimension(name="code", value=record.error_code)
