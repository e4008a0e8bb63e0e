"""The deployment package: its size and file count, and its cold start as Lambda runs it.

bench/coldstart.py measures the app imported from the working tree, with the dev venv's
site-packages on the path. This measures what users meet: the zip `python -m infra.package`
builds, unzipped, the API function started in a fresh interpreter with only the zip's
contents and boto3 (tests/lambda_package.py), the dev stage's environment (auth on), AWS on
a moto server. Each run is a new container: init (`import app`), then one first request.
Peak RSS is VmHWM from /proc/self/status: ru_maxrss would count the process it was forked
from.

    python -m bench package [--quick] [--compare LABEL=ZIP ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from tests import lambda_package as lp
from tests import servers

PASSWORD = "bench-admin-password"
REPOSITORY, TAG = "cold/app", "v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Deployment:
    """The package unzipped, its runtime, and a moto server holding the dev stage."""

    def __init__(self, work: Path) -> None:
        self.sam = lp.build_package(work / "out")
        self.size = lp.package_size(work / "out" / "deployment.zip")
        self.task_root = lp.unzip(work / "out" / "deployment.zip", work / "task")
        self.python = lp.lambda_python()
        # The same zip with bytecode compiled in by the runtime's Python: what it would save.
        self.compiled_root = lp.unzip(work / "out" / "deployment.zip", work / "compiled")
        subprocess.run(
            [str(self.python), "-m", "compileall", "-q", str(self.compiled_root)], check=True
        )
        self.moto = servers.start_moto(work)
        self.endpoint = self.moto.url
        self.outputs = lp.stage_on_moto(self.endpoint, PASSWORD)

    def container(self, *flags: str, compiled: bool = False) -> lp.Container:
        env = lp.function_environment(self.sam, "APIHandler", self.outputs, self.endpoint)
        root = self.compiled_root if compiled else self.task_root
        return lp.Container(self.python, root, env, flags)

    def stop(self) -> None:
        self.moto.stop()


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


def measure(runs: int = 7) -> dict[str, Any]:
    """{"size": {...}, "runs": n, "pull"|"login"|"compiled": {init_ms, init_rss_mb, first_ms,
    first_rss_mb}, "imports": {"init"|"first": {package: ms}}}."""
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

        results: dict[str, Any] = {"size": deployment.size, "runs": runs}
        cases = {"pull": (pull, False), "login": (login, False), "compiled": (pull, True)}
        for label, (first, compiled) in cases.items():
            samples = [cold_start(deployment, first, compiled) for _ in range(runs)]
            results[label] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        results["imports"] = breakdown(deployment, pull)
        return results
    finally:
        deployment.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 containers instead of 7")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=ZIP",
        help="another deployment zip's size beside the shipped one's (e.g. an older build)",
    )
    args = parser.parse_args()
    data = measure(args.runs or (3 if args.quick else 7))
    compared = dict(item.split("=", 1) for item in args.compare)
    data["compared"] = {label: lp.package_size(Path(zip)) for label, zip in compared.items()}
    text = report.package_section(data)
    report.write_section("package", text)
    print(text)
