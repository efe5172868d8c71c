"""Issue 9, first part: pull from a real registry (Debian's docker-registry, plain HTTP on
127.0.0.1, anonymous), with docker-py and the docker CLI as clients: Docker schema2 and OCI
manifests, an OCI index with platform selection, by tag and by digest, layers already present
skipped, unknown tags and unreachable registries as Docker's errors with nothing partial left."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request

import docker
import pytest

from ..helpers import BIN, DOCKER
from .conftest import busybox_with_random_file, save_image, skopeo_copy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def filled(registry, daemon, tmp_path_factory):
    """busybox as our daemon saves it, pushed as schema2 (`bb:1`) and OCI (`bb:oci`), plus an
    OCI index (`bb:multi`) listing the OCI manifest for linux/amd64 and another for linux/s390x
    (the registry wants every listed manifest to exist: the schema2 one stands in)."""
    c = docker.APIClient(base_url=daemon.host, version="1.41")
    iid = c.inspect_image("busybox")["Id"]
    c.close()
    tar = save_image(daemon, "busybox:latest", tmp_path_factory.mktemp("archive") / "busybox.tar")
    skopeo_copy(tar, f"{registry}/library/bb:1")
    skopeo_copy(tar, f"{registry}/library/bb:oci", "oci")
    req = urllib.request.Request(f"http://{registry}/v2/library/bb/manifests/oci", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        body = r.read()
    req = urllib.request.Request(f"http://{registry}/v2/library/bb/manifests/1", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req) as r:
        other = r.read()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": len(other),   # a stand-in
         "digest": "sha256:" + hashlib.sha256(other).hexdigest(), "platform": {"os": "linux", "architecture": "s390x"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(body),
         "digest": "sha256:" + hashlib.sha256(body).hexdigest(), "platform": {"os": "linux", "architecture": "amd64"}}]}
    put = urllib.request.Request(f"http://{registry}/v2/library/bb/manifests/multi", data=json.dumps(index).encode(),
                                 method="PUT", headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    urllib.request.urlopen(put).close()
    return registry, iid


def test_pull_with_docker_py_keeps_the_image_id_and_runs(filled, fresh_daemon):
    reg, iid = filled
    d = fresh_daemon(image=False)
    c = docker.DockerClient(base_url=d.host, version="1.41")
    img = c.images.pull(f"{reg}/library/bb", tag="1")
    assert img.id == iid and f"{reg}/library/bb:1" in img.tags
    assert any(x.startswith(f"{reg}/library/bb@sha256:") for x in img.attrs["RepoDigests"])
    assert c.containers.run(f"{reg}/library/bb:1", ["echo", "pulled"], remove=True) == b"pulled\n"
    # again: nothing to download
    out = list(c.api.pull(f"{reg}/library/bb", tag="1", stream=True, decode=True))
    assert out[-1]["status"] == f"Status: Image is up to date for {reg}/library/bb:1"
    # the OCI manifest of the same image (skopeo rewrote its config as OCI's: another ID, the
    # config's digest), its layer already there
    out = list(c.api.pull(f"{reg}/library/bb", tag="oci", stream=True, decode=True))
    assert any(m.get("status") == "Already exists" for m in out), out
    with urllib.request.urlopen(urllib.request.Request(f"http://{reg}/v2/library/bb/manifests/oci", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})) as r:
        assert c.images.get(f"{reg}/library/bb:oci").id == json.load(r)["config"]["digest"]
    assert c.containers.run(f"{reg}/library/bb:oci", ["echo", "oci"], remove=True) == b"oci\n"
    c.close()


def test_pull_with_the_docker_cli_by_tag_digest_and_platform(filled, fresh_daemon):
    reg, iid = filled
    d = fresh_daemon(image=False)
    env = d.env()
    p = subprocess.run([DOCKER, "pull", f"{reg}/library/bb:multi"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Pull complete" in p.stdout and "Digest: sha256:" in p.stdout, p.stdout
    assert f"Status: Downloaded newer image for {reg}/library/bb:multi" in p.stdout
    digest = p.stdout.split("Digest: ")[1].split()[0]
    p = subprocess.run([DOCKER, "pull", f"{reg}/library/bb@{digest}"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([DOCKER, "pull", "--platform", "linux/arm64", f"{reg}/library/bb:multi"], env=env,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "no matching manifest for linux/arm64" in p.stderr, p.stderr
    p = subprocess.run([DOCKER, "pull", f"{reg}/library/bb:nope"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and f"manifest for {reg}/library/bb:nope not found" in p.stderr, p.stderr
    p = subprocess.run([DOCKER, "images", "-q"], env=env, capture_output=True, text=True)
    assert len(set(p.stdout.split())) == 1, p.stdout   # one image (the OCI one), under two names


def test_unreachable_registry_is_a_clear_error_and_leaves_nothing(fresh_daemon):
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as e:
        c.pull("127.0.0.1:1/library/nothing", tag="1")
    assert "connection refused" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        c.pull("127.0.0.1:1/Bad/Name", tag="1")
    assert e.value.status_code == 400
    assert c.images() == []
    c.close()


def test_run_pulls_a_missing_image_and_dockyard_pull(filled, fresh_daemon):
    """`docker run` of an image we do not have: the CLI's create gets a 404, pulls, creates."""
    reg, _ = filled
    d = fresh_daemon(image=False)
    p = subprocess.run([DOCKER, "run", "--rm", f"{reg}/library/bb:1", "echo", "ran"], env=d.env(),
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "ran\n", p.stderr
    assert "Unable to find image" in p.stderr and "Downloaded newer image" in p.stderr
    p = subprocess.run([str(BIN / "dockyard"), "pull", f"{reg}/library/bb:oci"], env=d.env(), capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "oci: Pulling from library/bb" and lines[-1] == f"{reg}/library/bb:oci", lines
    assert any(x.endswith(": Already exists") for x in lines) and any(x.startswith("Digest: sha256:") for x in lines)
    p = subprocess.run([str(BIN / "dockyard"), "pull", "-q", f"{reg}/library/bb:nope"], env=d.env(),
                       capture_output=True, text=True)
    assert p.returncode != 0 and "not found" in p.stderr


def test_dockyard_run_pull_policies(filled, fresh_daemon):
    """`--pull never` does not fetch a missing image; `--pull always` fetches one we have."""
    reg, iid = filled
    d = fresh_daemon(image=False)

    def dy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "dockyard"), *args], env=d.env(), capture_output=True, text=True)
    p = dy("run", "--rm", "--pull", "never", f"{reg}/library/bb:1", "true")
    assert p.returncode == 125 and "No such image" in p.stderr, p.stderr
    p = dy("run", "--rm", f"{reg}/library/bb:1", "echo", "missing")
    assert p.returncode == 0 and p.stdout == "missing\n" and "Unable to find image" in p.stderr, p.stderr
    p = dy("create", "--pull", "always", f"{reg}/library/bb:1", "true")
    assert p.returncode == 0 and "Pulling from library/bb" in p.stderr and "Unable to find" not in p.stderr, p.stderr
    assert "Image is up to date" in p.stderr
    dy("rm", p.stdout.strip())


def test_zstd_and_uncompressed_layers(registry, daemon, fresh_daemon, tmp_path, busybox_tar):
    """The same image stored with zstd layers (OCI) and with uncompressed layers: both pull to
    busybox's layers (same DiffIDs; skopeo rewrites the config as OCI's, so not the same ID)."""
    import shutil
    c = docker.APIClient(base_url=daemon.host, version="1.41")   # a layer no registry has (skopeo would
    c.import_image_from_data(busybox_with_random_file(busybox_tar, 1 << 16), repository="comp", tag="1")
    layers = c.inspect_image("comp:1")["RootFS"]["Layers"]   # reuse a gzip blob of busybox it pushed before)
    tar = save_image(daemon, "comp:1", tmp_path / "bb.tar")
    c.remove_image("comp:1")
    c.close()
    for tag, flags in (("zstd", ["--format", "oci", "--dest-compress", "--dest-compress-format", "zstd"]),
                       ("plain", ["--format", "oci", "--dest-decompress"])):
        subprocess.run([shutil.which("skopeo") or "skopeo", "copy", "--quiet", "--dest-tls-verify=false", *flags,
                        f"docker-archive:{tar}", f"docker://{registry}/library/comp:{tag}"], check=True,
                       capture_output=True, timeout=120)
    req = urllib.request.Request(f"http://{registry}/v2/library/comp/manifests/zstd",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        assert json.loads(r.read())["layers"][0]["mediaType"].endswith("+zstd")
    for tag in ("zstd", "plain"):
        d = fresh_daemon(image=False)
        with docker.APIClient(base_url=d.host, version="1.41") as dc:
            dc.pull(f"{registry}/library/comp", tag=tag)
            assert dc.inspect_image(f"{registry}/library/comp:{tag}")["RootFS"]["Layers"] == layers
            ctr = dc.create_container(f"{registry}/library/comp:{tag}", ["echo", tag])
            dc.start(ctr)
            dc.wait(ctr)
            assert dc.logs(ctr) == f"{tag}\n".encode()
            dc.remove_container(ctr)
