"""Issue 14, part 2: `dockyard compose` on the same files as docker-compose 1.29 gives the same
containers (names with --compatibility, labels, networks, aliases, mounts, limits, restart
policies), networks and volumes; depends_on conditions; bad input fails naming the service and
leaves nothing half-started."""

from __future__ import annotations

import shutil
import subprocess

import docker
import pytest

from ..helpers import BIN, free_port

pytestmark = pytest.mark.root
COMPOSE = shutil.which("docker-compose")

FILE = """services:
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/srv"]
    ports: ["127.0.0.1::80"]
    volumes: ["data:/srv/data", "./site:/srv/site:ro"]
    environment: {MODE: prod}
    restart: on-failure:2
    mem_limit: 48m
    cpus: 0.5
    healthcheck: {test: ["CMD-SHELL", "echo | nc -w 1 127.0.0.1 80"], interval: 1s}
    networks: {front: {aliases: [www]}, back: {}}
    labels: {tier: web}
  job:
    image: busybox
    command: ["sh", "-c", "echo done > /srv/data/job"]
    volumes: ["data:/srv/data"]
    networks: [back]
  app:
    image: busybox
    command: ["sh", "-c", "cat /srv/data/job; sleep 1000"]
    volumes: ["data:/srv/data"]
    depends_on:
      web: {condition: service_healthy}
      job: {condition: service_completed_successfully}
    networks: [back]
volumes:
  data: {labels: {kept: "yes"}}
networks:
  front: {}
  back: {labels: {side: back}}
"""

IGNORED_LABELS = {"com.docker.compose.version", "com.docker.compose.config-hash",
                  "com.docker.compose.project.config_files", "com.docker.compose.project",
                  "com.docker.compose.project.working_dir", "com.docker.compose.project.environment_file",
                  "com.docker.compose.depends_on", "com.docker.compose.image"}


@pytest.fixture
def tools(bridged, tmp_path):
    d, _, _ = bridged
    env = {**d.env(), "COMPOSE_DOCKER_CLI_BUILD": "0"}
    (tmp_path / "site").mkdir()
    (tmp_path / "compose.yaml").write_text(FILE)

    def dc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([COMPOSE, "-f", "compose.yaml", *args], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=180)
        assert not check or p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def dy(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([str(BIN / "dockyard"), "compose", *args], env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=180)
        assert not check or p.returncode == 0, (args, p.stdout, p.stderr)
        return p
    c = docker.DockerClient(base_url=d.host, version="1.41")
    yield dc, dy, c, tmp_path
    dy("-p", "b", "down", "-v", "--remove-orphans", check=False)
    if COMPOSE:
        dc("-p", "a", "down", "-v", "--remove-orphans", check=False)
    c.close()


def _shape(c: docker.DockerClient, project: str) -> dict:
    out = {}
    for x in c.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
        a = x.attrs
        svc = a["Config"]["Labels"]["com.docker.compose.service"]
        nets = a["NetworkSettings"]["Networks"]
        out[svc] = {
            "name": x.name.replace(project, "P", 1),
            "labels": {k: v for k, v in a["Config"]["Labels"].items() if k not in IGNORED_LABELS},
            "networks": {n.replace(project, "P", 1): sorted(set(ep.get("Aliases") or []) - {x.id[:12]})
                         for n, ep in nets.items()},
            "mounts": sorted((m["Type"], (m.get("Name") or m["Source"]).replace(f"{project}_", "P_", 1),
                              m["Destination"], m["RW"]) for m in a["Mounts"]),
            "limits": (a["HostConfig"]["Memory"], a["HostConfig"]["NanoCpus"]),
            "restart": a["HostConfig"]["RestartPolicy"],
            "ports": sorted(a["HostConfig"].get("PortBindings") or {}),
            "env": sorted(e for e in a["Config"]["Env"] if e.startswith("MODE=")),
        }
    return out


def _nets_vols(c: docker.DockerClient, project: str) -> tuple[dict, dict]:
    nets = {n.name.replace(project, "P", 1): {k: v for k, v in n.attrs["Labels"].items() if k not in IGNORED_LABELS}
            for n in c.networks.list(filters={"label": f"com.docker.compose.project={project}"})}
    vols = {v.name.replace(project, "P", 1): {k: x for k, x in v.attrs["Labels"].items() if k not in IGNORED_LABELS}
            for v in c.volumes.list(filters={"label": f"com.docker.compose.project={project}"})}
    return nets, vols


def test_same_result_as_docker_compose(tools):
    dc, dy, c, _ = tools
    if not COMPOSE:
        pytest.skip("Debian's docker-compose is not installed")
    dc("-p", "a", "up", "-d")
    dy("--compatibility", "-p", "b", "up", "-d")
    a, b = _shape(c, "a"), _shape(c, "b")
    for svc in a:
        for k in a[svc]:
            assert a[svc][k] == b[svc][k], (svc, k, a[svc][k], b[svc][k])
    assert a == b
    assert _nets_vols(c, "a") == _nets_vols(c, "b")
    assert b["app"]["labels"]["com.docker.compose.oneoff"] == "False"
    assert c.containers.get("b_app_1").logs().startswith(b"done")   # job completed before app started
    # unchanged: nothing recreated; down removes all of it
    before = {x.id for x in c.containers.list(all=True, filters={"label": "com.docker.compose.project=b"})}
    dy("--compatibility", "-p", "b", "up", "-d")
    assert {x.id for x in c.containers.list(all=True, filters={"label": "com.docker.compose.project=b"})} == before
    ps = dy("-p", "b", "ps").stdout
    assert "b_web_1" in ps and "healthy" in ps
    dy("-p", "b", "down", "-v")
    assert not c.containers.list(all=True, filters={"label": "com.docker.compose.project=b"})
    assert _nets_vols(c, "b") == ({}, {})


def test_bad_input_names_the_service_and_leaves_nothing(tools):
    _, dy, c, d = tools
    port = free_port()
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", port))
    busy.listen(1)
    try:
        (d / "compose.yaml").write_text(f"""services:
  first: {{image: busybox, command: ["sleep", "100"]}}
  web: {{image: busybox, command: ["sleep", "100"], ports: ["127.0.0.1:{port}:80"], depends_on: [first]}}
""")
        p = dy("-p", "b", "up", "-d", check=False)
        assert p.returncode == 1 and "service 'web'" in p.stderr and "port is already allocated" in p.stderr, p.stderr
        assert not c.containers.list(all=True, filters={"label": "com.docker.compose.project=b"})
    finally:
        busy.close()
    (d / "compose.yaml").write_text("services:\n  web: {image: nosuch/image:1}\n")
    p = dy("-p", "b", "up", "-d", check=False)
    assert p.returncode == 1 and "web" in p.stderr, p.stderr
    (d / "compose.yaml").write_text("""services:
  sick: {image: busybox, command: ["sleep", "100"], healthcheck: {test: ["CMD", "false"], interval: 1s, retries: 1}}
  app: {image: busybox, command: ["sleep", "100"], depends_on: {sick: {condition: service_healthy}}}
""")
    p = dy("-p", "b", "up", "-d", check=False)
    assert p.returncode == 1 and "sick" in p.stderr and "unhealthy" in p.stderr, p.stderr
    assert not c.containers.list(all=True, filters={"label": "com.docker.compose.project=b"})
    (d / "compose.yaml").write_text("services:\n  web: {image: busybox, ports: 80}\n")
    p = dy("-p", "b", "config", check=False)
    assert p.returncode == 1 and "services.web.ports" in p.stderr, p.stderr
