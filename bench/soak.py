"""`make bench-soak`: a soak of local mode, 10,000 image pushes and pulls from 8 clients.

Why: the other benchmarks time single requests; a registry people leave running must also
hold its memory, its latency and every acknowledged write over a long, concurrent run.
Distribution 2.8 (Debian `docker-registry`, filesystem driver) does the same work in the
same run as the yardstick.

Per image: one unique 1 KiB layer of random bytes and a small config, each uploaded whole
(a single POST with `?digest=` where the registry takes it, else POST then PUT), then an OCI
manifest PUT by tag, spread over 100 repositories; then a pull (manifest GET by tag, blob
GET, following a redirect to S3). After every 1,000 images: p50/p99 of manifest PUT and
pull, the server's RSS (its process and children), and a re-read of a sample of all the
images acknowledged so far; at the end, all of them. A re-read that finds a manifest missing
or changed, or a blob missing or not hashing to its digest, is a lost write.

A benchmark, not a test: it reports what it saw and fails nothing. It stops by itself, and
early when the server's RSS or the wall time passes a cutoff, saying so in the table.
Writes the section between the soak markers of docs/benchmarks.md and docs/bench-soak.json.

    python -m bench soak -- [--images 10000] [--clients 8]
        [--registries stratus,distribution] [--out docs/benchmarks.md]
    python -m bench soak -- --from-json   # rewrite the section from the JSON only
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from bench import DOCS, percentile, report, sidebyside
from tests import servers
from tests.images import sha256
from tests.servers import Server

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCTET = {"Content-Type": "application/octet-stream"}
TIMEOUT = 60
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NAMES = {"stratus": "Stratus (local mode)", "distribution": "Distribution 2.8"}


# -- images ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    index: int
    repo: str
    tag: str
    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def layer_digest(self) -> str:
        return sha256(self.layer)


def make_image(index: int, layer_bytes: int, repos: int) -> Image:
    """Image `index`, the same bytes for every registry (seeded), so both do the same work."""
    layer = random.Random(index).randbytes(layer_bytes)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"soak.image": str(index)}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    return Image(index, f"soak/r{index % repos:03d}", f"i{index}", config, layer, manifest)


# -- servers -----------------------------------------------------------------------------------


def start_stratus(work: Path) -> Server:
    """`make run` as a user starts it, with its embedded moto and a fresh data dir."""
    return servers.start_stratus(work, env={"STRATUS_AUTH": "0"})


def start_distribution(work: Path) -> Server | None:
    """Distribution 2.8 on the filesystem driver, or None when it is not installed."""
    storage = {"filesystem": {"rootdirectory": str(work / "distribution-data")}}
    return sidebyside.start_distribution(work, storage)


def rss_mib(pid: int) -> float:
    """VmRSS of `pid` and all its descendants: local mode may run moto or workers apart."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total_kib, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


class Monitor(threading.Thread):
    """Samples the server's RSS twice a second and trips `abort` at a cutoff, so a runaway
    server ends the benchmark instead of the machine."""

    def __init__(self, server: Server, max_rss_mib: float, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.max_rss_mib = max_rss_mib
        self.deadline = deadline
        self.abort = threading.Event()
        self.reason = ""
        self.peak = 0.0
        self.series: list[tuple[float, float]] = []
        self._began = time.monotonic()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):
            self.sample()

    def sample(self) -> float:
        rss = rss_mib(self.server.process.pid)
        self.peak = max(self.peak, rss)
        elapsed = time.monotonic() - self._began
        if not self.series or elapsed - self.series[-1][0] >= 5:
            self.series.append((round(elapsed, 1), round(rss, 1)))
        code = self.server.process.poll()
        if code is not None:
            self.trip(f"the server exited (code {code})")
        elif rss > self.max_rss_mib:
            self.trip(f"RSS {rss:,.0f} MiB passed the {self.max_rss_mib:,.0f} MiB cutoff")
        elif time.monotonic() > self.deadline:
            self.trip("the wall-time cutoff passed")
        return rss

    def trip(self, reason: str) -> None:
        if not self.abort.is_set():
            self.reason = reason
            self.abort.set()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


# -- clients -----------------------------------------------------------------------------------


class Failed(Exception):
    """A request that did not do what the protocol says (status or transport)."""


def _expect(answer: requests.Response, status: int, what: str) -> None:
    if answer.status_code != status:
        raise Failed(f"{what} {answer.status_code}")


def _loopback(url: str) -> str:
    """Refuse to follow anything off this machine (a redirect or upload Location)."""
    if urlsplit(url).hostname not in LOOPBACK:
        raise Failed(f"non-loopback URL {urlsplit(url).hostname}")
    return url


class Client:
    """One keep-alive Session, as one CI job or puller holds."""

    def __init__(self, url: str, monolithic: bool) -> None:
        self.url = url
        self.monolithic = monolithic
        self.session = requests.Session()

    def _call(self, method: str, url: str, **kw: Any) -> requests.Response:
        try:
            return self.session.request(
                method, _loopback(url), timeout=TIMEOUT, allow_redirects=False, **kw
            )
        except requests.RequestException as error:
            raise Failed(f"{method} {type(error).__name__}") from error

    def upload(self, repo: str, blob: bytes) -> None:
        base = f"{self.url}/v2/{repo}/blobs/uploads/"
        if self.monolithic:
            answer = self._call("POST", f"{base}?digest={sha256(blob)}", data=blob, headers=OCTET)
            _expect(answer, 201, "blob POST")
            return
        answer = self._call("POST", base)
        _expect(answer, 202, "upload POST")
        location = urljoin(self.url + "/", answer.headers.get("Location", ""))
        joiner = "&" if "?" in location else "?"
        answer = self._call("PUT", f"{location}{joiner}digest={sha256(blob)}", data=blob)
        _expect(answer, 201, "blob PUT")

    def push(self, image: Image) -> tuple[float, float]:
        """(manifest PUT ms, whole image ms)."""
        began = time.perf_counter()
        self.upload(image.repo, image.config)
        self.upload(image.repo, image.layer)
        put = time.perf_counter()
        answer = self._call(
            "PUT",
            f"{self.url}/v2/{image.repo}/manifests/{image.tag}",
            data=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        _expect(answer, 201, "manifest PUT")
        done = time.perf_counter()
        return (done - put) * 1000, (done - began) * 1000

    def _blob(self, image: Image) -> requests.Response:
        answer = self._call("GET", f"{self.url}/v2/{image.repo}/blobs/{image.layer_digest}")
        for _ in range(3):  # bounded: a registry redirects once, to S3
            if answer.status_code not in (301, 302, 303, 307, 308):
                break
            target = urljoin(answer.url, answer.headers.get("Location", ""))
            answer = self._call("GET", target)
        return answer

    def read(self, image: Image) -> bool:
        """True if the acknowledged image reads back intact, False if it is lost (missing
        or different); Failed when the registry could not answer at all."""
        manifest = self._call(
            "GET",
            f"{self.url}/v2/{image.repo}/manifests/{image.tag}",
            headers={"Accept": OCI_MANIFEST},
        )
        if manifest.status_code == 404:
            return False
        _expect(manifest, 200, "manifest GET")
        if manifest.content != image.manifest:
            return False
        blob = self._blob(image)
        if blob.status_code == 404:
            return False
        _expect(blob, 200, "blob GET")
        return sha256(blob.content) == image.layer_digest

    def close(self) -> None:
        self.session.close()


def accepts_single_post(url: str) -> bool:
    """Whether the registry completes an upload in one POST with `?digest=` (the spec
    lets it refuse with 202); Distribution 2.8 does not, Stratus does."""
    client = Client(url, monolithic=False)
    blob = b"soak probe"
    answer = client._call(
        "POST",
        f"{url}/v2/soak/probe/blobs/uploads/?digest={sha256(blob)}",
        data=blob,
        headers=OCTET,
    )
    client.close()
    return answer.status_code == 201


# -- the soak ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: the state after `images` images."""

    images: int
    acknowledged: int
    put_p50: float | None
    put_p99: float | None
    pull_p50: float | None
    pull_p99: float | None
    push_p50: float | None
    rss_mib: float
    peak_rss_mib: float
    errors: int
    reread: int
    lost: int
    seconds: float


@dataclass
class Tally:
    """What the clients saw since the last row, shared under a lock."""

    attempted: int = 0
    put_ms: list[float] = field(default_factory=list)
    push_ms: list[float] = field(default_factory=list)
    pull_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind] += 1


@dataclass
class Result:
    registry: str
    rows: list[Row] = field(default_factory=list)
    images: int = 0
    acknowledged: int = 0
    work_seconds: float = 0.0
    wall_seconds: float = 0.0
    lost: list[int] = field(default_factory=list)
    final_reread: int = 0
    final_complete: bool = False
    aborted: str = ""
    errors: dict[str, int] = field(default_factory=dict)
    reread_errors: dict[str, int] = field(default_factory=dict)
    complaints: dict[str, int] = field(default_factory=dict)
    first_traceback: list[str] = field(default_factory=list)
    rss_series: list[tuple[float, float]] = field(default_factory=list)


class Soak:
    """One registry's run: batches of pushes and pulls, each followed by a re-read."""

    def __init__(self, server: Server, args: argparse.Namespace) -> None:
        self.server = server
        self.args = args
        self.began = time.monotonic()
        self.monitor = Monitor(server, args.max_rss_mib, self.began + args.max_minutes * 60)
        single = accepts_single_post(server.url)
        self.clients = [Client(server.url, single) for _ in range(args.clients)]
        self.pool = ThreadPoolExecutor(args.clients, thread_name_prefix="soak-client")
        self.acked: list[Image] = []
        self.lost: set[int] = set()
        self.reread_errors: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.reread_count = 0
        self.lock = threading.Lock()
        self.result = Result(NAMES.get(server.name, server.name))

    def _fan_out(
        self,
        images: Sequence[Image],
        job: Callable[[Client, Image], None],
        stop: Callable[[], bool] | None = None,
    ) -> None:
        """Image i to client i mod clients; each client works through its share in order
        until `stop` (by default: the monitor's abort)."""
        stop = stop or self.monitor.abort.is_set

        def share(number: int) -> None:
            for image in images[number :: len(self.clients)]:
                if stop():
                    return
                job(self.clients[number], image)

        list(self.pool.map(share, range(len(self.clients))))

    def _push_and_pull(self, client: Client, image: Image, tally: Tally) -> None:
        with tally.lock:
            tally.attempted += 1
        try:
            put_ms, push_ms = client.push(image)
        except Failed as error:
            tally.error(str(error))
            return
        with self.lock:
            self.acked.append(image)
        with tally.lock:
            tally.put_ms.append(put_ms)
            tally.push_ms.append(push_ms)
        began = time.perf_counter()
        try:
            intact = client.read(image)
        except Failed as error:
            tally.error(f"pull: {error}")
            return
        with tally.lock:
            tally.pull_ms.append((time.perf_counter() - began) * 1000)
        if not intact:
            with self.lock:
                self.lost.add(image.index)

    def _reread(self, client: Client, image: Image) -> None:
        """A lost write is a clear answer (404, other bytes); a registry that cannot
        answer twice is counted apart, as an error."""
        with self.lock:
            self.reread_count += 1
        for attempt in range(2):
            try:
                intact = client.read(image)
            except Failed as error:
                if attempt:
                    with self.lock:
                        self.reread_errors[str(error)] += 1
                    return
                time.sleep(0.5)
                continue
            if not intact:
                with self.lock:
                    self.lost.add(image.index)
            return

    def _sample(self, batch: int) -> list[Image]:
        with self.lock:
            acked = list(self.acked)
        size = min(len(acked), self.args.reread)
        return random.Random(batch).sample(acked, size)

    def run(self) -> Result:
        self.monitor.start()
        images, work_seconds = 0, 0.0
        try:
            for batch, start in enumerate(range(0, self.args.images, self.args.every)):
                if self.monitor.abort.is_set():
                    break
                images, seconds = self._batch(batch, start)
                work_seconds += seconds
            self._final_reread()
        finally:
            self.monitor.stop()
            self.pool.shutdown()
            for client in self.clients:
                client.close()
        return self._finish(images, work_seconds)

    def _batch(self, batch: int, start: int) -> tuple[int, float]:
        """Push and pull the next `every` images, then re-read a sample: (images so far,
        seconds spent pushing and pulling)."""
        args = self.args
        todo = [
            make_image(i, args.layer_bytes, args.repos)
            for i in range(start, min(args.images, start + args.every))
        ]
        tally = Tally()
        began = time.monotonic()
        self._fan_out(todo, functools.partial(self._push_and_pull, tally=tally))
        seconds = time.monotonic() - began
        self.errors.update(tally.errors)
        before = self.reread_count
        self._fan_out(self._sample(batch), self._reread)
        row = self._row(start + tally.attempted, tally, self.reread_count - before)
        self.result.rows.append(row)
        self.monitor.peak = 0.0
        print(f"{self.result.registry}: {asdict(row)}", flush=True)
        return row.images, seconds

    def _final_reread(self) -> None:
        """All acknowledged images; after an abort, still a sample for at most a minute
        (lost writes matter most when the server is in trouble), unless it died."""
        before = self.reread_count
        if not self.monitor.abort.is_set():
            with self.lock:
                everything = list(self.acked)
            self._fan_out(everything, self._reread)
            self.result.final_complete = not self.monitor.abort.is_set()
        elif self.server.process.poll() is None:
            until = time.monotonic() + 60
            self._fan_out(self._sample(-1), self._reread, lambda: time.monotonic() > until)
        self.result.final_reread = self.reread_count - before

    def _row(self, images: int, tally: Tally, reread: int) -> Row:
        rss = self.monitor.sample() if self.server.process.poll() is None else 0.0
        return Row(
            images=images,
            acknowledged=len(self.acked),
            put_p50=percentile(tally.put_ms, 0.5),
            put_p99=percentile(tally.put_ms, 0.99),
            pull_p50=percentile(tally.pull_ms, 0.5),
            pull_p99=percentile(tally.pull_ms, 0.99),
            push_p50=percentile(tally.push_ms, 0.5),
            rss_mib=rss,
            peak_rss_mib=max(rss, self.monitor.peak),
            errors=sum(tally.errors.values()),
            reread=reread,
            lost=len(self.lost),
            seconds=time.monotonic() - self.began,
        )

    def _finish(self, images: int, work_seconds: float) -> Result:
        result = self.result
        result.images = images
        result.acknowledged = len(self.acked)
        result.work_seconds = work_seconds
        result.wall_seconds = time.monotonic() - self.began
        result.lost = sorted(self.lost)
        result.aborted = self.monitor.reason
        result.reread_errors = dict(self.reread_errors)
        result.errors = dict(self.errors)
        result.rss_series = self.monitor.series
        return result


def server_complaints(log: Path) -> tuple[dict[str, int], list[str]]:
    """The server runs quiet, so all it logs is trouble: each distinct exception line with
    its count, and the first traceback whole (the log itself goes with the work dir)."""
    if not log.exists():
        return {}, []
    lines = log.read_text(errors="replace").splitlines()
    counts: Counter[str] = Counter()
    first: list[str] = []
    for number, line in enumerate(lines):
        if line.startswith("Traceback"):
            tail = next(
                (later for later in lines[number + 1 :] if later and not later[0].isspace()),
                "(cut off)",
            )
            counts[tail[:200]] += 1
            if not first:
                first = lines[max(0, number - 1) : number + 60]
        elif " ERROR " in line or line.startswith(("ERROR", "CRITICAL")):
            counts[line[:200]] += 1
    return dict(counts), first


def soak(name: str, args: argparse.Namespace, work: Path) -> Result | None:
    """One registry's soak, from an empty start; None if it is not installed. A server that
    will not start is a result too, so the other registry's numbers still get written."""
    starters = {"stratus": start_stratus, "distribution": start_distribution}
    try:
        server = starters[name](work)
    except RuntimeError as error:
        last = str(error).strip().splitlines()[-1][:200]
        return Result(NAMES[name], aborted=f"the server did not start: {last}")
    if server is None:
        return None
    try:
        result = Soak(server, args).run()
    finally:
        server.stop()
    result.complaints, result.first_traceback = server_complaints(server.log)
    return result


# -- report ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--registries", default="stratus,distribution")
    parser.add_argument("--every", type=int, default=1000, help="images per row")
    parser.add_argument("--reread", type=int, default=500, help="re-read sample per row")
    parser.add_argument("--repos", type=int, default=100)
    parser.add_argument("--layer-bytes", type=int, default=1024)
    parser.add_argument("--max-rss-mib", type=int, default=6144)
    parser.add_argument("--max-minutes", type=float, default=25)
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=DOCS / "bench-soak.json")
    parser.add_argument("--from-json", action="store_true", help="only rewrite the section")
    parser.add_argument(
        "--quick", action="store_true", help="no soak (30 minutes): the section from the JSON"
    )
    args = parser.parse_args()
    if args.from_json or args.quick:
        data = json.loads(args.json.read_text())
    else:
        names = [n.strip() for n in args.registries.split(",") if n.strip()]
        unknown = set(names) - set(NAMES)
        if unknown:
            parser.error(f"unknown registries: {', '.join(sorted(unknown))}")
        options = {"out", "json", "from_json", "quick"}
        settings = {k: v for k, v in vars(args).items() if k not in options}
        settings["registries"] = names
        data = {"provenance": report.provenance(), "settings": settings, "results": []}
        work = Path(tempfile.mkdtemp(prefix="stratus-soak-"))
        try:
            for name in names:
                result = soak(name, args, work)
                if result is not None:
                    data["results"].append({"key": name, **asdict(result)})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    text = report.soak_section(data)
    report.write_section("soak", text, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
