"""Cost per million pulls and pushes of a typical image, from the AWS calls counted by
bench/calls.py at AWS list prices, beside ECR.

    python -m bench cost
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import calls, report

# AWS list prices, us-east-1, on-demand, USD (as published in 2025; check before quoting).
PRICES = {
    "apigateway_rest_per_million": 3.50,
    "lambda_per_million": 0.20,
    "lambda_gb_second": 0.0000166667,
    "dynamodb_read_unit_per_million": 0.125,  # on-demand, since Nov 2024
    "dynamodb_write_unit_per_million": 0.625,
    "s3_get_per_thousand": 0.0004,
    "s3_put_per_thousand": 0.005,
    "data_transfer_out_per_gb": 0.09,  # the same for S3 and ECR
}
LAMBDA_GB = 1.0  # the dev stage's 1024 MB
LAMBDA_MS_ASSUMED = 30  # per API request on AWS: an assumption, moto's times do not carry over


def _request_cost(counted: dict[str, Any], api_requests: int, s3_redirects: int) -> float:
    reads = writes = 0.0
    s3_gets = s3_puts = 0
    for key, units in counted["units"].items():
        service, operation = key.split(".", 1)
        if service == "dynamodb":
            if operation in {"GetItem", "BatchGetItem", "Query", "Scan"}:
                reads += units * 0.5  # eventually consistent, items under 4 KB
            elif operation == "TransactWriteItems":
                writes += units * 2  # transactional writes cost double
            else:
                writes += units
        elif service == "s3":
            if operation in {"GetObject", "HeadObject"}:
                s3_gets += units
            else:
                s3_puts += units
    s3_gets += s3_redirects  # the client's GET of each presigned URL
    return (
        api_requests * PRICES["apigateway_rest_per_million"] / 1e6
        + api_requests * PRICES["lambda_per_million"] / 1e6
        + api_requests * LAMBDA_GB * LAMBDA_MS_ASSUMED / 1000 * PRICES["lambda_gb_second"]
        + reads * PRICES["dynamodb_read_unit_per_million"] / 1e6
        + writes * PRICES["dynamodb_write_unit_per_million"] / 1e6
        + s3_gets * PRICES["s3_get_per_thousand"] / 1000
        + s3_puts * PRICES["s3_put_per_thousand"] / 1000
    )


def costs(counted: dict[str, dict[str, Any]], layers: int) -> list[tuple[str, float, float]]:
    """(operation, Stratus per million, ECR per million), transfer excluded (equal for both)."""
    pull, push = counted["full pull"], counted["full push"]
    blobs = layers + 1
    pull_requests = 1 + blobs
    push_requests = 3 * blobs + 1
    return [
        (
            f"pull ({pull_requests} API requests, {blobs} S3 GETs by presigned URL)",
            _request_cost(pull, pull_requests, blobs) * 1e6,
            0.0,
        ),
        (
            f"push ({push_requests} API requests)",
            _request_cost(push, push_requests, 0) * 1e6,
            0.0,
        ),
    ]


def measure(layers: int = calls.LAYERS) -> dict[str, Any]:
    counted = calls.measure(layers)
    return {
        "layers": layers,
        "lambda_ms_assumed": LAMBDA_MS_ASSUMED,
        "rows": costs(counted["operations"], layers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="(the same: calls are exact)")
    parser.parse_args()
    text = report.cost_section(measure())
    report.write_section("cost", text)
    print(text)
