"""Issue 9, transport: TLS verified with the CA in certs.d (refused without it), client
certificates from certs.d, `insecure-registries`, and mirrors for a registry other than Docker
Hub (`registry-mirrors-for`), tried before it, with the registry itself as fallback.

The registries here are on 127.0.0.1, which dockerd always treats as insecure (TLS unverified);
the daemons that must verify run with `--insecure-loopback=false`."""

from __future__ import annotations

import json
import shutil
import subprocess

import docker
import pytest

from ..helpers import DOCKER, free_port
from .conftest import save_image, skopeo_copy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def archive(daemon, tmp_path_factory):
    return save_image(daemon, "busybox:latest", tmp_path_factory.mktemp("transport") / "bb.tar")


def _pull_error(c: docker.APIClient, repo: str, tag: str) -> str:
    try:
        out = c.pull(repo, tag=tag)
    except docker.errors.APIError as e:
        return str(e.explanation)
    errors = [json.loads(x).get("error", "") for x in out.splitlines() if x.strip()]
    return next((e for e in errors if e), "")


def test_tls_verified_with_the_ca_in_certs_d(tls_registry, pki, archive, fresh_daemon, tmp_path):
    skopeo_copy(archive, f"{tls_registry}/tls/bb:1")
    certs = tmp_path / "certs.d"
    d = fresh_daemon("--insecure-loopback=false", "--registry-certs-dir", str(certs), image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    err = _pull_error(c, f"{tls_registry}/tls/bb", "1")
    assert "x509: certificate signed by unknown authority" in err, err
    assert not c.images()
    (certs / tls_registry).mkdir(parents=True)
    shutil.copy(pki / "ca.crt", certs / tls_registry / "ca.crt")
    assert _pull_error(c, f"{tls_registry}/tls/bb", "1") == ""
    c.tag(f"{tls_registry}/tls/bb:1", f"{tls_registry}/tls/again", "2")
    out = [json.loads(x) for x in c.push(f"{tls_registry}/tls/again", tag="2", stream=True)]
    assert any("aux" in m for m in out), out
    ctr = c.create_container(f"{tls_registry}/tls/bb:1", ["echo", "over tls"])
    c.start(ctr)
    c.wait(ctr)
    assert c.logs(ctr) == b"over tls\n"
    c.remove_container(ctr)
    c.close()


def test_client_certificate_from_certs_d(mtls_registry, pki, fresh_daemon, tmp_path):
    certs = tmp_path / "certs.d"
    (certs / mtls_registry).mkdir(parents=True)
    ours = fresh_daemon("--registry-certs-dir", str(certs))
    c = docker.APIClient(base_url=ours.host, version="1.41")
    c.tag("busybox", f"{mtls_registry}/mtls/bb", "1")
    out = [json.loads(x) for x in c.push(f"{mtls_registry}/mtls/bb", tag="1", stream=True)]
    assert "error" in out[-1], "pushed without a client certificate"
    for f in ("client.cert", "client.key"):   # read at each push and pull
        shutil.copy(pki / f, certs / mtls_registry / f)
    out = [json.loads(x) for x in c.push(f"{mtls_registry}/mtls/bb", tag="1", stream=True)]
    assert any("aux" in m for m in out), out
    other = fresh_daemon("--registry-certs-dir", str(certs), image=False)
    oc = docker.APIClient(base_url=other.host, version="1.41")
    assert _pull_error(oc, f"{mtls_registry}/mtls/bb", "1") == ""
    assert oc.inspect_image(f"{mtls_registry}/mtls/bb:1")["Id"] == c.inspect_image("busybox")["Id"]
    (certs / mtls_registry / "client.cert").unlink()   # a key without its certificate: a clear error
    err = _pull_error(oc, f"{mtls_registry}/mtls/bb", "1")
    assert "missing client certificate client.cert for key client.key" in err, err
    c.close()
    oc.close()


def test_insecure_registries(registry, archive, fresh_daemon):
    skopeo_copy(archive, f"{registry}/insecure/bb:1")
    strict = fresh_daemon("--insecure-loopback=false", image=False)
    c = docker.APIClient(base_url=strict.host, version="1.41")
    err = _pull_error(c, f"{registry}/insecure/bb", "1")
    assert err and "https://" in err, err
    c.close()
    d = fresh_daemon("--insecure-loopback=false", config={"insecure-registries": [registry]}, image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert _pull_error(c, f"{registry}/insecure/bb", "1") == ""
    assert registry in c.info()["RegistryConfig"]["IndexConfigs"]
    c.close()
    if DOCKER:
        info = subprocess.run([DOCKER, "info"], env=d.env(), capture_output=True, text=True).stdout
        assert "Insecure Registries:" in info and registry in info, info


def test_mirror_for_a_private_registry_with_fallback(registry, mirror_registry, archive, fresh_daemon):
    skopeo_copy(archive, f"{mirror_registry}/mirrored/bb:1")   # only on the mirror
    skopeo_copy(archive, f"{registry}/upstream/bb:1")          # only upstream
    gone = f"127.0.0.1:{free_port()}"                          # nothing listens: the mirror must serve
    d = fresh_daemon(config={"registry-mirrors-for": {gone: [f"http://{mirror_registry}"],
                                                      registry: [f"http://{mirror_registry}"]}}, image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert _pull_error(c, f"{gone}/mirrored/bb", "1") == ""
    assert c.inspect_image(f"{gone}/mirrored/bb:1")["RepoTags"] == [f"{gone}/mirrored/bb:1"]
    assert _pull_error(c, f"{registry}/upstream/bb", "1") == ""   # the mirror has not got it: upstream
    c.close()
    with pytest.raises(Exception, match="invalid mirror"):
        fresh_daemon(config={"registry-mirrors-for": {registry: ["ftp://x/y"]}}, image=False)
