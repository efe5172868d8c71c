"""Pull-through caches: a per-upstream mirror (here another dockyard-registry under the namespace
`up`) serves what the upstream has, refreshes tags after their TTL, serves from its cache when
the upstream is down, and leaves other namespaces to ordinary pushes; distribution's
`proxy.remoteurl` mirrors everything and refuses pushes."""

from __future__ import annotations

import subprocess
import time
import uuid

import docker
import pytest
import requests

from .images import docker_archive, gz, random_layer, sha
from .test_conformance import Client

pytestmark = pytest.mark.root
ACCEPT = {"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"}


def _copy(src: str, dst: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", src, dst],
                          capture_output=True, text=True, timeout=120)


def test_mirror_of_another_registry(make_registry, tmp_path, fresh_daemon):
    upstream = make_registry()
    a1 = docker_archive(tmp_path / "a1.tar", [random_layer(200_000)])
    assert _copy(f"docker-archive:{a1}", f"docker://{upstream.addr}/lib/app:1").returncode == 0
    mirror = make_registry(f"dockyard:\n  mirrors:\n    up:\n      remoteurl: {upstream.url}\n      ttl: 3s\n")
    first = requests.get(f"{mirror.url}/v2/up/lib/app/manifests/1", headers=ACCEPT)
    assert first.status_code == 200
    d1 = first.headers["Docker-Content-Digest"]
    assert d1 == requests.get(f"{upstream.url}/v2/lib/app/manifests/1", headers=ACCEPT).headers["Docker-Content-Digest"]
    p = _copy(f"docker://{mirror.addr}/up/lib/app:1", f"dir:{tmp_path}/out")
    assert p.returncode == 0, p.stderr
    # dockyardd pulls through it and runs the image's layer content
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    c.pull(f"{mirror.addr}/up/lib/app", tag="1")
    assert c.inspect_image(f"{mirror.addr}/up/lib/app:1")["RootFS"]["Layers"]
    c.close()
    # the tag moves upstream: served from the cache within the TTL, fetched again after it
    assert requests.get(f"{mirror.url}/v2/up/lib/app/manifests/1", headers=ACCEPT).headers["Docker-Content-Digest"] == d1
    a2 = docker_archive(tmp_path / "a2.tar", [random_layer(1000, "v2")])
    assert _copy(f"docker-archive:{a2}", f"docker://{upstream.addr}/lib/app:1").returncode == 0
    assert requests.get(f"{mirror.url}/v2/up/lib/app/manifests/1", headers=ACCEPT).headers["Docker-Content-Digest"] == d1
    time.sleep(3.2)
    d2 = requests.get(f"{mirror.url}/v2/up/lib/app/manifests/1", headers=ACCEPT).headers["Docker-Content-Digest"]
    assert d2 != d1
    # the upstream goes down: what the cache holds still pulls, by tag (stale) and by digest
    upstream.stop()
    time.sleep(3.2)
    assert requests.get(f"{mirror.url}/v2/up/lib/app/manifests/1", headers=ACCEPT).headers["Docker-Content-Digest"] == d2
    p = _copy(f"docker://{mirror.addr}/up/lib/app@{d1}", f"dir:{tmp_path}/stale")
    assert p.returncode == 0, p.stderr
    r = requests.get(f"{mirror.url}/v2/up/lib/other/manifests/1", headers=ACCEPT)
    assert r.status_code == 503
    # other namespaces take pushes; the mirror's does not
    own = Client(mirror.url)
    own.name = "own/app"
    own.push_image([gz(b"mine " + uuid.uuid4().bytes)], "1")
    r = requests.post(f"{mirror.url}/v2/up/lib/app/blobs/uploads/")
    assert r.status_code == 405 and "pull-through cache" in r.json()["errors"][0]["message"]


def test_distribution_proxy_remoteurl(make_registry, tmp_path):
    upstream = make_registry()
    c = Client(upstream.url)
    c.name = "library/bb"
    layer = gz(b"proxied " + uuid.uuid4().bytes)
    digest, _ = c.push_image([layer], "latest")
    mirror = make_registry(f"proxy:\n  remoteurl: {upstream.url}\n  ttl: 1h\n")
    r = requests.get(f"{mirror.url}/v2/library/bb/manifests/latest",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert r.headers["Docker-Content-Digest"] == digest
    b = requests.get(f"{mirror.url}/v2/library/bb/blobs/{sha(layer)}")
    assert b.status_code == 200 and b.content == layer
    assert requests.post(f"{mirror.url}/v2/library/bb/blobs/uploads/").status_code == 405
