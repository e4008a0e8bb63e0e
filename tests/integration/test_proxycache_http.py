"""Pull-through cache over HTTP with real clients, nothing reaching the internet: upstreams
on 127.0.0.1 are Distribution 2.8 (Debian `docker-registry`) with htpasswd and a second
Stratus with auth on (the Docker token protocol); skopeo and the oras SDK pull through."""

from __future__ import annotations

import json
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import oras.client
import oras.oci
import pytest
import requests

from chalicelib.local.stack import free_port
from tests.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    image_layout,
    index_layout,
    make_image,
    make_index,
    sha256,
)
from tests.integration.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    Registry,
    _start,
    _stop,
    admin_cli,
    require_tool,
    skopeo,
)
from tests.integration.push_helpers import small_image

pytestmark = pytest.mark.integration
USER, PASSWORD = "mirror", "mirror-password-1"
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}


class Distribution:
    """Distribution 2.8 on the filesystem with htpasswd auth."""

    def __init__(self, work: Path, htpasswd: bool = True) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt

            # bcrypt's lowest cost: Distribution checks it on every request.
            hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
        (work / "htpasswd").write_text(f"{USER}:{hashed}\n")
        self.root = work / "data"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root)}},
            "http": {"addr": self.host},
        }
        if htpasswd:
            config["auth"] = {"htpasswd": {"realm": "upstream", "path": str(work / "htpasswd")}}
        (work / "config.yml").write_text(json.dumps(config))
        self.config = config
        self.log = work / "log"
        self.process = subprocess.Popen(
            [require_tool("docker-registry"), "serve", str(work / "config.yml")],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://{self.host}/v2/", timeout=1)
                return
            except requests.ConnectionError:
                assert time.monotonic() < deadline, self.log.read_text()
                time.sleep(0.1)

    def push(self, layout: Path, reference: str, *extra: str) -> None:
        skopeo(
            "copy",
            *extra,
            "--dest-tls-verify=false",
            *([f"--dest-creds={USER}:{PASSWORD}"] if "auth" in self.config else []),
            f"oci:{layout}:v1",
            f"docker://{self.host}/{reference}",
        )

    def blob_file(self, digest: str) -> Path:
        hexdigest = digest.split(":", 1)[1]
        return self.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[Distribution]:
    started = Distribution(tmp_path)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Stratus in local mode, allowed to use upstreams on 127.0.0.1."""
    started = _start(
        tmp_path_factory.mktemp("proxycache"),
        "proxycache",
        {"STRATUS_PROXYCACHE_PRIVATE_UPSTREAMS": "1", "STRATUS_PROXYCACHE_BLOB_WAIT_SECONDS": "25"},
    )
    yield started
    _stop(started)


_orgs = iter(range(1000))


@pytest.fixture
def cache_org(cache: Registry) -> Callable[..., str]:
    """Makes a fresh cache organization of an upstream: its name."""

    def make(upstream: str, **fields: object) -> str:
        org = f"mirror{next(_orgs)}"
        made = requests.post(f"{cache.url}/api/v1/organizations", json={"name": org}, timeout=30)
        assert made.status_code == 201, made.text
        if set(fields) == {"upstream_registry_username", "upstream_registry_password"}:
            # As an operator does it: the admin CLI, the password on stdin.
            admin_cli(
                cache,
                "set-proxycache",
                org,
                upstream,
                "--insecure",
                "--username",
                str(fields["upstream_registry_username"]),
                "--password-stdin",
                stdin=f"{fields['upstream_registry_password']}\n",
            )
            shown = json.loads(admin_cli(cache, "proxycache", org))
            assert shown == {"upstream_registry": upstream, "expiration_s": 86400, "insecure": True}
            return org
        document = {"upstream_registry": upstream, "insecure": True, **fields}
        answer = requests.post(
            f"{cache.url}/api/v1/organization/{org}/proxycache", json=document, timeout=30
        )
        assert answer.status_code == 201, answer.text
        return org

    return make


CREDENTIALS = {"upstream_registry_username": USER, "upstream_registry_password": PASSWORD}


def pull(cache: Registry, reference: str, into: Path, *extra: str) -> subprocess.CompletedProcess:
    return skopeo(
        "copy",
        *extra,
        "--src-tls-verify=false",
        f"docker://{cache.host}/{reference}",
        f"oci:{into}:x",
        check=False,
    )


def digest_of(cache: Registry, name: str, reference: str) -> str:
    answer = requests.get(
        f"{cache.url}/v2/{name}/manifests/{reference}", headers=ACCEPT, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["Docker-Content-Digest"]


def test_skopeo_pulls_through_the_cache_and_again_with_the_upstream_stopped(
    cache: Registry, distribution: Distribution, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    image = small_image("pull-through")
    distribution.push(image_layout(tmp_path / "src", image, "v1"), "lib/app:v1")
    org = cache_org(distribution.host, **CREDENTIALS)
    first = pull(cache, f"{org}/lib/app:v1", tmp_path / "first")
    assert first.returncode == 0, first.stderr
    assert digest_of(cache, f"{org}/lib/app", "v1") == image.digest
    distribution.stop()
    second = pull(cache, f"{org}/lib/app:v1", tmp_path / "second")
    assert second.returncode == 0, second.stderr
    tags = requests.get(f"{cache.url}/v2/{org}/lib/app/tags/list", timeout=30).json()
    assert tags["tags"] == ["v1"]
    catalog = requests.get(f"{cache.url}/v2/_catalog", timeout=30).json()
    assert f"{org}/lib/app" in catalog["repositories"]


def test_skopeo_pulls_a_multi_arch_index_through_the_cache(
    cache: Registry, distribution: Distribution, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    images = [small_image("amd"), make_image(small_image("arm").layers, architecture="arm64")]
    index = make_index(images, [("linux", "amd64"), ("linux", "arm64")])
    layout = index_layout(tmp_path / "src", images, index, "v1")
    distribution.push(layout, "lib/multi:v1", "--all")
    org = cache_org(distribution.host, **CREDENTIALS)
    done = pull(cache, f"{org}/lib/multi:v1", tmp_path / "out", "--all")
    assert done.returncode == 0, done.stderr
    assert digest_of(cache, f"{org}/lib/multi", "v1") == sha256(index)


def test_tag_moved_upstream_is_picked_up_after_expiration_s_and_not_before(
    cache: Registry, distribution: Distribution, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    old, new = small_image("old"), small_image("new")
    distribution.push(image_layout(tmp_path / "old", old, "v1"), "lib/moving:v1")
    distribution.push(image_layout(tmp_path / "new", new, "v1"), "lib/moving:next")
    org = cache_org(distribution.host, expiration_s=3, **CREDENTIALS)
    before = time.monotonic()
    assert digest_of(cache, f"{org}/lib/moving", "v1") == old.digest
    after = time.monotonic()  # the cached tag is trusted until 3 s after some instant between
    moved = requests.put(  # one quick request moves the tag upstream
        f"http://{distribution.host}/v2/lib/moving/manifests/v1",
        data=new.manifest,
        headers={"Content-Type": OCI_MANIFEST},
        auth=(USER, PASSWORD),
        timeout=30,
    )
    assert moved.status_code == 201, moved.text
    assert digest_of(cache, f"{org}/lib/moving", "v1") == old.digest  # fresh: not asked
    assert time.monotonic() - before < 3, "too slow to check the fresh window"
    time.sleep(max(0.0, after + 3.3 - time.monotonic()))
    assert digest_of(cache, f"{org}/lib/moving", "v1") == new.digest


def test_corrupted_upstream_blob_is_refused_and_not_cached(
    cache: Registry, distribution: Distribution, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    image = small_image("corrupt")
    distribution.push(image_layout(tmp_path / "src", image, "v1"), "lib/bad:v1")
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    stored = distribution.blob_file(layer)
    stored.write_bytes(bytes(len(stored.read_bytes())))  # same size, other bytes
    org = cache_org(distribution.host, **CREDENTIALS)
    done = pull(cache, f"{org}/lib/bad:v1", tmp_path / "out")
    assert done.returncode != 0
    answer = requests.get(
        f"{cache.url}/v2/{org}/lib/bad/blobs/{layer}", allow_redirects=False, timeout=30
    )
    assert answer.status_code == 502 and "digest mismatch" in answer.text


def test_wrong_upstream_credentials_give_a_clear_error(
    cache: Registry, distribution: Distribution, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    distribution.push(image_layout(tmp_path / "src", small_image("creds"), "v1"), "lib/c:v1")
    wrong = {"upstream_registry_username": USER, "upstream_registry_password": "not-it"}
    org = cache_org(distribution.host, **wrong)
    checked = requests.post(
        f"{cache.url}/api/v1/organization/{org}/validateproxycache",
        json={"upstream_registry": distribution.host, "insecure": True, **wrong},
        timeout=30,
    )
    assert checked.status_code == 400 and "Failed login" in checked.text
    done = pull(cache, f"{org}/lib/c:v1", tmp_path / "out")
    assert done.returncode != 0
    assert "refused access" in done.stderr and "not-it" not in done.stderr


def test_push_into_a_cache_org_is_refused(
    cache: Registry, distribution: Distribution, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    org = cache_org(distribution.host, **CREDENTIALS)
    done = skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{image_layout(tmp_path / 'src', small_image('push'), 'v1')}:v1",
        f"docker://{cache.host}/{org}/app:v1",
        check=False,
    )
    assert done.returncode != 0
    assert "pull-through cache" in done.stderr


def test_oras_pulls_an_artifact_through_a_token_upstream(
    cache: Registry,
    auth_registry: Registry,
    cache_org: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upstream is a Stratus with auth on: token protocol, and its blob GETs redirect
    to its own S3, a URL the cache hands on (no token in it)."""
    monkeypatch.chdir(tmp_path)
    Path("sbom.json").write_text('{"packages": ["through-the-cache"]}')
    upstream = oras.client.OrasClient(hostname=auth_registry.host, insecure=True)
    upstream.login(
        username=ADMIN,
        password=ADMIN_PASSWORD,
        hostname=auth_registry.host,
        tls_verify=False,
        config_path=str(tmp_path / "config.json"),
    )
    pushed = upstream.push(
        target=f"{auth_registry.host}/upstream/artifact:v1",
        files=["sbom.json:application/vnd.example.sbom.v1+json"],
    )
    assert pushed.status_code == 201
    org = cache_org(
        f"{auth_registry.host}/upstream",
        upstream_registry_username=ADMIN,
        upstream_registry_password=ADMIN_PASSWORD,
    )
    blob = requests.get(
        f"{cache.url}/v2/{org}/artifact/manifests/v1",
        headers={"Accept": OCI_MANIFEST},
        timeout=30,
    ).json()["layers"][0]["digest"]
    redirect = requests.get(
        f"{cache.url}/v2/{org}/artifact/blobs/{blob}", allow_redirects=False, timeout=30
    )
    assert redirect.status_code == 307
    assert auth_registry.host not in redirect.headers["Location"]
    assert ADMIN_PASSWORD not in redirect.headers["Location"]
    client = oras.client.OrasClient(hostname=cache.host, insecure=True)
    files = client.pull(target=f"{cache.host}/{org}/artifact:v1", outdir=str(tmp_path / "out"))
    assert [Path(f).read_text() for f in files] == ['{"packages": ["through-the-cache"]}']

    # A referrer pushed upstream afterwards is found through the cache's referrers API.
    manifest = requests.get(
        f"{cache.url}/v2/{org}/artifact/manifests/v1", headers={"Accept": OCI_MANIFEST}, timeout=30
    ).content
    subject = sha256(manifest)
    Path("signature.txt").write_text("signed")
    attached = upstream.push(
        target=f"{auth_registry.host}/upstream/artifact:sig",
        files=["signature.txt:application/vnd.example.signature"],
        subject=oras.oci.Subject(OCI_MANIFEST, subject, len(manifest)),
    )
    assert attached.status_code == 201
    listed = requests.get(f"{cache.url}/v2/{org}/artifact/referrers/{subject}", timeout=30)
    assert listed.status_code == 200
    assert [d["digest"] for d in listed.json()["manifests"]] == [
        attached.headers["Docker-Content-Digest"]
    ]


def test_skopeo_follows_the_redirect_to_an_anonymous_upstream_then_to_s3(
    cache: Registry, cache_org: Callable[..., str], tmp_path: Path
) -> None:
    """An upstream that needs no credentials serves the first pull's blobs itself; the
    copies land in S3 meanwhile and later pulls are redirected there."""
    (tmp_path / "anonymous").mkdir()
    upstream = Distribution(tmp_path / "anonymous", htpasswd=False)
    try:
        image = small_image("anonymous")
        upstream.push(image_layout(tmp_path / "src", image, "v1"), "lib/open:v1")
        org = cache_org(upstream.host)
        layer = json.loads(image.manifest)["layers"][0]["digest"]
        url = f"{cache.url}/v2/{org}/lib/open/blobs/{layer}"
        first = requests.get(url, allow_redirects=False, timeout=30)
        assert first.headers["Location"] == f"http://{upstream.host}/v2/lib/open/blobs/{layer}"
        done = pull(cache, f"{org}/lib/open:v1", tmp_path / "out")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 20
        while upstream.host in requests.get(url, allow_redirects=False, timeout=30).headers.get(
            "Location", upstream.host
        ):
            assert time.monotonic() < deadline, "the copy never landed"
            time.sleep(0.2)
    finally:
        upstream.stop()
