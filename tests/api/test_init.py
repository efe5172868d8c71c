"""--init: tini (Debian's docker-init) as PID 1 reaps zombies and forwards signals."""

from __future__ import annotations

import shutil
import time

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not (shutil.which("docker-init") or shutil.which("tini-static")),
                                 reason="tini is not installed (apt-get install tini)")]

# an orphan re-parented to PID 1 when its parent exits: PID 1 must reap it
ORPHAN = ["sh", "-c", "(sleep 0.2 &); exec sleep 300"]
ZOMBIES = ["sh", "-c", "cat /proc/[0-9]*/status | grep -c zombie"]
# a shell looping: as PID 1 the kernel drops the SIGTERM it has no handler for
LOOP = ["sh", "-c", "while :; do sleep 0.1; done"]


def _zombies(c) -> int:
    time.sleep(0.8)
    return int(c.exec_run(ZOMBIES).output.decode().strip() or 0)


def test_init_reaps_zombies_and_forwards_sigterm(client):
    plain = client.containers.run("busybox", ORPHAN, detach=True, network_mode="none")
    init = client.containers.run("busybox", ORPHAN, detach=True, network_mode="none", init=True)
    try:
        assert _zombies(plain) == 1          # the control: without an init nobody reaps it
        assert _zombies(init) == 0
        assert init.exec_run(["cat", "/proc/1/cmdline"]).output.split(b"\0")[:3] == [b"/sbin/docker-init", b"--",
                                                                                      b"sh"]
        assert client.api.inspect_container(init.id)["HostConfig"]["Init"] is True
        r = init.exec_run(["sh", "-c", "echo x > /sbin/docker-init"])
        assert r.exit_code != 0                       # read-only
    finally:
        plain.remove(force=True)
        init.remove(force=True)
    plain = client.containers.run("busybox", LOOP, detach=True, network_mode="none")
    init = client.containers.run("busybox", LOOP, detach=True, network_mode="none", init=True)
    try:
        plain.stop(timeout=1)
        init.stop(timeout=20)
        assert plain.wait()["StatusCode"] == 137      # the SIGTERM was lost: killed after the grace period
        assert init.wait()["StatusCode"] == 143       # tini passed it on; the shell died of it
    finally:
        plain.remove(force=True)
        init.remove(force=True)


def test_daemon_init_default_and_init_path(fresh_daemon, tmp_path):
    import docker
    d = fresh_daemon("--init")
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        out = c.containers.run("busybox", ["cat", "/proc/1/cmdline"], remove=True, network_mode="none")
        assert out.startswith(b"/sbin/docker-init\0")
        out = c.containers.run("busybox", ["cat", "/proc/1/cmdline"], remove=True, network_mode="none", init=False)
        assert out.startswith(b"cat\0")
    finally:
        c.close()
    d2 = fresh_daemon("--init-path", str(tmp_path / "missing"))
    c = docker.DockerClient(base_url=d2.host, version="1.41")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            c.containers.run("busybox", ["true"], network_mode="none", init=True)
        assert "missing" in str(e.value) and "not found" in str(e.value)
    finally:
        c.close()
