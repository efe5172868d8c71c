"""Real clients against dockyard-registry: skopeo (schema2 and OCI, inspect, delete), the docker
CLI (Debian's 20.10 and a current one) through dockyardd, Debian's dockerd itself, docker-py and
`dockyard` — push, pull, multi-arch, delete — and a docker-registry data directory served as is."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
import requests

from ..helpers import BIN, DOCKER
from ..registry.conftest import _registry
from .images import docker_archive, random_layer, sha

pytestmark = pytest.mark.root
CURRENT_DOCKER = "/usr/local/bin/docker"


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("skopeo")
    if not exe:
        pytest.skip("skopeo is not installed")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return docker_archive(tmp_path_factory.mktemp("img") / "img.tar", [random_layer(700_000), random_layer(5000, "b")])


@pytest.mark.parametrize("fmt", ["v2s2", "oci"])
def test_skopeo_copy_inspect_and_delete(dyreg, archive, tmp_path, fmt):
    ref = f"{dyreg.addr}/skopeo/{fmt}:1"
    p = _skopeo("copy", "--quiet", "--format", fmt, "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{ref}")
    assert p.returncode == 0, p.stderr
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    m = json.loads(raw.stdout)
    assert m["mediaType"] == ("application/vnd.oci.image.manifest.v1+json" if fmt == "oci"
                              else "application/vnd.docker.distribution.manifest.v2+json")
    p = _skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"dir:{tmp_path}/out")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "manifest.json").read_bytes() == raw.stdout.encode()
    for layer in m["layers"]:
        assert sha((tmp_path / "out" / layer["digest"][7:]).read_bytes()) == layer["digest"]
    p = _skopeo("delete", "--tls-verify=false", f"docker://{ref}")
    assert p.returncode == 0, p.stderr
    assert _skopeo("inspect", "--tls-verify=false", f"docker://{ref}").returncode != 0


@pytest.mark.parametrize("cli", ["debian", "current"])
def test_docker_cli_push_pull_through_dockyardd(dyreg, fresh_daemon, cli):
    exe = DOCKER if cli == "debian" else CURRENT_DOCKER
    if not exe or not Path(exe).exists():
        pytest.skip(f"the {cli} docker CLI is not installed")
    src = fresh_daemon()
    ref = f"{dyreg.addr}/cli-{cli}/bb:1"
    env = src.env()
    iid = docker.APIClient(base_url=src.host, version="1.41").inspect_image("busybox")["Id"]
    subprocess.run([exe, "tag", "busybox", ref], env=env, check=True)
    p = subprocess.run([exe, "push", ref], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "1: digest: sha256:" in p.stdout
    dst = fresh_daemon(image=False)
    p = subprocess.run([exe, "pull", ref], env=dst.env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    with docker.APIClient(base_url=dst.host, version="1.41") as c:
        assert c.inspect_image(ref)["Id"] == iid
        ctr = c.create_container(ref, ["echo", "from dockyard-registry"])
        c.start(ctr)
        assert c.wait(ctr)["StatusCode"] == 0
        assert c.logs(ctr) == b"from dockyard-registry\n"
        c.remove_container(ctr)


def test_dockerd_pushes_and_pulls(dyreg, real_docker, archive):
    real_docker.docker("load", "-i", str(archive))
    ref = f"{dyreg.addr}/dockerd/img:1"
    real_docker.docker("tag", "img:latest", ref)
    iid = real_docker.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.decode().strip()
    p = real_docker.docker("push", ref, check=False)
    assert p.returncode == 0, p.stderr
    real_docker.docker("rmi", ref, "img:latest")
    p = real_docker.docker("pull", ref, check=False)
    assert p.returncode == 0, p.stderr
    assert real_docker.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.decode().strip() == iid
    real_docker.docker("rmi", ref)


def test_docker_py_and_dockyard_cli_push_pull_and_multi_arch(dyreg, fresh_daemon, archive):
    src = fresh_daemon()
    c = docker.DockerClient(base_url=src.host, version="1.41")
    img = c.images.get("busybox")
    img.tag(f"{dyreg.addr}/py/bb", "1")
    out = list(c.api.push(f"{dyreg.addr}/py/bb", tag="1", stream=True, decode=True))
    assert not [m for m in out if "error" in m], out
    c.close()
    # a manifest list of two platforms: amd64 is this machine's, arm64 is another's
    base = f"http://{dyreg.addr}/v2/py/multi"
    children = []
    for arch in ("amd64", "arm64"):
        tmp = archive.parent / f"{arch}-{uuid.uuid4().hex}.tar"
        docker_archive(tmp, [random_layer(3000, arch)], arch=arch, cmd=["echo", arch])
        p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{tmp}",
                    f"docker://{dyreg.addr}/py/multi:{arch}")
        assert p.returncode == 0, p.stderr
        r = requests.get(f"{base}/manifests/{arch}",
                         headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        children.append({"mediaType": r.headers["Content-Type"], "digest": r.headers["Docker-Content-Digest"],
                         "size": len(r.content), "platform": {"os": "linux", "architecture": arch}})
    lst = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                      "manifests": children}).encode()
    r = requests.put(f"{base}/manifests/latest", data=lst,
                     headers={"Content-Type": "application/vnd.docker.distribution.manifest.list.v2+json"})
    assert r.status_code == 201, r.text
    dst = fresh_daemon(image=False)
    p = subprocess.run([str(BIN / "dockyard"), "pull", f"{dyreg.addr}/py/multi"], env=dst.env(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    c = docker.DockerClient(base_url=dst.host, version="1.41")
    assert c.images.get(f"{dyreg.addr}/py/multi").attrs["Architecture"] == "amd64"
    c.images.pull(f"{dyreg.addr}/py/bb", tag="1")
    assert c.images.get(f"{dyreg.addr}/py/bb:1").id == img.id
    c.close()


def test_serves_a_docker_registry_data_directory(tmp_path, archive, make_registry):
    """Same layout as distribution: point dockyard-registry at docker-registry's storage."""
    (tmp_path / "old").mkdir()
    gen = _registry(tmp_path / "old", "")
    addr = next(gen)
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", f"docker-archive:{archive}", f"docker://{addr}/old/img:1")
    assert p.returncode == 0, p.stderr
    before = requests.get(f"http://{addr}/v2/old/img/manifests/1",
                          headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}).content
    gen.close()
    reg = make_registry(storage=f"  filesystem:\n    rootdirectory: {tmp_path / 'old' / 'data'}\n")
    assert requests.get(f"{reg.url}/v2/_catalog").json()["repositories"] == ["old/img"]
    r = requests.get(f"{reg.url}/v2/old/img/manifests/1",
                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.content == before
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    p = _skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{reg.addr}/old/img:1", f"dir:{tmp_path}/back")
    assert p.returncode == 0, p.stderr


def test_docker_search_against_the_registry(make_registry, real_docker, fresh_daemon, tmp_path):
    """What Docker's own registry cannot answer (`/v1/search`): dockerd and dockyard search it."""
    reg = make_registry(f"dockyard:\n  accounts:\n    database: {tmp_path}/acc.db\n"
                        "    admin: {username: admin, password: admin-pass-x}\n    anonymous: ['*']\n")
    from .images import gz
    from .test_conformance import Client
    for name in ("search/alpha-app", "search/alpha-db", "search/beta"):
        c = Client(reg.url)
        c.name = name
        c.s.auth = ("admin", "admin-pass-x")
        c.push_image([gz(name.encode())], "1")
    from .web_helpers import csrf, signed_in
    s = signed_in(reg, "admin", "admin-pass-x")
    s.post(f"{reg.url}/r/search/alpha-app/settings", data={"description": "the alpha application",
                                                           "csrf": csrf(s, f"{reg.url}/r/search/alpha-app")})
    r = requests.get(f"{reg.url}/v1/search", params={"q": "alpha", "n": 1, "page": 2}).json()
    assert r["num_results"] == 2 and r["num_pages"] == 2 and [x["name"] for x in r["results"]] == ["search/alpha-db"]
    out = real_docker.docker("search", f"{reg.addr}/alpha").stdout.decode()
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "DESCRIPTION"], out
    assert any(line.startswith("search/alpha-app") and "the alpha application" in line for line in lines), out
    assert not any("beta" in line for line in lines)
    d = fresh_daemon(image=False)
    p = subprocess.run([str(BIN / "dockyard"), "search", "--format", "{{.Name}}\t{{.Description}}", f"{reg.addr}/alpha"],
                       env=d.env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"{reg.addr}/search/alpha-app\tthe alpha application", f"{reg.addr}/search/alpha-db\t"]
