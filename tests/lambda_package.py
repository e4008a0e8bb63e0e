"""The deployment package as Lambda runs it: the zip infra/package.py builds, unzipped, its
handlers run in a fresh interpreter that has only the zip's contents and boto3 (what the
Lambda Python runtime provides, shadowed by the zip's pinned SDK), no dev dependency. Used
by tests/unit/test_package.py and bench/package.py (size, cold start).

Each function is a `Container`: a process that imports the handler once (Lambda's init
phase), then answers invocations read from stdin, as the runtime's loop does.
"""

from __future__ import annotations

import base64
import fcntl
import json
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"
MARK = "\x1fstratus-runtime\x1f"  # starts the runtime's own lines; the rest are the logs

# The runtime loop, run with `python -I` so that nothing but the task root and the
# interpreter's own site-packages (boto3) is importable.
_RUNTIME = r"""
import importlib, json, os, sys, time, traceback, uuid

MARK = "\x1fstratus-runtime\x1f"


def peak_rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


def answer(**fields):
    sys.stdout.write(MARK + json.dumps(fields) + "\n")
    sys.stdout.flush()


class Context:
    def __init__(self):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ['AWS_REGION']}:{os.environ['STRATUS_ACCOUNT']}"
            f":function:{self.function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self):
        return 29_000


sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
began = time.perf_counter()
module, _, name = os.environ["_HANDLER"].rpartition(".")
handler = getattr(importlib.import_module(module), name)
answer(init_ms=(time.perf_counter() - began) * 1000, peak_rss_kb=peak_rss_kb())
for line in sys.stdin:
    request = json.loads(line)
    if request.get("modules"):
        files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
        answer(modules=sorted(f for f in files if f))
        continue
    began = time.perf_counter()
    try:
        result, error = handler(request["event"], Context()), None
    except Exception:
        result, error = None, traceback.format_exc()
    answer(
        result=result,
        error=error,
        ms=(time.perf_counter() - began) * 1000,
        peak_rss_kb=peak_rss_kb(),
    )
"""


def lambda_python(cache: Path | None = None) -> Path:
    """A venv (no system site-packages) with only boto3, at the version the dev venv has,
    standing in for the Lambda runtime's: made once per boto3 version and kept."""
    version = metadata.version("boto3")
    tag = f"py{sys.version_info.major}{sys.version_info.minor}-boto3-{version}"
    home = (cache or Path(tempfile.gettempdir())) / f"stratus-lambda-runtime-{tag}"
    home.parent.mkdir(parents=True, exist_ok=True)
    with home.with_name(home.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent sessions build it once
        if not (home / ".complete").exists():
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
            pip = [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, "--disable-pip-version-check", f"boto3=={version}"], check=True)
            (home / ".complete").touch()
    return home / "bin" / "python"


def build_package(out: Path, stage: str = "dev") -> dict[str, Any]:
    """`chalice package` into `out` (deployment.zip, sam.json) as infra.deploy builds the
    package (infra/package.py); the SAM template."""
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(Path.home()),
        "AWS_DEFAULT_REGION": REGION,
    }
    done = subprocess.run(
        [sys.executable, "-m", "infra.package", "package", "--stage", stage, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chalice package failed:\n{done.stdout}{done.stderr}")
    return json.loads((out / "sam.json").read_text())


def unzip(package: Path, task_root: Path) -> Path:
    """The zip into an empty directory, as Lambda lays it out in /var/task."""
    task_root.mkdir(parents=True)
    with zipfile.ZipFile(package) as archive:
        archive.extractall(task_root)
    return task_root


def package_size(package: Path) -> dict[str, Any]:
    """The zip's bytes, its unzipped bytes and file count, and the same per top-level name
    (largest first)."""
    largest: dict[str, dict[str, int]] = {}
    with zipfile.ZipFile(package) as archive:
        entries = [entry for entry in archive.infolist() if not entry.is_dir()]
    for entry in entries:
        share = largest.setdefault(entry.filename.split("/")[0], {"files": 0, "bytes": 0})
        share["files"] += 1
        share["bytes"] += entry.file_size
    return {
        "zip_bytes": package.stat().st_size,
        "unzipped_bytes": sum(entry.file_size for entry in entries),
        "files": len(entries),
        "largest": dict(sorted(largest.items(), key=lambda item: -item[1]["bytes"])),
    }


def stage_on_moto(endpoint: str, admin_password: str, stage: str = "dev") -> dict[str, str]:
    """The stage's tables, bucket and secrets in the moto server at `endpoint`, as
    `infra.deploy up` makes them (its stack and secrets steps); the stack's outputs."""
    import boto3

    from infra import deploy

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    outputs = deploy.deploy_stack(session.client("cloudformation", endpoint_url=endpoint), stage)
    ssm = session.client("ssm", endpoint_url=endpoint)
    deploy.ensure_secrets(ssm, outputs)
    ssm.put_parameter(
        Name=outputs["AdminPasswordParameter"],
        Value=admin_password,
        Type="SecureString",
        Overwrite=True,
    )
    return outputs


def function_environment(
    sam: dict[str, Any], logical_id: str, outputs: dict[str, str], endpoint: str
) -> dict[str, str]:
    """What Lambda gives the function: the template's variables with the stack's outputs
    (as `infra.deploy up` writes them into the stage), and the runtime's own."""
    from infra import deploy

    function = sam["Resources"][logical_id]["Properties"]
    name = function.get("FunctionName") or _function_name(logical_id)
    return {
        **function["Environment"]["Variables"],
        **deploy.stage_environment(outputs),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.get("MemorySize", 1024)),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "_HANDLER": function["Handler"],
        "STRATUS_ACCOUNT": ACCOUNT,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **(_TRACING if function.get("Tracing") == "Active" else {}),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }


# What Lambda sets for a function with active tracing (the trace id changes per request);
# segments go by UDP to a daemon that is not there, as they may in Lambda.
_TRACING = {
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
    "Sampled=1",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}


def _function_name(logical_id: str) -> str:
    """Chalice's names: the app and stage for the API, then the function's own name."""
    names = {"APIHandler": "", "Cleanup": "cleanup"}
    names["VerifyUpload"] = "verify_upload"
    return "stratus-dev" + (f"-{names[logical_id]}" if names[logical_id] else "")


@dataclass
class Invocation:
    result: Any
    error: str | None
    ms: float
    peak_rss_kb: int
    logs: list[str] = field(default_factory=list)


class Container:
    """One function's execution environment: the handler imported once, then invocations."""

    def __init__(
        self, python: Path, task_root: Path, env: dict[str, str], flags: tuple[str, ...] = ()
    ) -> None:
        """`flags` go to the interpreter (`-X importtime`: its lines come with the logs)."""
        self.process = subprocess.Popen(
            # -B: /var/task is read-only in Lambda, so nothing compiled is ever kept there.
            [str(python), "-I", "-B", *flags, "-c", _RUNTIME],
            cwd=task_root,
            env={**env, "LAMBDA_TASK_ROOT": str(task_root)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        init, self.init_logs = self._answer()
        self.init_ms: float = init["init_ms"]
        self.init_peak_rss_kb: int = init["peak_rss_kb"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def _answer(self, timeout: float = 120) -> tuple[dict[str, Any], list[str]]:
        logs = []
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError("the function did not answer:\n" + "".join(logs)) from None
            if not line:
                raise RuntimeError("the function's process exited:\n" + "".join(logs))
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :]), logs
            logs.append(line)

    def _send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def invoke(self, event: dict[str, Any]) -> Invocation:
        self._send({"event": event})
        answer, logs = self._answer()
        return Invocation(
            answer["result"], answer["error"], answer["ms"], answer["peak_rss_kb"], logs
        )

    def modules(self) -> list[str]:
        """The files of every module loaded so far."""
        self._send({"modules": True})
        return self._answer()[0]["modules"]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def proxy_event(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> dict[str, Any]:
    """The REST API proxy event API Gateway sends: every body base64-encoded, as under the
    API's `*/*` binary media types."""
    from chalicelib.local.events import build_event

    sent = {"Host": "registry.example.com", "X-Forwarded-Proto": "https", **(headers or {})}
    event = build_event(method, target, list(sent.items()), body)
    assert event is not None, f"API Gateway has no route for {target}"
    event["requestContext"]["stage"] = "api"
    return event


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def http_answer(result: dict[str, Any]) -> HttpAnswer:
    """What API Gateway makes of the function's result."""
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
    return HttpAnswer(int(result["statusCode"]), headers, body)
