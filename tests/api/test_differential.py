"""Create bodies captured from real clients (Debian's docker CLI 20.10, a current docker CLI,
docker-py) through a recording proxy to Debian's dockerd, replayed to dockyardd; both inspects'
`Config` and `HostConfig` compared field by field. The image is built on each engine from one
Dockerfile with every instruction that sets a default a container inherits."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..capture import RecordingProxy
from ..helpers import DOCKER

pytestmark = pytest.mark.root

CURRENT = shutil.which("docker", path="/usr/local/bin")
CLIS = {"docker-20.10": DOCKER, **({"docker-current": CURRENT} if CURRENT and CURRENT != DOCKER else {})}

DOCKERFILE = """\
FROM busybox
LABEL a=1 b=2
ENV FOO=bar PATH=/usr/bin:/bin
USER nobody
WORKDIR /srv
EXPOSE 80/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s CMD true
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo hi
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $(id -u) $(pwd) $FOO"]
"""

# Differences on purpose, each with its reason
ALLOWED = {
    "Config.Hostname": "a container's own short id",
    "HostConfig.MaskedPaths": "Dockyard also masks /sys/devices/virtual/powercap (CVE-2020-8694), as Docker 25 does",
    "HostConfig.Runtime": "the default runtime's name: Dockyard's own runtime is 'dockyard'; 'runc' is the real runc",
}

CLI_CASES = [
    ["every"],
    ["-e", "FOO=x", "-e", "A=b", "every"],
    ["--entrypoint=", "every", "ls"],
    ["-u", "0", "-w", "/tmp", "-l", "a=9", "--expose", "81", "every", "true"],
    ["--dns", "192.0.2.1", "--restart", "always", "--stop-signal", "9", "--health-cmd", "true", "--cap-add",
     "NET_ADMIN", "--memory", "64m", "-v", "/data", "-v", "diffvol:/v", "--tmpfs", "/t", "--log-opt", "max-size=1m",
     "-e", "PATH=/x", "every"],
    ["--cgroupns", "private", "--ipc", "shareable", "--pids-limit", "5", "--ulimit", "nofile=10:20", "--security-opt",
     "no-new-privileges", "--read-only", "--init", "--cpus", "0.5", "--shm-size", "1m", "busybox", "true"],
    ["--health-cmd", "false", "--health-interval", "2s", "--no-healthcheck=false", "--stop-timeout", "3", "every"],
]
PY_CASES: list[tuple[str, dict[str, Any]]] = [
    ("every", {}),
    ("every", {"user": "", "working_dir": "", "environment": ["X=1"], "labels": {"b": "3"}}),
    ("busybox", {"command": "true"}),
    ("every", {"entrypoint": [], "command": ["id"], "stop_signal": "SIGKILL", "runtime": "runc"}),
]


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(self.path))


def _call(sock: Path, method: str, target: str, body: bytes | None = None) -> tuple[int, Any]:
    c = _Unix(sock)
    try:
        c.request(method, target, body=body, headers={"Content-Type": "application/json"} if body else {})
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()


def _flat(v: Any, pre: str) -> dict[str, Any]:
    if isinstance(v, dict) and v:
        out: dict[str, Any] = {}
        for k, x in v.items():
            out.update(_flat(x, f"{pre}.{k}"))
        return out
    return {pre: v}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for sect in ("Config", "HostConfig"):
        fa, fb = _flat(a[sect], sect), _flat(b[sect], sect)
        for k in sorted(set(fa) | set(fb)):
            if any(k == p or k.startswith(p + ".") for p in ALLOWED):
                continue
            if fa.get(k, "<absent>") != fb.get(k, "<absent>"):
                out.append(f"{k}: dockerd={fa.get(k, '<absent>')!r} dockyardd={fb.get(k, '<absent>')!r}")
    # Mounts (host paths differ: each engine keeps volumes in its own data root) and the networks listed
    ma, mb = (sorted((m["Type"], m["Destination"], m["Mode"], m["RW"], m["Propagation"]) for m in x["Mounts"] or [])
              for x in (a, b))
    if ma != mb:
        out.append(f"Mounts: dockerd={ma} dockyardd={mb}")
    na, nb = (sorted(x["NetworkSettings"].get("Networks") or {}) for x in (a, b))
    if na != nb:
        out.append(f"NetworkSettings.Networks: dockerd={na} dockyardd={nb}")
    return out


@pytest.fixture(scope="module")
def engines(daemon, real_docker, busybox_tar, tmp_path_factory):
    if not DOCKER:
        pytest.skip("Debian's docker CLI is not installed")
    ctx = tmp_path_factory.mktemp("every")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    real_docker.docker("import", str(busybox_tar), "busybox:latest")
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    for host in (daemon.host, real_docker.host):
        subprocess.run([DOCKER, "-H", host, "build", "-q", "-t", "every", str(ctx)], env=env, check=True,
                       capture_output=True, timeout=300)
    proxy = RecordingProxy(tmp_path_factory.mktemp("proxy") / "p.sock", real_docker.sock)
    yield daemon, real_docker, proxy
    proxy.close()
    for host in (daemon.host, real_docker.host):
        subprocess.run([DOCKER, "-H", host, "volume", "rm", "-f", "diffvol"], capture_output=True)


def _replay_and_compare(engines: Any, dk_id: str, n: int) -> list[str]:
    daemon, real_docker, proxy = engines
    req = proxy.creates()[n]
    st, out = _call(daemon.sock, "POST", req.target.split("?")[0], req.body)
    try:
        assert st == 201, (req.body, out)
        dy_id = out["Id"]
        a = _call(real_docker.sock, "GET", f"/containers/{dk_id}/json")[1]
        b = _call(daemon.sock, "GET", f"/containers/{dy_id}/json")[1]
        _call(daemon.sock, "DELETE", f"/containers/{dy_id}?force=1&v=1")
        return _differences(a, b)
    finally:
        _call(real_docker.sock, "DELETE", f"/containers/{dk_id}?force=1&v=1")


@pytest.mark.parametrize("cli", sorted(CLIS))
@pytest.mark.parametrize("args", CLI_CASES, ids=lambda a: " ".join(a)[:40])
def test_cli_create_same_config_as_dockerd(engines, cli, args):
    proxy = engines[2]
    n = len(proxy.creates())
    p = subprocess.run([CLIS[cli], "-H", proxy.host, "create", "--network", "none", *args], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert _replay_and_compare(engines, p.stdout.strip(), n) == []


@pytest.mark.parametrize("image,kw", PY_CASES, ids=lambda x: str(x)[:30])
def test_docker_py_create_same_config_as_dockerd(engines, image, kw):
    import docker
    proxy = engines[2]
    n = len(proxy.creates())
    c = docker.APIClient(base_url=proxy.host, version="1.41")
    try:
        if kw.get("runtime") and "runc" not in json.dumps(c.info().get("Runtimes")):
            pytest.skip("dockerd has no runc")
        dk_id = c.create_container(image, host_config=c.create_host_config(network_mode="none"), **kw)["Id"]
    finally:
        c.close()
    assert _replay_and_compare(engines, dk_id, n) == []


@pytest.mark.parametrize("cli", sorted(CLIS))
def test_image_user_workdir_env_apply_through_the_clis(engines, cli):
    """The regression: the CLI's `"User": ""` must not mean root when the image says `USER nobody`."""
    daemon = engines[0]
    p = subprocess.run([CLIS[cli], "-H", daemon.host, "run", "--rm", "--network", "none", "every"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["65534", "/srv", "bar"]


def test_image_user_applies_through_docker_py(engines):
    import docker
    daemon = engines[0]
    c = docker.DockerClient(base_url=daemon.host, version="auto")
    try:
        out = c.containers.run("every", network_mode="none", remove=True)
        assert out.split() == [b"65534", b"/srv", b"bar"]
        out = c.containers.run("every", user="", working_dir="", network_mode="none", remove=True)
        assert out.split() == [b"65534", b"/srv", b"bar"]
        out = c.containers.run("every", user="0", network_mode="none", remove=True)
        assert out.split()[0] == b"0"
    finally:
        c.close()
