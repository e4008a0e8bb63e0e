"""Cold start of the deployment package as Lambda runs it: `python bench/package.py` (make bench).

bench/registry.py measures the app imported from the working tree, with the dev venv's
site-packages on the path. This measures what users meet: `chalice package`'s zip,
unzipped, the API function started in a fresh interpreter with only the zip's contents and
boto3 (tests/lambda_package.py), the dev stage's environment (auth on), AWS on a moto
server. Each run is a new container: init (`import app`), then one first request. Peak RSS
is VmHWM from /proc/self/status: ru_maxrss would count the process it was forked from.

Writes its section of docs/benchmarks.md between the package markers (appended when the
file has none, as after bench/registry.py regenerated it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import lambda_package as lp  # noqa: E402
from tests import moto_server  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- package:start -->", "<!-- package:end -->"
PASSWORD = "bench-admin-password"
REPOSITORY, TAG = "cold/app", "v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Deployment:
    """The package unzipped, its runtime, and a moto server holding the dev stage."""

    def __init__(self, work: Path) -> None:
        self.sam = lp.build_package(work / "out")
        self.zip_mb = (work / "out" / "deployment.zip").stat().st_size / 2**20
        self.task_root = lp.unzip(work / "out" / "deployment.zip", work / "task")
        files = (f for f in self.task_root.rglob("*") if f.is_file())
        self.unzipped_mb = sum(f.stat().st_size for f in files) / 2**20
        self.python = lp.lambda_python()
        # The same zip with bytecode compiled in by the runtime's Python: what it would save.
        self.compiled_root = lp.unzip(work / "out" / "deployment.zip", work / "compiled")
        subprocess.run(
            [str(self.python), "-m", "compileall", "-q", str(self.compiled_root)], check=True
        )
        self.moto, self.endpoint = moto_server.start(work / "moto.log")
        self.outputs = lp.stage_on_moto(self.endpoint, PASSWORD)

    def container(self, *flags: str, compiled: bool = False) -> lp.Container:
        env = lp.function_environment(self.sam, "APIHandler", self.outputs, self.endpoint)
        root = self.compiled_root if compiled else self.task_root
        return lp.Container(self.python, root, env, flags)

    def stop(self) -> None:
        moto_server.stop(self.moto)


def _call(container: lp.Container, method: str, target: str, **headers: str) -> lp.Invocation:
    invocation = container.invoke(lp.proxy_event(method, target, headers))
    if invocation.error:
        raise RuntimeError(invocation.error)
    return invocation


def _basic() -> str:
    return "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def _token_target() -> str:
    return f"/v2/auth?service=stratus-dev&scope=repository:{REPOSITORY}:pull,push"


def seed(deployment: Deployment) -> str:
    """Log the bootstrap admin in once (creating it), push the image the cold requests
    pull; a bearer token for them."""
    from tests.images import make_image, random_layer, sha256

    warm = deployment.container()
    try:
        answer = lp.http_answer(_call(warm, "GET", _token_target(), Authorization=_basic()).result)
        token = json.loads(answer.body)["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        image = make_image([random_layer(1024, "cold")])
        for blob in (image.config, *image.layers):
            target = f"/v2/{REPOSITORY}/blobs/uploads/?digest={sha256(blob)}"
            invocation = warm.invoke(lp.proxy_event("POST", target, bearer, blob))
            assert lp.http_answer(invocation.result).status == 201
        invocation = warm.invoke(
            lp.proxy_event(
                "PUT",
                f"/v2/{REPOSITORY}/manifests/{TAG}",
                {**bearer, "Content-Type": OCI_MANIFEST},
                image.manifest,
            )
        )
        assert lp.http_answer(invocation.result).status == 201
        return token
    finally:
        warm.close()


def cold_start(
    deployment: Deployment,
    first: Callable[[lp.Container], lp.Invocation],
    compiled: bool = False,
) -> dict:
    """One new container: its init, then `first` as its first request."""
    container = deployment.container(compiled=compiled)
    try:
        invocation = first(container)
        status = lp.http_answer(invocation.result).status
        if status != 200:
            raise RuntimeError(f"first request answered {status}")
        return {
            "init_ms": container.init_ms,
            "init_rss_mb": container.init_peak_rss_kb / 1024,
            "first_ms": invocation.ms,
            "first_rss_mb": invocation.peak_rss_kb / 1024,
        }
    finally:
        container.close()


def import_times(lines: list[str]) -> dict[str, float]:
    """Milliseconds of import per top-level package (its modules' own times, wherever they
    were imported from), from `-X importtime` lines, which slow imports: for the breakdown
    only."""
    out: dict[str, float] = {}
    for line in lines:
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        root = name.strip().split(".")[0]
        out[root] = out.get(root, 0) + int(own) / 1000
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def breakdown(deployment: Deployment, first: Callable[[lp.Container], lp.Invocation]) -> dict:
    """Where init and the first request spend their import time."""
    container = deployment.container("-X", "importtime")
    try:
        invocation = first(container)
        return {"init": import_times(container.init_logs), "first": import_times(invocation.logs)}
    finally:
        container.close()


def measure(runs: int) -> dict[str, float | dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-package-"))
    deployment = Deployment(work)
    try:
        token = seed(deployment)

        def pull(container: lp.Container) -> lp.Invocation:
            target = f"/v2/{REPOSITORY}/manifests/{TAG}"
            return _call(
                container, "GET", target, Authorization=f"Bearer {token}", Accept=OCI_MANIFEST
            )

        def login(container: lp.Container) -> lp.Invocation:
            return _call(container, "GET", _token_target(), Authorization=_basic())

        results: dict[str, float | dict[str, float]] = {
            "zip_mb": deployment.zip_mb,
            "unzipped_mb": deployment.unzipped_mb,
            "load": os.getloadavg()[0],
        }
        cases = {"pull": (pull, False), "login": (login, False), "compiled": (pull, True)}
        for label, (first, compiled) in cases.items():
            samples = [cold_start(deployment, first, compiled) for _ in range(runs)]
            results[label] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        results["imports"] = breakdown(deployment, pull)
        return results
    finally:
        deployment.stop()


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=92, break_on_hyphens=False)


def section(results: dict, runs: int) -> str:
    pull, login, compiled = results["pull"], results["login"], results["compiled"]
    intro = (
        f"What users meet: `chalice package`'s zip ({results['zip_mb']:.1f} MB; "
        f"{results['unzipped_mb']:.0f} MB unzipped, of Lambda's 250 MB), unzipped and run as "
        "Lambda runs it, in a fresh interpreter with only the zip's contents and boto3 (no dev "
        "dependency), the dev stage's environment (auth on, active tracing), moto for AWS "
        f"(bench/package.py). Median of {runs} new containers for each first request. Peak "
        "RSS is VmHWM from /proc/self/status. Load average when measured: "
        f"{results['load']:.1f} on {os.cpu_count()} CPUs (other work inflates the times, not "
        "the memory)."
    )
    bytecode = (
        "The zip has no bytecode and Lambda's /var/task is read-only, so every cold start "
        "compiles what it imports (the runs here use `python -B`: nothing is kept, as in "
        "Lambda). The last two rows are the same zip after `python -m compileall` by the "
        "runtime's Python version."
    )
    lazy = (
        "The first request pays for what the app loads lazily: the signing keys from SSM, "
        "pyjwt and cryptography, Powertools and X-Ray, the first DynamoDB connection. A login "
        "also runs scrypt (16 MiB of memory by design)."
    )
    rows = [
        ("init (`import app`)", pull["init_ms"], pull["init_rss_mb"]),
        (
            "first request: manifest GET by tag, bearer token",
            pull["first_ms"],
            pull["first_rss_mb"],
        ),
        ("cold start to that answer", pull["init_ms"] + pull["first_ms"], None),
        ("first request: token, Basic login (scrypt)", login["first_ms"], login["first_rss_mb"]),
        ("init, bytecode compiled into the zip", compiled["init_ms"], compiled["init_rss_mb"]),
        (
            "first request (manifest GET), bytecode compiled in",
            compiled["first_ms"],
            compiled["first_rss_mb"],
        ),
    ]
    table = [
        f"| {label} | {ms:.0f} ms | {'' if mb is None else f'{mb:.0f} MB'} |"
        for label, ms, mb in rows
    ]
    return "\n".join(
        [
            START,
            "## Cold start of the deployment package",
            "",
            _paragraph(intro),
            "",
            "| | time | peak RSS |",
            "|---|---|---|",
            *table,
            "",
            _paragraph(bytecode),
            "",
            _paragraph(lazy),
            "",
            "Import time by package, its modules' own (`python -X importtime`, which adds",
            "overhead; the five largest):",
            "",
            f"- init: {_largest(results['imports']['init'])}",
            f"- first request: {_largest(results['imports']['first'])}",
            END,
        ]
    )


def _largest(times: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.0f} ms" for name, ms in list(times.items())[:5]) or "none"


def write(text: str, path: Path = DOCS) -> None:
    """Replace the section between the markers, or append it."""
    current = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 containers instead of 7")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 7)
    text = section(measure(runs), runs)
    write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
