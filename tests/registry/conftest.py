"""A real registry for pull tests: Debian's `docker-registry` (Distribution 2.8) on 127.0.0.1,
plain HTTP, storage in a temporary directory; filled with `skopeo copy` from an archive that
our own daemon saved (schema2 with gzip layers, and the OCI format)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ..helpers import free_port, rootfs_with_file

USER, PASSWORD = "dy-user", "s3cret-pw"
LOGS: dict[str, Path] = {}   # registry address → its log (requests at level info)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """Plain HTTP, anonymous."""
    yield from _registry(tmp_path_factory.mktemp("registry"), "")


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory):
    """Plain HTTP with htpasswd basic auth (USER/PASSWORD)."""
    import bcrypt
    base = tmp_path_factory.mktemp("auth-registry")
    (base / "htpasswd").write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()}\n")
    yield from _registry(base, f"auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {base}/htpasswd\n")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory):
    """Token auth (the bearer flow), tokens from the test suite's issuer; yields (address, issuer)."""
    from .token_issuer import ISSUER, SERVICE, TokenIssuer
    base = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer(base, {USER: PASSWORD})
    try:
        for addr in _registry(base, f"auth:\n  token:\n    realm: {issuer.realm}\n    service: {SERVICE}\n"
                                    f"    issuer: {ISSUER}\n    rootcertbundle: {issuer.cert_path}\n"):
            yield addr, issuer
    finally:
        issuer.close()


@pytest.fixture(scope="session")
def mirror_registry(tmp_path_factory: pytest.TempPathFactory):
    """A second plain registry, standing in for a mirror."""
    yield from _registry(tmp_path_factory.mktemp("mirror"), "")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 it signed, and a client certificate from a second CA."""
    d = tmp_path_factory.mktemp("pki")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    for ca in ("ca", "client-ca"):
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=dockyard test {ca}",
             "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-extfile", "san.cnf", "-out", "server.crt")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=dockyard client", "-keyout", "client.key",
         "-out", "client.csr")
    ossl("x509", "-req", "-in", "client.csr", "-CA", "client-ca.crt", "-CAkey", "client-ca.key", "-CAcreateserial",
         "-days", "2", "-out", "client.cert")
    return d


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, pki: Path):
    """HTTPS with a certificate from the test's CA."""
    yield from _registry(tmp_path_factory.mktemp("tls-registry"),
                         "", f"  tls:\n    certificate: {pki}/server.crt\n    key: {pki}/server.key\n")


@pytest.fixture(scope="session")
def mtls_registry(tmp_path_factory: pytest.TempPathFactory, pki: Path):
    """HTTPS that wants a client certificate signed by the client CA."""
    yield from _registry(tmp_path_factory.mktemp("mtls-registry"), "",
                         f"  tls:\n    certificate: {pki}/server.crt\n    key: {pki}/server.key\n"
                         f"    clientcas:\n      - {pki}/client-ca.crt\n")


def _registry(base: Path, extra: str, http_extra: str = ""):
    exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(exe).exists():
        pytest.skip("Debian's docker-registry is not installed")
    port = free_port()
    cfg = base / "config.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n"
                   f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{extra}")
    p = subprocess.Popen([exe, "serve", str(cfg)], stdout=open(base / "log", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"docker-registry did not start: {(base / 'log').read_text()[-2000:]}")
        LOGS[f"127.0.0.1:{port}"] = base / "log"
        yield f"127.0.0.1:{port}"
    finally:
        p.terminate()
        p.wait(30)


def skopeo_copy(archive: Path, dest: str, fmt: str = "v2s2", creds: str = "") -> None:
    """Push a docker-archive to the registry with skopeo (`fmt`: v2s2 or oci)."""
    exe = shutil.which("skopeo")
    if not exe:
        pytest.skip("skopeo is not installed")
    subprocess.run([exe, "copy", "--quiet", "--format", fmt, "--dest-tls-verify=false",
                    *(["--dest-creds", creds] if creds else []), f"docker-archive:{archive}", f"docker://{dest}"],
                   check=True, capture_output=True, timeout=120)


def save_image(daemon, name: str, dest: Path) -> Path:
    """`docker save NAME` from a daemon of ours into `dest`."""
    import docker
    c = docker.APIClient(base_url=daemon.host, version="1.41")
    try:
        with open(dest, "wb") as f:
            for chunk in c.get_image(name):
                f.write(chunk)
    finally:
        c.close()
    return dest


def busybox_with_random_file(base_tar: Path, size: int) -> bytes:
    """A rootfs tar: busybox's, plus `big.bin` of `size` random bytes (a layer no registry has)."""
    return rootfs_with_file(base_tar, "big.bin", os.urandom(size))
