"""Issue 14, part 1: Debian's docker-compose 1.29 unchanged against dockyardd — a project with a
service built from a Dockerfile, a named volume, a port published on 127.0.0.1, a healthcheck that
another service waits for, an env file and deploy limits; up, ps, logs (-f), exec, run --rm (through
the docker CLI and in-process), scale (the command and --scale), pull from a registry,
restart, stop, start, config, down -v; an unchanged project recreates nothing, a changed service
is the only one recreated."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import docker
import pytest

from ..helpers import free_port, until
from ..registry.conftest import registry  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.root
COMPOSE = shutil.which("docker-compose")

PROJECT = """version: "3.8"
services:
  web:
    build: ./web
    image: dytest/web:{tag}
    ports: ["127.0.0.1:{port}:80"]
    healthcheck:
      test: ["CMD-SHELL", "echo | nc -w 1 127.0.0.1 80"]
      interval: 1s
    volumes: ["webdata:/var/www/data"]
    env_file: web.env
    deploy:
      resources:
        limits: {{memory: 64M}}
  client:
    image: busybox
    depends_on:
      web: {{condition: service_healthy}}
    command: ["sh", "-c", "{client_cmd}"]
volumes:
  webdata:
"""
CLIENT = "printf 'GET /index.html HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc web 80 | tail -1; sleep 1000"


def _project(d: Path, port: int, client_cmd: str = CLIENT, tag: str = "1") -> None:
    (d / "web" / "site").mkdir(parents=True, exist_ok=True)
    (d / "web" / "Dockerfile").write_text("FROM busybox\nCOPY site/ /var/www/\nCMD [\"httpd\", \"-f\", \"-p\", \"80\", "
                                          "\"-h\", \"/var/www\"]\n")
    (d / "web" / "site" / "index.html").write_text("<h1>from compose</h1>\n")
    (d / "web.env").write_text("GREETING=hello\n")
    (d / "docker-compose.yml").write_text(PROJECT.format(port=port, client_cmd=client_cmd, tag=tag))


@pytest.fixture
def compose(bridged, tmp_path):
    if not COMPOSE:
        pytest.skip("Debian's docker-compose is not installed")
    d, _, _ = bridged
    env = {**d.env(), "COMPOSE_DOCKER_CLI_BUILD": "0", "DOCKER_BUILDKIT": "0"}

    def run(*args: str, check: bool = True, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([COMPOSE, "-p", "proj", *args], env={**env, **(extra or {})}, cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
        if check and p.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} → {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p
    c = docker.DockerClient(base_url=d.host, version="1.41")
    yield run, c, tmp_path
    run("down", "-v", "--remove-orphans", check=False)
    c.close()


def _ids(c: docker.DockerClient) -> dict[str, str]:
    return {x.name: x.id for x in c.containers.list(all=True, filters={"label": "com.docker.compose.project=proj"})}


def test_project_lifecycle(compose, bridged):
    run, c, d = compose
    port = free_port()
    _project(d, port)
    run("up", "-d")
    ids = _ids(c)
    assert set(ids) == {"proj_web_1", "proj_client_1"}
    web = c.containers.get("proj_web_1")
    labels = web.attrs["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "proj" and labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1" and "com.docker.compose.config-hash" in labels
    assert web.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    net = c.networks.get("proj_default")
    assert net.attrs["Labels"]["com.docker.compose.network"] == "default"
    assert "web" in web.attrs["NetworkSettings"]["Networks"]["proj_default"]["Aliases"]
    vol = c.volumes.get("proj_webdata")
    assert vol.attrs["Labels"]["com.docker.compose.volume"] == "webdata"
    assert any(m["Name"] == "proj_webdata" for m in web.attrs["Mounts"])
    body = until(lambda: _get(f"http://127.0.0.1:{port}/index.html"), "the published port")
    assert body == b"<h1>from compose</h1>\n"
    # the client started once web was healthy, and reached it by its service name
    until(lambda: "from compose" in run("logs", "client").stdout, "the client's answer from web")
    assert "Up (healthy)" in run("ps").stdout
    assert run("exec", "-T", "web", "sh", "-c", "echo $GREETING").stdout == "hello\n"
    p = run("run", "--rm", "-T", "client", "echo", "one-off")
    assert "one-off" in p.stdout
    # compose's in-process run (docker-py attaches after start: a quick command may be gone by then,
    # which once left the attach waiting forever)
    for i in range(5):
        p = run("run", "--rm", "-T", "client", "echo", f"in-process {i}", extra={"COMPOSE_INTERACTIVE_NO_CLI": "1"})
        assert p.returncode == 0, p.stderr
    assert set(_ids(c)) == {"proj_web_1", "proj_client_1"}   # run --rm left nothing
    # unchanged: nothing recreated
    p = run("up", "-d")
    assert "is up-to-date" in p.stderr and _ids(c) == ids, p.stderr
    # the client's command changed: only the client is recreated
    _project(d, port, client_cmd=CLIENT.replace("sleep 1000", "sleep 2000"))
    run("up", "-d")
    after = _ids(c)
    assert after["proj_web_1"] == ids["proj_web_1"] and after["proj_client_1"] != ids["proj_client_1"]
    run("up", "-d", "--scale", "client=3")
    assert {n for n in _ids(c) if n.startswith("proj_client_")} == {"proj_client_1", "proj_client_2",
                                                                    "proj_client_3"}
    run("scale", "client=2")   # the 1.x command (deprecated there, still served)
    assert {n for n in _ids(c) if n.startswith("proj_client_")} == {"proj_client_1", "proj_client_2"}
    # logs -f follows until the containers stop
    f = subprocess.Popen([COMPOSE, "-p", "proj", "logs", "-f", "--no-color", "web"], env=bridged[0].env(), cwd=d,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        assert f.poll() is None
        run("stop", "web")
        out, _ = f.communicate(timeout=60)
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()
    assert f.returncode == 0 and "proj_web_1" in out, out
    run("restart", "client")
    run("stop")
    assert not c.containers.list(filters={"label": "com.docker.compose.project=proj"})
    run("start")
    until(lambda: len(c.containers.list(filters={"label": "com.docker.compose.project=proj"})) == 3, "start")
    cfg = run("config").stdout
    assert "webdata" in cfg and "service_healthy" in cfg
    run("down", "-v", "--remove-orphans")
    assert not _ids(c)
    assert not [n for n in c.networks.list() if n.name == "proj_default"]
    assert not [v for v in c.volumes.list() if v.name == "proj_webdata"]


def _get(url: str) -> bytes | None:
    try:
        return urllib.request.urlopen(url, timeout=2).read()
    except OSError:
        return None


def test_build_and_pull_commands(compose):
    run, c, d = compose
    _project(d, free_port(), tag="2")
    p = run("build")
    assert "Successfully tagged dytest/web:2" in p.stdout + p.stderr
    assert c.images.get("dytest/web:2")
    p = run("pull", "--ignore-pull-failures", "client", check=False)   # busybox is on no registry here
    assert p.returncode == 0 or "client" in p.stderr


def test_pull_from_a_registry(compose, registry):  # noqa: F811 - the fixture
    run, c, d = compose
    ref = f"{registry}/compose/bb:1"
    c.images.get("busybox").tag(ref)
    for line in c.api.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    c.images.remove(ref)
    (d / "docker-compose.yml").write_text(f"version: '3.8'\nservices:\n  one:\n    image: {ref}\n")
    run("pull")
    assert c.images.get(ref).id == c.images.get("busybox").id
