"""Interactive containers driven through a real terminal (tmux) by `dockyard`, Debian's docker
CLI (20.10, API 1.41) and a current docker CLI when the host has one: run -it, typing, window
size, detach with ctrl-p ctrl-q, attach back, exit codes; exec -it; piped stdin."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from ..helpers import BIN, DOCKER
from .tmuxterm import TMUX, Term

pytestmark = pytest.mark.skipif(not TMUX, reason="tmux is not installed")

CLIS = {"dockyard": str(BIN / "dockyard")}
if DOCKER:
    CLIS["docker-20.10"] = DOCKER
_CURRENT = shutil.which("docker", path="/usr/local/bin")
if _CURRENT and _CURRENT != DOCKER:
    CLIS["docker-current"] = _CURRENT


@pytest.fixture
def terms():
    made: list[Term] = []

    def make(argv: list[str], env: dict[str, str], cols: int = 120, rows: int = 40) -> Term:
        t = Term(argv, env, cols, rows)
        made.append(t)
        return t
    yield make
    for t in made:
        t.close()


def _other(name: str) -> str:
    return next((n for n in CLIS if n != name), name)


@pytest.mark.parametrize("cli", list(CLIS))
def test_run_it_type_resize_detach_attach_exit(cli, daemon, client, terms):
    name = f"tty-{cli}"
    t = terms([CLIS[cli], "run", "-it", "--network", "none", "--name", name, "busybox", "sh"], daemon.env())
    t.wait_for("/ #")
    t.type("echo hello-$((6*7))")
    t.wait_for("hello-42")
    t.type("stty size; tty")
    s = t.wait_for("/dev/pts/0")
    assert "40 120" in s
    t.resize(100, 30)
    t.until("X=remembered; stty size", "30 100")
    t.send("C-p", "C-q")
    t.wait_for("EXIT=0")
    assert client.containers.get(name).status == "running"
    # back in with another client, the same shell (its variable is still set)
    other = _other(cli)
    t2 = terms([CLIS[other], "attach", name], daemon.env(), 90, 25)
    t2.type("echo value=$X")
    t2.wait_for("value=remembered")
    t2.until("stty size", "25 90")
    t2.type("exit 7")
    t2.wait_for("EXIT=7")
    assert client.containers.get(name).wait(timeout=10)["StatusCode"] == 7


@pytest.mark.parametrize("cli", list(CLIS))
def test_exec_it(cli, daemon, client, terms):
    c = client.containers.run("busybox", ["sleep", "300"], detach=True)
    t = terms([CLIS[cli], "exec", "-it", c.id[:12], "sh"], daemon.env(), 101, 33)
    t.wait_for("/ #")
    t.type("echo in-$((2+3)); stty size; tty")
    s = t.wait_for("in-5")
    t.wait_for("33 101")
    t.resize(80, 20)
    t.until("stty size", "20 80")
    t.type("exit 5")
    t.wait_for("EXIT=5")
    assert "/dev/pts/" in t.screen(), s
    # exec detach: the process stays, the container too (the docker CLI reports the detach of
    # an exec as the error "read escape sequence", exit code 1; dockyard does the same)
    t2 = terms([CLIS[cli], "exec", "-it", c.id[:12], "sh"], daemon.env())
    t2.wait_for("/ #")
    t2.send("C-p", "C-q")
    t2.wait_for("read escape sequence")
    t2.wait_for("EXIT=1")
    c.reload()
    assert c.status == "running"
    top = client.api.top(c.id)
    assert sum(1 for p in top["Processes"] if p[-1] == "sh") == 1, top


@pytest.mark.parametrize("cli", list(CLIS))
def test_piped_stdin(cli, daemon):
    run = [CLIS[cli], "run", "--rm", "-i", "--network", "none", "busybox"]
    p = subprocess.run([*run, "cat"], input=b"hi\n", capture_output=True, env=daemon.env(), timeout=60)
    assert (p.returncode, p.stdout) == (0, b"hi\n"), p.stderr
    p = subprocess.run([*run, "sh", "-c", "read x; exit $x"], input=b"9\n", capture_output=True, env=daemon.env(),
                       timeout=60)
    assert p.returncode == 9, p.stderr


@pytest.mark.parametrize("cli", ["dockyard", "docker-20.10"])
def test_100mb_through_cat(cli, daemon, tmp_path):
    if cli not in CLIS:
        pytest.skip("no docker CLI")
    data = os.urandom(1 << 20) * 100
    src = tmp_path / "in"
    src.write_bytes(data)
    with open(src, "rb") as f:
        p = subprocess.run([CLIS[cli], "run", "--rm", "-i", "--network", "none", "busybox", "cat"], stdin=f, capture_output=True,
                           env=daemon.env(), timeout=300)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) == len(data)
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(data).digest()


def test_input_device_not_a_tty(daemon):
    p = subprocess.run([CLIS["dockyard"], "run", "--rm", "-it", "busybox", "true"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=daemon.env(), timeout=60)
    assert p.returncode == 1 and "the input device is not a TTY" in p.stderr


def test_interactive_container_survives_daemon_kill9(fresh_daemon, terms):
    import docker
    d = fresh_daemon()
    t = terms([CLIS["dockyard"], "run", "-it", "--name", "survivor", "busybox", "sh"], d.env())
    t.wait_for("/ #")
    t.type("S=kept; echo before")
    t.wait_for("before")
    d.kill9()
    d.start()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        assert c.containers.get("survivor").status == "running"
        t2 = terms([CLIS["dockyard"], "attach", "survivor"], d.env(), 100, 30)
        t2.type("echo after-$S")
        t2.wait_for("after-kept")
        t2.until("stty size", "30 100")
        t2.type("exit 4")
        t2.wait_for("EXIT=4")
        assert c.containers.get("survivor").wait(timeout=10)["StatusCode"] == 4
    finally:
        c.close()
