"""Issue 14, part 2: `dockyard compose` on the same files as docker-compose 1.29 gives the same
containers (names with --compatibility, labels, networks, aliases, mounts, limits, restart
policies), networks and volumes; depends_on conditions; bad input fails naming the service and
leaves nothing half-started."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import docker
import pytest

from ..e2e.tmuxterm import Term
from ..helpers import BIN, free_port, until
from ..registry.conftest import registry  # noqa: F401 - the fixture, shared

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
            "env": sorted(e for e in (a["Config"]["Env"] or []) if e.startswith("MODE=")),
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
        assert _nets_vols(c, "b") == ({}, {})   # the network it made is gone too
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


RUN_FILE = """services:
  db:
    image: busybox
    command: ["sleep", "1000"]
    stop_grace_period: 1s
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    ports: ["127.0.0.1::80"]
    depends_on: [db]
    stop_grace_period: 1s
  tool:
    image: {registry}/compose/tool:1
    build: .
    profiles: [tools]
"""


def _project_ctrs(c: docker.DockerClient, **labels: str) -> list:
    want = ["com.docker.compose.project=b", *(f"com.docker.compose.{k}={v}" for k, v in labels.items())]
    return c.containers.list(all=True, filters={"label": want})


def test_run_top_images_port_push(tools, registry):  # noqa: F811 - the fixture
    _, dy, c, d = tools
    (d / "compose.yaml").write_text(RUN_FILE.format(registry=registry))
    (d / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\n")
    # run: the dependency comes up, the one-off's output and exit code are the command's
    p = dy("-p", "b", "run", "--rm", "web", "sh", "-c", "echo one-off; exit 3", check=False)
    assert p.returncode == 3 and "one-off" in p.stdout, (p.stdout, p.stderr)
    assert [x.name for x in _project_ctrs(c, service="db")] == ["b-db-1"]
    assert not _project_ctrs(c, oneoff="True")   # --rm left nothing
    p = dy("-p", "b", "run", "-d", "-e", "X=from-run", "web")
    name = p.stdout.strip()
    assert name.startswith("b-web-run-"), p.stdout
    one = c.containers.get(name)
    assert one.attrs["Config"]["Labels"]["com.docker.compose.oneoff"] == "True"
    assert "X=from-run" in one.attrs["Config"]["Env"]
    assert not one.attrs["HostConfig"].get("PortBindings")   # no --service-ports: nothing published
    aliases = one.attrs["NetworkSettings"]["Networks"]["b_default"].get("Aliases") or []
    assert "web" not in aliases
    # up, then what runs where
    dy("-p", "b", "up", "-d")
    port = dy("-p", "b", "port", "web", "80").stdout.strip()
    web = c.containers.get("b-web-1")
    assert port == "127.0.0.1:" + web.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    import urllib.request
    assert until(lambda: urllib.request.urlopen(f"http://{port}/hostname", timeout=2).read(), "httpd")
    top = dy("-p", "b", "top", "web").stdout
    assert top.splitlines()[0] == "b-web-1" and "httpd" in top and "PID" in top, top
    imgs = dy("-p", "b", "images").stdout
    assert "b-db-1" in imgs and "busybox" in imgs and "IMAGE ID" in imgs, imgs
    p = dy("-p", "b", "port", "db", "80", check=False)
    assert p.returncode == 1 and "80/tcp" in p.stderr
    # push: the service's built image reaches the registry
    dy("-p", "b", "--profile", "tools", "build", "tool")
    p = dy("-p", "b", "--profile", "tools", "push", "tool")
    tags = json.loads(urllib.request.urlopen(f"http://{registry}/v2/compose/tool/tags/list", timeout=5).read())
    assert tags["tags"] == ["1"], (tags, p.stderr)
    # down takes the one-offs too
    dy("-p", "b", "down")
    assert not _project_ctrs(c)


def test_attached_up(tools, bridged):
    _, dy, c, d = tools
    (d / "compose.yaml").write_text("""services:
  quick: {image: busybox, command: ["sh", "-c", "echo first; echo second; exit 4"]}
  long: {image: busybox, command: ["sleep", "1000"], stop_grace_period: 1s}
""")
    # attached until every container exits: quick's output behind its prefix; long never exits, so abort
    p = dy("-p", "b", "up", "--exit-code-from", "quick", check=False)
    assert p.returncode == 4, (p.stdout, p.stderr)
    assert "b-quick-1  | first\nb-quick-1  | second\n" in p.stdout, p.stdout
    assert "Aborting on container exit" in p.stderr
    assert not c.containers.list(filters={"label": "com.docker.compose.project=b"})   # long was stopped
    # on a terminal: one colour per container's prefix; Ctrl-C stops the project
    (d / "compose.yaml").write_text("""services:
  one: {image: busybox, command: ["sh", "-c", "echo from-one; sleep 1000"], stop_grace_period: 1s}
  two: {image: busybox, command: ["sh", "-c", "echo from-two; sleep 1000"], stop_grace_period: 1s}
""")
    term = Term(["sh", "-c", f"cd {d} && exec {BIN / 'dockyard'} compose -p b up"], bridged[0].env())
    try:
        term.wait_for("from-two")
        term.wait_for("from-one")
        screen = term.screen(escapes=True)
        colours = {line.split("b-", 1)[0] for line in screen.splitlines() if " | " in line and "from-" in line}
        assert len(colours) == 2 and all("\x1b[" in x for x in colours), screen
        term.send("C-c")
        screen = term.wait_for("EXIT=130", timeout=60)
        assert "Gracefully stopping" in screen
    finally:
        term.close()
    term = Term(["sh", "-c", f"cd {d} && exec {BIN / 'dockyard'} compose -p b logs"], bridged[0].env())
    try:   # compose logs: the same colours
        term.wait_for("EXIT=0")
        screen = term.screen(escapes=True)
        assert len({line.split("b-", 1)[0] for line in screen.splitlines() if " | " in line and "from-" in line}) == 2
    finally:
        term.close()
    assert not c.containers.list(filters={"label": "com.docker.compose.project=b"})


LIFECYCLE_FILE = """services:
  web:
    build: .
    command: ["httpd", "-f", "-p", "80", "-h", "/srv"]
    healthcheck: {test: ["CMD-SHELL", "echo | nc -w 1 127.0.0.1 80"], interval: 1s}
    stop_grace_period: 1s
  worker:
    image: busybox
    command: ["sh", "-c", "echo worker $$(hostname); sleep 1000"]
    depends_on: {web: {condition: service_healthy}}
    stop_grace_period: 1s
volumes:
  cache: {}
"""


def _ids(c: docker.DockerClient) -> dict[str, str]:
    return {x.name: x.id for x in _project_ctrs(c)}


def test_lifecycle_commands(tools, bridged):
    _, dy, c, d = tools
    (d / "compose.yaml").write_text(LIFECYCLE_FILE)
    (d / "Dockerfile").write_text("FROM busybox\nRUN mkdir /srv && echo v1 > /srv/index.html\n")
    dy("-p", "b", "create")   # built and created, nothing started
    assert {x.name: x.status for x in _project_ctrs(c)} == {"b-web-1": "created", "b-worker-1": "created"}
    dy("-p", "b", "up", "--wait")   # web healthy before worker, all up when it returns
    assert c.containers.get("b-web-1").attrs["State"]["Health"]["Status"] == "healthy"
    assert c.containers.get("b-worker-1").status == "running"
    assert dy("-p", "b", "config", "--services").stdout.split() == ["web", "worker"]
    assert dy("-p", "b", "config", "--volumes").stdout.split() == ["cache"]
    assert dy("-p", "b", "ps", "--services").stdout.split() == ["web", "worker"]
    assert sorted(dy("-p", "b", "ps", "-q").stdout.split()) == sorted(_ids(c).values())
    assert dy("-p", "b", "exec", "-T", "web", "cat", "/srv/index.html").stdout == "v1\n"
    ids = _ids(c)
    dy("-p", "b", "pause", "worker")
    assert c.containers.get("b-worker-1").status == "paused"
    dy("-p", "b", "unpause", "worker")
    assert c.containers.get("b-worker-1").status == "running"
    listing = dy("ls").stdout.splitlines()
    assert listing[0].split() == ["NAME", "STATUS", "CONFIG", "FILES"]
    assert listing[1].split()[:2] == ["b", "running(2)"] and str(d / "compose.yaml") in listing[1], listing
    assert dy("version").stdout.startswith("Dockyard Compose version ")
    dy("-p", "b", "up", "-d")
    assert _ids(c) == ids   # unchanged: nothing recreated
    dy("-p", "b", "up", "-d", "--no-deps", "--force-recreate", "worker")
    after = _ids(c)
    assert after["b-web-1"] == ids["b-web-1"] and after["b-worker-1"] != ids["b-worker-1"]
    dy("-p", "b", "up", "-d", "--scale", "worker=3")
    assert sorted(n for n in _ids(c) if "worker" in n) == ["b-worker-1", "b-worker-2", "b-worker-3"]
    until(lambda: dy("-p", "b", "logs", "worker").stdout.count("worker ") == 3, "three workers' logs")
    assert "b-worker-2  | worker " in dy("-p", "b", "logs", "worker").stdout
    dy("-p", "b", "up", "-d", "--scale", "worker=1")
    assert sorted(n for n in _ids(c) if "worker" in n) == ["b-worker-1"]
    # logs -f follows until the container stops
    f = subprocess.Popen([str(BIN / "dockyard"), "compose", "-p", "b", "logs", "-f", "worker"], cwd=d,
                         env=bridged[0].env(), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert f.poll() is None
        dy("-p", "b", "stop", "worker")
        out, _ = f.communicate(timeout=30)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0 and "worker" in out
    started = c.containers.get("b-web-1").attrs["State"]["StartedAt"]
    dy("-p", "b", "restart", "web")
    assert c.containers.get("b-web-1").attrs["State"]["StartedAt"] != started
    dy("-p", "b", "stop")
    assert not c.containers.list(filters={"label": "com.docker.compose.project=b"})
    dy("-p", "b", "start")
    assert len(c.containers.list(filters={"label": "com.docker.compose.project=b"})) == 2
    dy("-p", "b", "kill", "worker")
    assert c.containers.get("b-worker-1").attrs["State"]["ExitCode"] == 137
    dy("-p", "b", "rm", "-f", "worker")
    assert set(_ids(c)) == {"b-web-1"}
    # a changed build: --build makes a new image and recreates what runs it
    (d / "Dockerfile").write_text("FROM busybox\nRUN mkdir /srv && echo v2 > /srv/index.html\n")
    dy("-p", "b", "up", "-d", "--build", "web")
    assert _ids(c)["b-web-1"] != ids["b-web-1"]
    until(lambda: dy("-p", "b", "exec", "-T", "web", "cat", "/srv/index.html", check=False).stdout == "v2\n", "v2")
    # pull: busybox is on no registry here; the error names the service, --ignore-pull-failures goes on
    p = dy("-p", "b", "pull", "worker", check=False)
    assert p.returncode == 1 and "'worker'" in p.stderr, p.stderr
    assert dy("-p", "b", "pull", "--ignore-pull-failures", "worker").returncode == 0
    # down: containers, the network, the volume (-v) and the built image (--rmi local); busybox stays
    dy("-p", "b", "down", "-v", "--rmi", "local")
    assert not _ids(c)
    assert _nets_vols(c, "b") == ({}, {})
    tags = {t for i in c.images.list() for t in i.tags}
    assert "b-web:latest" not in tags and "busybox:latest" in tags, tags
