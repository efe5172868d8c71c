"""The same flow with runc (and crun where the host allows it) as the engine's runtime."""

from __future__ import annotations

import shutil
import subprocess

import docker
import pytest

pytestmark = pytest.mark.root


def _hybrid_cgroups() -> bool:
    import os
    return not os.path.exists("/sys/fs/cgroup/cgroup.controllers") and os.path.isdir("/sys/fs/cgroup/unified")


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_run_with_runtime(fresh_daemon, runtime):
    if not shutil.which(runtime):
        pytest.skip(f"{runtime} is not installed")
    if runtime == "crun" and _hybrid_cgroups():
        r = subprocess.run(["crun", "--version"], capture_output=True, text=True)
        pytest.skip(f"crun ({r.stdout.splitlines()[0] if r.stdout else '?'}) refuses cgroup v1/v2 hybrid hosts "
                    "such as this one")
    d = fresh_daemon("--default-runtime", runtime)
    c = docker.DockerClient(base_url=d.host, version="auto")
    out = c.containers.run("busybox", ["sh", "-c", "echo hello; id -u; hostname"], remove=True, hostname="rt")
    assert out.split() == [b"hello", b"0", b"rt"]
    ctr = c.containers.run("busybox", ["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.1; done"], detach=True)
    assert c.api.inspect_container(ctr.id)["HostConfig"]["Runtime"] == runtime
    r = ctr.exec_run(["sh", "-c", "id -un; cat /proc/1/cmdline | head -c 2; exit 4"], user="nobody")
    assert r == (4, b"nobody\nsh")   # exec through the other runtime's `exec --process -d`
    ctr.stop(timeout=5)
    assert ctr.wait()["StatusCode"] == 3
    ctr.remove()
    with pytest.raises(docker.errors.ContainerError) as e:
        c.containers.run("busybox", ["sh", "-c", "exit 5"], remove=True)
    assert e.value.exit_status == 5
    # per-container runtime choice through the API
    out = c.containers.run("busybox", ["echo", "ours"], remove=True, runtime="dockyard")
    assert out == b"ours\n"
    # volumes, binds and tmpfs through the other runtime (issue 11)
    out = c.containers.run("busybox", ["sh", "-c", "echo v > /v/f; grep -c ' /t tmpfs' /proc/mounts; "
                                       "echo x > /etc-ro/hostname || echo ro"], remove=True,
                           volumes=["rtvol:/v", "/etc/hostname:/etc-ro/hostname:ro"], tmpfs={"/t": "size=1m"})
    assert out == b"1\nro\n", out
    assert c.containers.run("busybox", ["cat", "/v/f"], remove=True, volumes=["rtvol:/v"]) == b"v\n"
    c.close()


def test_terminals_with_runc(fresh_daemon):
    """A TTY container and exec -it through runc's --console-socket, stdin through its stdio."""
    import socket
    import struct

    from ..api.test_attach import _read_all, _read_until
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    d = fresh_daemon("--default-runtime", "runc")
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        cid = c.api.create_container("busybox", ["sh"], tty=True, stdin_open=True)["Id"]
        s = c.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
        c.api.start(cid)
        c.api.resize(cid, 19, 71)
        s._sock.sendall(b"tty; stty size\n")
        _read_until(s._sock, b"19 71")
        ex = c.api.exec_create(cid, ["sh", "-c", "tty; read x; echo got-$x; exit 6"], stdin=True, tty=True)
        es = c.api.exec_start(ex["Id"], socket=True, tty=True)
        _read_until(es._sock, b"/dev/pts/1")
        es._sock.sendall(b"y\n")
        assert b"got-y" in _read_all(es._sock)
        assert c.api.exec_inspect(ex["Id"])["ExitCode"] == 6
        ex = c.api.exec_create(cid, ["cat"], stdin=True)
        es = c.api.exec_start(ex["Id"], socket=True)
        es._sock.sendall(b"through runc\n")
        es._sock.shutdown(socket.SHUT_WR)
        out = _read_all(es._sock)
        assert out == struct.pack(">BxxxI", 1, 13) + b"through runc\n"
        s._sock.sendall(b"exit 2\n")
        _read_all(s._sock)
        assert c.api.wait(cid, timeout=20)["StatusCode"] == 2
    finally:
        c.close()
