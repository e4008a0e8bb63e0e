"""Stratus measured: `python -m bench [names...]` (`make bench`), one module per measurement.

Each measurement module has `measure(...)`, which returns its numbers as plain data, and
`main()`, which measures and writes its report; bench/report.py renders every report and
holds the targets the numbers are judged against. moto stands in for AWS throughout, so
call counts and ratios carry over to AWS, absolute times do not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def isolate_from_aws() -> None:
    """Never real AWS: in-process measurements run on moto with made-up credentials."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


def percentile(samples: Sequence[float], fraction: float) -> float | None:
    """Nearest rank; None for no samples (an aborted stretch), shown as a dash."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
