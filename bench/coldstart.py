"""Cold start of the app from the working tree: a fresh interpreter per run, as a new
Lambda container, imports the app and serves one manifest GET by tag against a moto
server; time and the child's own peak memory, and where the import time goes.
(bench/package.py measures the same on the deployment package as Lambda runs it.)

    python -m bench coldstart [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import ROOT, report
from tests import servers

PYTHON = sys.executable

# The child's own peak RSS is VmHWM: ru_maxrss would report the benchmark's, which Linux
# carries across fork and exec.
_COLD = r"""
import json, time


def peak_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


began = time.perf_counter()
import app
imported = time.perf_counter()
peak_import = peak_mb()
from chalicelib.local import events
answer = events.invoke(app.app, "GET", "/v2/cold/app/manifests/v1", [("Accept", "*/*")], b"")
served = time.perf_counter()
assert answer.status == 200, answer.body
print(json.dumps({
    "import_ms": (imported - began) * 1000,
    "first_request_ms": (served - imported) * 1000,
    "peak_import_mb": peak_import,
    "peak_mb": peak_mb(),
}))
"""


# Where `import app`'s time goes: cumulative import time of these, from `-X importtime`.
IMPORT_PARTS = {
    "pynamodb (with botocore, urllib3)": "pynamodb.models",
    "chalice": "chalice",
    "chalicelib (own code, without the above)": None,
}


def cold_start(endpoint: str, runs: int) -> dict[str, Any]:
    """A fresh interpreter per run, as a new Lambda container: import, then one request
    (a manifest GET by tag) against AWS at `endpoint`."""
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT)}
    env.pop("STRATUS_RECORD_AWS_CALLS", None)
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            [PYTHON, "-c", _COLD], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    # One more run under -X importtime (which slows imports) for the breakdown only.
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", _COLD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cumulative = _import_times(done.stderr)
    parts = {label: cumulative.get(module, 0) for label, module in IMPORT_PARTS.items() if module}
    parts["chalicelib (own code, without the above)"] = cumulative.get("app", 0) - sum(
        parts.values()
    )
    return {**result, "imports": parts}


def _import_times(stderr: str) -> dict[str, float]:
    """Milliseconds per module, cumulative, from `python -X importtime` (first import only)."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        out.setdefault(name.strip(), int(cumulative) / 1000)
    return out


def _seed_cold_start(endpoint: str) -> None:
    """The image the cold-start request reads, pushed through a separate process."""
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT)}
    env.pop("STRATUS_RECORD_AWS_CALLS", None)
    script = (
        "from chalicelib.local.stack import provision; provision()\n"
        "from app import app\n"
        "from tests.client import Client\n"
        "from tests.images import make_image, random_layer\n"
        "c = Client(app)\n"
        "i = make_image([random_layer(1024, 'cold')])\n"
        "[c.push_blob('cold/app', b) for b in (i.config, *i.layers)]\n"
        "c.must_push('cold/app', 'v1', i.manifest)\n"
    )
    subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=env, check=True)


def measure(runs: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stratus-bench-cold-") as scratch:
        moto = servers.start_moto(Path(scratch))
        try:
            _seed_cold_start(moto.url)
            return {"runs": runs, **cold_start(moto.url, runs)}
        finally:
            moto.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 5")
    args = parser.parse_args()
    text = report.coldstart_section(measure(3 if args.quick else 5))
    report.write_section("coldstart", text)
    print(text)
