"""A real registry for pull tests: Debian's `docker-registry` (Distribution 2.8) on 127.0.0.1,
plain HTTP, storage in a temporary directory; filled with `skopeo copy` from an archive that
our own daemon saved (schema2 with gzip layers, and the OCI format)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ..helpers import free_port

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


def _registry(base: Path, extra: str):
    exe = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(exe).exists():
        pytest.skip("Debian's docker-registry is not installed")
    port = free_port()
    cfg = base / "config.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n"
                   f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}")
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

