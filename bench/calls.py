"""`make bench`: Stratus measured, and side by side with CNCF Distribution.

Writes docs/benchmarks.md and docs/bench-*.png (generated: never edit them by hand):

1. AWS calls per operation, counted at botocore (chalicelib/storage/calls.py), beside the
   minimum the data model allows.
2. Latency per operation, in process and through the local HTTP server (p50, p99).
3. Cold start: time and memory to import the app, and to serve the first request.
4. skopeo push and pull, Stratus against Distribution 2.8 (Debian `docker-registry`, S3
   driver with redirects), both on the same moto server.
5. Cost per million pulls and pushes from the counted calls at AWS list prices, beside ECR.

moto stands in for AWS everywhere, so absolute times say little about AWS; the call counts,
the ratios between registries on the same stand-in, and the cold start do.

    .venv/bin/python bench/registry.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
for _key, _value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_key, _value)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_SESSION_TOKEN", None)

DOCS = ROOT / "docs"
PYTHON = sys.executable

# -- 1. AWS calls per operation ---------------------------------------------------------------

# What the data model allows, and why (docs/storage.md has the model).
MINIMUM: dict[str, tuple[int, str]] = {
    "GET /v2/ (auth off)": (0, "nothing to read"),
    "GET /v2/ (token)": (0, "the token is checked with the public key, no lookup"),
    "token (Basic, 1 scope)": (1, "account, failure counters and grants in one BatchGetItem"),
    "manifest GET by tag": (1, "the tag item carries the manifest"),
    "manifest HEAD by tag": (1, "same item"),
    "manifest GET by digest": (1, "the manifest item"),
    "manifest HEAD by digest": (1, "same item"),
    "blob HEAD": (1, "the repository's link item"),
    "blob GET (307)": (1, "the link item; presigning is local, no S3 call"),
    "tags list": (1, "one Query"),
    "catalog": (1, "one Query on the catalog index"),
    "referrers list": (1, "one Query"),
}


@dataclass
class Counted:
    calls: int
    detail: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    minimum: tuple[int, str] | None = None


def _count(client: Any, method: str, path: str, **kw: Any) -> tuple[Counted, Any]:
    from chalicelib.storage import calls

    before = dict(calls.counter)
    before_items = dict(calls.items)
    answer = client.request(method, path, **kw)
    detail = {
        f"{s}.{o}": n - before.get((s, o), 0)
        for (s, o), n in calls.counter.items()
        if n - before.get((s, o), 0)
    }
    units = {
        f"{s}.{o}": n - before_items.get((s, o), 0)
        for (s, o), n in calls.items.items()
        if n - before_items.get((s, o), 0)
    }
    return Counted(sum(detail.values()), detail, units), answer


def _add(total: Counted, part: Counted) -> None:
    total.calls += part.calls
    for key, value in part.detail.items():
        total.detail[key] = total.detail.get(key, 0) + value
    for key, value in part.units.items():
        total.units[key] = total.units.get(key, 0) + value


def count_calls(layers: int) -> dict[str, Counted]:
    """Every operation once, in process on moto, counted at botocore."""
    from moto import mock_aws

    from chalicelib.storage import calls
    from tests.client import Client
    from tests.images import OCI_MANIFEST, make_image, random_layer, sha256
    from tests.referrers_fixtures import referrer_manifest, subject_manifest

    calls.install(origins=True)
    results: dict[str, Counted] = {}
    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        from app import app

        client = Client(app)
        image = make_image([random_layer(4096, f"bench-{i}") for i in range(layers)])
        push = Counted(0)
        for blob in (image.config, *image.layers):
            digest = sha256(blob)
            for method, path, kw in (
                ("HEAD", f"/v2/bench/app/blobs/{digest}", {}),
                ("POST", "/v2/bench/app/blobs/uploads/", {}),
            ):
                counted, answer = _count(client, method, path, **kw)
                _add(push, counted)
            location = answer.header("Location")
            counted, answer = _count(
                client,
                "PUT",
                f"{location}{'&' if '?' in location else '?'}digest={digest}",
                body=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert answer.status == 201, answer.body
            _add(push, counted)
        counted, answer = _count(
            client,
            "PUT",
            "/v2/bench/app/manifests/v1",
            body=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert answer.status == 201, answer.body
        manifest_put = counted
        manifest_put.minimum = (
            3,
            "the old tag (a retag is conditional on it), one transaction, the config's labels "
            "for quay.expires-after",
        )
        _add(push, counted)
        blobs = layers + 1
        push.minimum = (
            5 * blobs + 3,
            "per blob: HEAD 1, session PutItem 1, close: session GetItem, link transaction, S3 "
            "PutObject; plus the manifest PUT",
        )
        results[f"full push, {layers} layers + config (HEAD, POST, PUT each; manifest PUT)"] = push
        results["manifest PUT by tag"] = manifest_put

        pull = Counted(0)
        for method, path in (
            ("GET", "/v2/bench/app/manifests/v1"),
            *(("GET", f"/v2/bench/app/blobs/{sha256(b)}") for b in (image.config, *image.layers)),
        ):
            counted, _ = _count(client, method, path)
            _add(pull, counted)
        pull.minimum = (layers + 2, "one read per request, no S3 call")
        results[f"full pull, {layers} layers + config (manifest GET, blob GETs)"] = pull

        subject = subject_manifest("bench")
        client.must_push("bench/app", "subject", subject)
        client.must_push("bench/app", "sig", referrer_manifest(subject, "application/x-sig"))
        single = {
            "GET /v2/ (auth off)": ("GET", "/v2/"),
            "manifest GET by tag": ("GET", "/v2/bench/app/manifests/v1"),
            "manifest HEAD by tag": ("HEAD", "/v2/bench/app/manifests/v1"),
            "manifest GET by digest": ("GET", f"/v2/bench/app/manifests/{image.digest}"),
            "manifest HEAD by digest": ("HEAD", f"/v2/bench/app/manifests/{image.digest}"),
            "blob HEAD": ("HEAD", f"/v2/bench/app/blobs/{sha256(image.layers[0])}"),
            "blob GET (307)": ("GET", f"/v2/bench/app/blobs/{sha256(image.layers[0])}"),
            "tags list": ("GET", "/v2/bench/app/tags/list"),
            "catalog": ("GET", "/v2/_catalog"),
            "referrers list": ("GET", f"/v2/bench/app/referrers/{sha256(subject)}"),
        }
        for label, (method, path) in single.items():
            counted, answer = _count(client, method, path)
            assert answer.status < 400, (label, answer.body)
            results[label] = counted

        results.update(_count_auth(client))
    return results


def _count_auth(client: Any) -> dict[str, Counted]:
    import dataclasses

    from chalicelib import config
    from chalicelib.auth import keys

    saved = config.settings
    key_file = Path(tempfile.mkdtemp()) / "key.pem"
    config.settings = dataclasses.replace(
        saved,
        auth=True,
        admin_user="bench",
        admin_password="bench-password",
        signing_key_file=str(key_file),
    )
    keys.forget()
    try:
        client.token("bench", "bench-password")  # creates the bootstrap admin
        import base64

        basic = "Basic " + base64.b64encode(b"bench:bench-password").decode()
        counted, answer = _count(
            client,
            "GET",
            "/v2/auth?service=stratus&scope=repository:bench/app:pull",
            headers={"Authorization": basic},
        )
        token = answer.json()["token"]
        holder = client.as_bearer(token)
        version, _ = _count(holder, "GET", "/v2/")
        by_tag, answer = _count(holder, "GET", "/v2/bench/app/manifests/v1")
        assert answer.status == 200
        return {
            "token (Basic, 1 scope)": counted,
            "GET /v2/ (token)": version,
            "manifest GET by tag (token)": by_tag,
        }
    finally:
        config.settings = saved
        keys.forget()


# -- 2. latency ---------------------------------------------------------------------------------

LATENCY_OPS = [
    ("GET /v2/", "GET", "/v2/"),
    ("manifest GET by tag", "GET", "/v2/lat/app/manifests/v1"),
    ("manifest HEAD by digest", "HEAD", "/v2/lat/app/manifests/{digest}"),
    ("blob HEAD", "HEAD", "/v2/lat/app/blobs/{blob}"),
    ("blob GET (307)", "GET", "/v2/lat/app/blobs/{blob}"),
    ("tags list", "GET", "/v2/lat/app/tags/list"),
]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def latency_in_process(iterations: int) -> dict[str, tuple[float, float]]:
    from moto import mock_aws

    from tests.client import Client
    from tests.images import make_image, random_layer, sha256

    out = {}
    with mock_aws():
        from chalicelib.local.stack import provision

        provision()
        from app import app

        client = Client(app)
        image = make_image([random_layer(2048, "lat")])
        for blob in (image.config, *image.layers):
            client.push_blob("lat/app", blob)
        client.must_push("lat/app", "v1", image.manifest)
        values = {"digest": image.digest, "blob": sha256(image.layers[0])}
        for label, method, path in LATENCY_OPS:
            target = path.format(**values)
            samples = []
            for _ in range(iterations):
                began = time.perf_counter()
                client.request(method, target)
                samples.append((time.perf_counter() - began) * 1000)
            out[label] = _percentiles(samples)
    return out


def latency_over_http(registry: str, iterations: int) -> dict[str, tuple[float, float]]:
    import requests

    from tests.images import make_image, random_layer, sha256

    session = requests.Session()
    image = make_image([random_layer(2048, "lat-http")])
    for blob in (image.config, *image.layers):
        answer = session.post(
            f"{registry}/v2/lat/app/blobs/uploads/?digest={sha256(blob)}", data=blob, timeout=30
        )
        assert answer.status_code == 201, answer.text
    answer = session.put(
        f"{registry}/v2/lat/app/manifests/v1",
        data=image.manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    values = {"digest": image.digest, "blob": sha256(image.layers[0])}
    out = {}
    for label, method, path in LATENCY_OPS:
        url = registry + path.format(**values)
        samples = []
        for _ in range(iterations):
            began = time.perf_counter()
            session.request(method, url, allow_redirects=False, timeout=30)
            samples.append((time.perf_counter() - began) * 1000)
        out[label] = _percentiles(samples)
    return out


# -- 3. cold start ------------------------------------------------------------------------------

_COLD = r"""
import json, os, resource, sys, time
began = time.perf_counter()
import app
imported = time.perf_counter()
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from chalicelib.local import events
answer = events.invoke(app.app, "GET", "/v2/cold/app/manifests/v1", [("Accept", "*/*")], b"")
served = time.perf_counter()
assert answer.status == 200, answer.body
print(json.dumps({
    "import_ms": (imported - began) * 1000,
    "first_request_ms": (served - imported) * 1000,
    "rss_import_mb": rss_import / 1024,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


# Where `import app`'s time goes: cumulative import time of these, from `-X importtime`.
IMPORT_PARTS = {
    "pynamodb (with botocore, urllib3)": "pynamodb.models",
    "chalice": "chalice",
    "chalicelib (own code, without the above)": None,
}


def cold_start(endpoint: str, runs: int) -> dict[str, float]:
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
    own = cumulative.get("app", 0) - sum(parts.values())
    result.update(parts)
    result["chalicelib (own code, without the above)"] = own
    return result


def _import_times(stderr: str) -> dict[str, float]:
    """Milliseconds per module, cumulative, from `python -X importtime` (first import only)."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        out.setdefault(name.strip(), int(cumulative) / 1000)
    return out


# -- 4. side by side with Distribution ---------------------------------------------------------


def _free_port() -> int:
    from chalicelib.local.stack import free_port

    return free_port()


def _wait(url: str, process: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()[-2000:]}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


class Servers:
    """One moto server; Stratus (local mode on it) and Distribution (S3 driver on it)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[subprocess.Popen] = []
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        moto_port = _free_port()
        self.endpoint = f"http://127.0.0.1:{moto_port}"
        self._spawn(
            [str(Path(PYTHON).parent / "moto_server"), "-p", str(moto_port)],
            env,
            "moto",
            f"{self.endpoint}/",
        )
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket="distribution")
        stratus_port = _free_port()
        self.stratus = f"127.0.0.1:{stratus_port}"
        stratus_env = {
            **env,
            "AWS_ENDPOINT_URL": self.endpoint,
            "PORT": str(stratus_port),
            "PYTHONPATH": str(ROOT),
        }
        stratus_env.pop("STRATUS_RECORD_AWS_CALLS", None)
        self._spawn(
            [PYTHON, "-m", "chalicelib.local", "--quiet"],
            stratus_env,
            "stratus",
            f"http://{self.stratus}/v2/",
        )
        self.distribution = None
        binary = shutil.which("docker-registry")
        if binary:
            dist_port = _free_port()
            self.distribution = f"127.0.0.1:{dist_port}"
            config = work / "distribution.yml"
            config.write_text(
                json.dumps(
                    {
                        "version": 0.1,
                        "log": {"level": "error", "accesslog": {"disabled": True}},
                        "storage": {
                            "s3": {
                                "accesskey": "bench",
                                "secretkey": "bench",
                                "region": "us-east-1",
                                "regionendpoint": self.endpoint,
                                "bucket": "distribution",
                                "secure": False,
                                "v4auth": True,
                                "rootdirectory": "/registry",
                            },
                            "redirect": {"disable": False},
                            "cache": {"blobdescriptor": "inmemory"},
                        },
                        "http": {"addr": self.distribution},
                    }
                )
            )
            self._spawn(
                [binary, "serve", str(config)],
                env,
                "distribution",
                f"http://{self.distribution}/v2/",
            )

    def _spawn(self, command: list[str], env: dict, name: str, url: str) -> None:
        log = self.work / f"{name}.log"
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        _wait(url, process, log)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _skopeo(*args: str) -> float:
    began = time.perf_counter()
    subprocess.run(
        ["skopeo", "--insecure-policy", *args], check=True, capture_output=True, timeout=600
    )
    return time.perf_counter() - began


def side_by_side(servers: Servers, work: Path, rounds: int) -> dict[str, dict[str, float]]:
    from tests.images import (
        OCI_LAYER_TAR,
        image_layout,
        index_layout,
        make_image,
        make_index,
        random_layer,
    )

    mib = 1024 * 1024
    multi_arch_images = [
        make_image(
            [random_layer(mib, f"ma-{arch}-{i}", compress=False) for i in range(2)],
            architecture=arch,
            layer_type=OCI_LAYER_TAR,
        )
        for arch in ("amd64", "arm64")
    ]
    layouts = {
        "small (1 layer, 4 KiB)": (
            image_layout(work / "small", make_image([random_layer(4096, "small")])),
            [],
        ),
        "multi-layer (5 x 6 MiB)": (
            image_layout(
                work / "big",
                make_image(
                    [random_layer(6 * mib, f"big-{i}", compress=False) for i in range(5)],
                    layer_type=OCI_LAYER_TAR,
                ),
            ),
            [],
        ),
        "multi-arch (2 x 2 x 1 MiB)": (
            index_layout(
                work / "multiarch",
                multi_arch_images,
                make_index(multi_arch_images, [("linux", "amd64"), ("linux", "arm64")]),
            ),
            ["--all"],
        ),
    }
    registries = {"Stratus": servers.stratus, "Distribution 2.8": servers.distribution}
    results: dict[str, dict[str, float]] = {}
    for image_label, (layout, extra) in layouts.items():
        for name, host in registries.items():
            if host is None:
                continue
            pushes, pulls = [], []
            for round_ in range(rounds):
                repo = f"bench/{abs(hash(image_label)) % 10000}-{round_}"
                pushes.append(
                    _skopeo(
                        "copy",
                        "--dest-tls-verify=false",
                        *extra,
                        f"oci:{layout}:latest",
                        f"docker://{host}/{repo}:v1",
                    )
                )
                out = work / f"pull-{name.split()[0]}-{round_}-{abs(hash(image_label))}"
                pulls.append(
                    _skopeo(
                        "copy",
                        "--src-tls-verify=false",
                        *extra,
                        f"docker://{host}/{repo}:v1",
                        f"oci:{out}:pulled",
                    )
                )
                shutil.rmtree(out, ignore_errors=True)
            results.setdefault(image_label, {})[f"{name} push"] = statistics.median(pushes)
            results[image_label][f"{name} pull"] = statistics.median(pulls)
    return results


# -- 5. cost ------------------------------------------------------------------------------------

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


def _request_cost(counted: Counted, api_requests: int, s3_redirects: int) -> float:
    reads = writes = 0.0
    s3_gets = s3_puts = 0
    for key, units in counted.units.items():
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


def costs(counted: dict[str, Counted], layers: int) -> list[tuple[str, float, float]]:
    """(operation, Stratus per million, ECR per million), transfer excluded (equal for both)."""
    pull = next(v for k, v in counted.items() if k.startswith("full pull"))
    push = next(v for k, v in counted.items() if k.startswith("full push"))
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


# -- report -------------------------------------------------------------------------------------


def _plot(side: dict[str, dict[str, float]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = list(side)
    series = sorted({key for row in side.values() for key in row})
    width = 0.8 / max(1, len(series))
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for i, name in enumerate(series):
        axis.bar(
            [x + i * width for x in range(len(labels))],
            [side[label].get(name, 0) for label in labels],
            width,
            label=name,
        )
    axis.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels)
    axis.set_ylabel("seconds (median)")
    axis.set_title("skopeo push and pull on the same moto server")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _ms(value: float) -> str:
    return f"{value:.1f}"


def report(
    counted: dict[str, Counted],
    in_process: dict[str, tuple[float, float]],
    over_http: dict[str, tuple[float, float]],
    cold: dict[str, float],
    side: dict[str, dict[str, float]],
    cost_rows: list[tuple[str, float, float]],
    plotted: bool,
    layers: int,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (bench/registry.py); do not edit by hand.",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",  # noqa: E501
        "moto stands in for AWS: call counts and ratios carry over to AWS, absolute times do not.",
        "",
        "## AWS calls per operation",
        "",
        "Counted at botocore for one request each (in process, moto). *Minimum* is what the data",
        "model allows; a miss is marked.",
        "",
        "| operation | calls | minimum | target | calls by kind |",
        "|---|---|---|---|---|",
    ]
    for label, value in counted.items():
        minimum, why = value.minimum or MINIMUM.get(label.replace(" (token)", ""), (None, ""))
        verdict = ""
        if minimum is not None:
            over = value.calls - minimum
            verdict = "met" if over <= 0 else f"**missed by {over}**"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(value.detail.items())) or "none"
        min_text = "-" if minimum is None else f"{minimum} ({why})"
        lines.append(f"| {label} | {value.calls} | {min_text} | {verdict} | {kinds} |")
    pull = next(v for k, v in counted.items() if k.startswith("full pull"))
    s3_on_pull = sum(v for k, v in pull.detail.items() if k.startswith("s3."))
    lines += [
        "",
        f"Targets: a manifest GET by tag costs one DynamoDB read "
        f"({'met' if counted['manifest GET by tag'].calls == 1 else 'missed'}); a blob GET at "
        f"most one DynamoDB read and no S3 call "
        f"({'met' if counted['blob GET (307)'].calls <= 1 else 'missed'}); no blob byte of a pull "
        f"passes through Lambda: a full pull makes {s3_on_pull} S3 calls from the registry "
        f"({'met' if s3_on_pull == 0 else 'missed'}), every blob is a 307 to S3.",
        "",
        "## Latency per operation",
        "",
        "Milliseconds, p50 / p99, moto behind. In process: the Chalice app called with API Gateway",
        "events; HTTP: the local server (`make run`) over loopback.",
        "",
        "| operation | in process p50 | p99 | HTTP p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for label in in_process:
        a, b = in_process[label]
        c, d = over_http.get(label, (float("nan"), float("nan")))
        lines.append(f"| {label} | {_ms(a)} | {_ms(b)} | {_ms(c)} | {_ms(d)} |")
    import_target = (
        "met" if cold["import_ms"] < 300 else f"missed by {cold['import_ms'] - 300:.0f} ms"
    )
    lines += [
        "",
        "## Cold start",
        "",
        "A fresh interpreter per run (median of runs), as a new Lambda container: `import app`,",
        "then one manifest GET by tag against a moto server (first AWS clients and connections",
        "included).",
        "",
        "| | value |",
        "|---|---|",
        f"| `import app` | {cold['import_ms']:.0f} ms (target < 300 ms: {import_target}) |",
        f"| first request after import | {cold['first_request_ms']:.0f} ms |",
        f"| memory after import (max RSS) | {cold['rss_import_mb']:.0f} MB |",
        f"| memory after first request | {cold['rss_mb']:.0f} MB |",
        "",
        "Where the import time goes (cumulative, `python -X importtime`, which adds overhead):",
        "",
        *(f"- {label}: {cold[label]:.0f} ms" for label in IMPORT_PARTS),
        "",
        "pynamodb's botocore is most of it, and every request that reads or writes data needs",
        "it: deferring it to the first request would only move the time there, out of Lambda's",
        "init phase, which runs with a full CPU whatever the memory setting. Powertools, pyjwt",
        "and cryptography are not imported until a request needs them.",
        "",
        "## Side by side with CNCF Distribution",
        "",
    ]
    if side and any("Distribution 2.8 push" in row for row in side.values()):
        lines += [
            "skopeo push and pull (median wall seconds) of the same images to Stratus (local mode)",
            "and Distribution 2.8 (Debian `docker-registry`, S3 driver, redirects on), both on one",
            "moto server. Ratio = Stratus / Distribution; under 1.0 Stratus is faster.",
            "",
            "| image | Stratus push | Distribution push | ratio | Stratus pull | Distribution pull | ratio |",  # noqa: E501
            "|---|---|---|---|---|---|---|",
        ]
        slower = []
        for label, row in side.items():
            sp, dp = row["Stratus push"], row["Distribution 2.8 push"]
            sl, dl = row["Stratus pull"], row["Distribution 2.8 pull"]
            lines.append(
                f"| {label} | {sp:.2f} | {dp:.2f} | {sp / dp:.2f} | {sl:.2f} | {dl:.2f} | {sl / dl:.2f} |"  # noqa: E501
            )
            total = (sp + sl) / (dp + dl)
            if total > 1:
                slower.append(f"{label}: push+pull {total:.2f}x Distribution's")
        lines += [
            "",
            "Target: Stratus's push+pull no slower than Distribution's on the same stand-in: "
            + (
                "met for every image."
                if not slower
                else "**missed** for " + "; ".join(slower) + "."
            ),
        ]
        if plotted:
            lines += ["", "![skopeo push and pull](bench-side-by-side.png)"]
    else:
        lines.append(
            "Distribution (`docker-registry`) is not installed: `apt-get install docker-registry`."
        )
    lines += [
        "",
        "## Cost per million operations",
        "",
        f"A typical image of {layers} layers and a config, from the calls counted above, at AWS",
        "list prices (us-east-1, on demand): API Gateway REST, Lambda (1 GB, "
        f"{LAMBDA_MS_ASSUMED} ms per request assumed), DynamoDB on-demand units, S3 requests.",
        "Data transfer out ($0.09/GB) is the same for Stratus (S3) and ECR and is left out;",
        "ECR charges no request fees. Storage: S3 $0.023/GB-month against ECR's $0.10/GB-month.",
        "",
        "| operation | Stratus per million | ECR per million |",
        "|---|---|---|",
    ]
    for label, stratus, ecr in cost_rows:
        lines.append(f"| {label} | ${stratus:,.2f} | ${ecr:,.2f} |")
    lines += [
        "",
        "API Gateway is most of the per-request cost; storage is where Stratus is cheaper than ECR",
        "(a registry storing 1 TB pays about $23/month in S3 against ECR's $100).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and rounds")
    args = parser.parse_args()
    iterations, rounds, cold_runs = (30, 1, 3) if args.quick else (200, 3, 5)
    layers = 5
    counted = count_calls(layers)
    print("calls counted", flush=True)
    in_process = latency_in_process(iterations)
    print("in-process latency measured", flush=True)
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
    servers = Servers(work)
    try:
        over_http = latency_over_http(f"http://{servers.stratus}", iterations)
        print("HTTP latency measured", flush=True)
        _seed_cold_start(servers.endpoint)
        cold = cold_start(servers.endpoint, cold_runs)
        print("cold start measured", flush=True)
        side = side_by_side(servers, work, rounds)
        print("side by side measured", flush=True)
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)
    plotted = _plot(side, DOCS / "bench-side-by-side.png")
    text = report(
        counted, in_process, over_http, cold, side, costs(counted, layers), plotted, layers
    )
    (DOCS / "benchmarks.md").write_text(text)
    print(text)
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
