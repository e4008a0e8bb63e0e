"""Hot keys: DynamoDB calls per partition key when one repository and one tag are pulled at
10,000 requests a second (docs/scale.md).

Drives the in-process app (tests/client.py) on in-process moto with `workers` threads. Each
request is served by one of `containers` simulated Lambda containers, each with its own read
cache (storage/cache.py), as a fleet of warm containers would be. Every DynamoDB call is
recorded with its table and partition key at botocore (storage/calls.py observers,
storage/partitions.py). Time is simulated: each request advances the registry's clock by
1/target seconds, so the read cache's bound and the per-second rates are those of the target
rate whatever this machine's speed; the result is calls and capacity units per second per
partition key at the target, checked against DynamoDB's per-partition limits (3,000 read
units, 1,000 write units a second).

Scenarios:
- `pull`: anonymous `docker pull` of one public image by tag: token, HEAD by tag, GET by
  digest, config and layer blob redirects; plus a referrers listing of the image and a tags
  listing now and then;
- `stuffing`: failed logins against one user from many addresses, with the real user's
  logins mixed in;
- `catalog`: anonymous `_catalog` pages over 1,000 repositories (500 public) in 16 shards;
- each with the cache off too (`STRATUS_READ_CACHE_SECONDS=0`), to show what binds without it.

Capacity units assume what the bench stores: items under 4 KB (one eventually consistent
read: 0.5 units; a transactional write of under 1 KB: 2 units, a plain one 1).

Rates are counted after the first bound of simulated time, when every container is warm;
`--requests` must cover more than that (10,000 a simulated second).

    python -m bench hotkeys -- [--requests N] [--workers 8] [--containers C]
        [--set name=value] [pull|stuffing|catalog ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

READ_LIMIT, WRITE_LIMIT = 3000.0, 1000.0
READS = {"GetItem", "Query", "BatchGetItem", "Scan"}
TRANSACTIONAL = {"TransactWriteItems"}
REPOSITORY, TAG = "library/popular", "latest"
LAYERS = 5
USER, PASSWORD = "root", "root-password-1"


class SimulatedClock:
    """The registry's clock: each request moves it on by 1/target seconds."""

    def __init__(self, target: float) -> None:
        self.start = datetime.now(UTC)
        self.step = 1.0 / target
        self.requests = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.requests += 1

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.requests * self.step)

    @property
    def seconds(self) -> float:
        return self.requests * self.step


class Recorder:
    """Items read and written per (table, partition key), from every DynamoDB call."""

    def __init__(self) -> None:
        self.reads: dict[tuple[str, str], float] = defaultdict(float)
        self.writes: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.on: Callable[[], bool] = lambda: False

    def __call__(self, service: str, operation: str, params: dict[str, Any]) -> None:
        from chalicelib.storage import partitions

        if not self.on() or service != "dynamodb":
            return
        touched = partitions.touched(service, operation, params)
        consistent = bool(params.get("ConsistentRead"))
        with self._lock:
            for _, table, key in touched:
                short = table.removeprefix("stratus-")
                self.calls[(short, key)] += 1
                if operation in READS:
                    self.reads[(short, key)] += 1 if consistent else 0.5
                elif operation in TRANSACTIONAL:
                    self.writes[(short, key)] += 2
                else:
                    self.writes[(short, key)] += 1


@contextmanager
def _stack(read_cache_seconds: float, overrides: dict[str, Any]) -> Iterator[Any]:
    """In-process moto with the registry provisioned, auth on, and the app."""
    from moto import mock_aws

    from chalicelib import config
    from chalicelib.auth import keys, passwords
    from chalicelib.local import moto_patches

    moto_patches.install()
    # Calls are measured here, not scrypt's CPU: a sixteenth of its cost, as in the tests.
    passwords.SCRYPT_N = 2**10
    saved = config.settings
    with mock_aws(), tempfile.TemporaryDirectory() as scratch:
        from chalicelib.local.stack import provision

        provision()
        config.settings = dataclasses.replace(
            saved,
            auth=True,
            signing_key_file=f"{scratch}/signing-key.pem",
            signing_key_parameter="",
            admin_user=USER,
            admin_password=PASSWORD,
            read_cache_seconds=read_cache_seconds,
            **overrides,
        )
        keys.forget()
        try:
            from app import app

            yield app
        finally:
            config.settings = saved
            keys.forget()


def _seed(client: Any) -> dict[str, Any]:
    """One public image with LAYERS layers and a referrer, pushed by the admin."""
    from chalicelib.storage import accounts
    from tests.images import sha256
    from tests.referrers_fixtures import referrer_manifest

    admin = client.login(USER, PASSWORD, f"repository:{REPOSITORY}:pull,push")
    layers = tuple(f"layer {n}".encode() * 100 for n in range(LAYERS))
    document = admin.image_document(REPOSITORY, seed="popular", layers=layers)
    body = json.dumps(document).encode()
    admin.must_push(REPOSITORY, TAG, body)
    admin.must_push(REPOSITORY, "sbom", referrer_manifest(body, "application/x.sbom"))
    accounts.put_permission(REPOSITORY, "*", "read")  # public
    blobs = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]
    return {"digest": sha256(body), "blobs": blobs}


def _pull(client: Any, seed: dict[str, Any], n: int, step: Callable[[], None]) -> None:
    """One anonymous pull, as docker does it: each request one step of the clock."""
    step()
    token = client.token(None, "", f"repository:{REPOSITORY}:pull")
    puller = client.as_bearer(token)
    step()
    assert puller.head(f"/v2/{REPOSITORY}/manifests/{TAG}").status == 200
    step()
    assert puller.get(f"/v2/{REPOSITORY}/manifests/{seed['digest']}").status == 200
    for digest in seed["blobs"]:
        step()
        assert puller.get(f"/v2/{REPOSITORY}/blobs/{digest}").status == 307
    if n % 4 == 0:
        step()
        assert puller.get(f"/v2/{REPOSITORY}/referrers/{seed['digest']}").status == 200
    if n % 10 == 0:
        step()
        assert puller.get(f"/v2/{REPOSITORY}/tags/list").status == 200


def _stuff(client: Any, seed: dict[str, Any], n: int, step: Callable[[], None]) -> None:
    """A failed login against the admin from one of many addresses; every tenth, the
    admin's own good login (throttled answers count: they are what the attack gets)."""
    import base64

    step()
    password = PASSWORD if n % 10 == 0 else f"guess-{n}"
    basic = base64.b64encode(f"{USER}:{password}".encode()).decode()
    from chalicelib.local import events

    source = f"198.51.{n % 250}.{n % 199}"  # a botnet: one address in ~50,000 requests
    headers = [("Authorization", f"Basic {basic}")]
    answer = events.invoke(client.app, "GET", "/v2/auth?service=stratus", headers, b"", source)
    assert answer.status in (200, 401, 429), answer.body


def _catalog(client: Any, seed: dict[str, Any], n: int, step: Callable[[], None]) -> None:
    """`_catalog` pages, anonymous (so filtered to the public repositories), first and
    second pages alternating."""
    step()
    token = client.token(None, "", "registry:catalog:*")
    step()
    path = "/v2/_catalog?n=100" + ("&last=team-4/app-0400" if n % 2 else "")
    answer = client.as_bearer(token).get(path)
    assert answer.status == 200, answer.body


def _more_repositories(client: Any) -> None:
    """1,000 repositories, every other one public, for the catalog scenario."""
    from chalicelib.storage import accounts, repositories
    from chalicelib.storage.models import RepositoryModel

    with RepositoryModel.batch_write() as batch:
        for n in range(1000):
            name = f"team-{n % 10}/app-{n:04d}"
            batch.save(RepositoryModel(name, listing=repositories.listing_for(name)))
    for n in range(0, 1000, 2):
        accounts.put_permission(f"team-{n % 10}/app-{n:04d}", "*", "read")


SCENARIOS = {"pull": _pull, "stuffing": _stuff, "catalog": _catalog}
ROUND = {"pull": 4 + LAYERS, "stuffing": 1, "catalog": 2}
UNCACHED_SHARE = {"pull": 10, "stuffing": 10, "catalog": 150}
# moto answers an uncached, filtered catalog page with dozens of index Queries, slowly: the
# catalog runs with fewer containers and requests (its cached reads scale with containers).
DEFAULTS = {"pull": (200, 25_000), "stuffing": (200, 25_000), "catalog": (50, 15_000)}


def measure(
    scenario: str = "pull",
    *,
    requests: int = 25_000,
    workers: int = 8,
    containers: int = 200,
    target: float = 10_000.0,
    read_cache_seconds: float = 1.0,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `scenario` for about `requests` requests; per-partition rates at `target`.
    `overrides` are settings (config.Settings fields) for the run."""
    from chalicelib import clock as registry_clock
    from chalicelib.storage import cache, calls
    from tests.client import Client

    run = SCENARIOS[scenario]
    recorder = Recorder()
    simulated = SimulatedClock(target)
    # Warm-up: one bound, or half the run when it is too short for that (a rough count).
    warmup = min(read_cache_seconds, requests / target / 2)
    caches = [cache.ReadCache() for _ in range(containers)]
    with _stack(read_cache_seconds, overrides or {}) as app:
        client = Client(app)
        seed = _seed(client)
        if scenario == "catalog":
            _more_repositories(client)
        saved_now = registry_clock.now
        calls.install(origins=False)
        calls.observers.append(recorder)
        registry_clock.now = simulated.now
        # Counted once every container is warm: after the first bound (docs/scale.md says
        # what a burst of new containers reads).
        recorder.on = lambda: simulated.seconds >= warmup
        picker = random.Random(7)
        lock = threading.Lock()

        def step() -> None:
            simulated.tick()
            with lock:
                chosen = caches[picker.randrange(containers)]
            cache.use(chosen)  # the next request is served by this container

        def one(n: int) -> None:
            try:
                run(client, seed, n, step)
            finally:
                cache.use(None)

        per_round = ROUND[scenario]
        try:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(max(1, requests // per_round))))
        finally:
            recorder.on = lambda: False
            registry_clock.now = saved_now
            calls.observers.remove(recorder)
    result = _report(scenario, recorder, simulated, warmup, containers, target, read_cache_seconds)
    result["settings"] = overrides or {}
    return result


def _report(
    scenario: str,
    recorder: Recorder,
    simulated: SimulatedClock,
    warmup: float,
    containers: int,
    target: float,
    bound: float,
) -> dict[str, Any]:
    seconds = simulated.seconds - warmup
    keys = set(recorder.reads) | set(recorder.writes)
    rates = {
        (table, key): (
            round(recorder.calls[(table, key)] / seconds),
            round(recorder.reads.get((table, key), 0.0) / seconds),
            round(recorder.writes.get((table, key), 0.0) / seconds),
        )
        for table, key in keys
    }
    order = sorted(rates, key=lambda k: -max(rates[k][1] / READ_LIMIT, rates[k][2] / WRITE_LIMIT))
    rows = [
        {
            "table": table,
            "key": key,
            "calls_per_s": rates[(table, key)][0],
            "read_units_per_s": rates[(table, key)][1],
            "write_units_per_s": rates[(table, key)][2],
        }
        for table, key in order
    ]
    worst_read = max((r[1] for r in rates.values()), default=0)
    worst_write = max((r[2] for r in rates.values()), default=0)
    return {
        "scenario": scenario,
        "target_requests_per_s": target,
        "requests": simulated.requests,
        "measured_seconds": round(seconds, 3),
        "warmup_seconds": warmup,
        "containers": containers,
        "read_cache_seconds": bound,
        "max_read_units_per_key": worst_read,
        "max_write_units_per_key": worst_write,
        "within_limits": worst_read <= READ_LIMIT and worst_write <= WRITE_LIMIT,
        "keys": rows,
    }


def markdown(result: dict[str, Any], top: int = 8) -> str:
    lines = [
        f"**{result['scenario']}**, read cache {result['read_cache_seconds']:g} s, "
        f"{result['containers']} containers, {result['requests']} requests "
        f"({result['measured_seconds']:g} simulated s measured after "
        f"{result['warmup_seconds']:g} s of warm-up, at "
        f"{result['target_requests_per_s']:,.0f}/s): "
        f"busiest key {result['max_read_units_per_key']:,} read units/s, "
        f"{result['max_write_units_per_key']:,} write units/s: "
        + ("**within** the limits" if result["within_limits"] else "**over** the limits"),
        "",
        "| table | partition key | calls/s | read units/s | write units/s |",
        "|---|---|---:|---:|---:|",
    ]
    for row in result["keys"][:top]:
        lines.append(
            f"| {row['table']} | `{row['key']}` | {row['calls_per_s']:,} | "
            f"{row['read_units_per_s']:,} | {row['write_units_per_s']:,} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import sys

    from chalicelib import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, help="default: 25,000 (catalog: 15,000)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--containers", type=int, help="default: 200 (catalog: 50)")
    parser.add_argument("--target", type=float, default=10_000.0)
    parser.add_argument("--quick", action="store_true", help="15,000 requests a scenario")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--bound", type=float, default=1.0, help="read cache seconds")
    parser.add_argument("--set", action="append", default=[], help="a setting: name=value")
    parser.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)}; default: all")
    options = parser.parse_args(sys.argv[1:] if argv is None else argv)
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    overrides = {}
    for assignment in options.set:
        name, _, value = assignment.partition("=")
        overrides[name] = type(getattr(config.settings, name))(value)
    results = []
    for scenario in options.scenarios or SCENARIOS:
        for bound in (options.bound, 0.0):
            # Without the cache there is no warm-up: a share of the requests measures the
            # same rates (the catalog's uncached pages cost moto dozens of Queries each).
            share = 1 if bound else UNCACHED_SHARE[scenario]
            containers, requests = DEFAULTS[scenario]
            requests = options.requests or (min(requests, 15_000) if options.quick else requests)
            result = measure(
                scenario,
                requests=max(ROUND[scenario], requests // share),
                workers=options.workers,
                containers=options.containers or containers,
                target=options.target,
                read_cache_seconds=bound,
                overrides=overrides,
            )
            results.append(result)
            if not options.json:
                print(markdown(result), flush=True)
    if options.json:
        print(json.dumps(results, indent=2))
    return 0  # a benchmark reports; the verdict is in each scenario's line


if __name__ == "__main__":
    raise SystemExit(main())
