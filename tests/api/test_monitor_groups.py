"""Containers in groups, a monitor per group (`--monitors N`, containers/monitors.py): the output
of containers in different groups is carried by different processes (so on different cores), a
monitor that dies takes no other group's containers or output with it, and a daemon that
restarts finds each container's monitor again."""

from __future__ import annotations

import os
import signal
import subprocess

import docker
import pytest

from tests.helpers import DOCKER, until

pytestmark = pytest.mark.root


def _parent(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(pid)




def _ticker(c: docker.DockerClient, word: str):
    ctr = c.containers.run("busybox", ["sh", "-c", f"i=0; while true; do echo {word} $i; i=$((i+1)); sleep 0.1; done"],
                           detach=True, network_mode="none")
    ctr.reload()
    return ctr


def _lines(ctr) -> list[str]:
    return ctr.logs().decode().split("\n")[:-1]


def test_two_groups_two_monitors_each_a_fault_domain(fresh_daemon):
    d = fresh_daemon("--monitors", "2")
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        a, b = _ticker(c, "a"), _ticker(c, "b")
        pa, pb = (x.attrs["State"]["Pid"] for x in (a, b))
        m0, m1 = d.monitor_pid(), int((d.exec_root / "monitors" / "1" / "monitor.pid").read_text())
        # one in each group: each init is a child of its own group's monitor
        assert {_parent(pa), _parent(pb)} == {m0, m1}
        in0, in1 = (a, b) if _parent(pa) == m0 else (b, a)
        # `exec` reaches the monitor of its group
        assert in1.exec_run(["echo", "from group 1"]).output == b"from group 1\n"

        # the monitor of group 1 dies: group 0's container and its log go on untouched; group 1's
        # container is adopted by a new monitor of its group, which writes its log from then on
        os.kill(m1, signal.SIGKILL)
        pid1 = d.exec_root / "monitors/1/monitor.pid"
        new1 = until(lambda: (p := int(pid1.read_text())) != m1 and p, "a new monitor of group 1", 10)
        assert d.monitor_pid() == m0 and _parent(in0.attrs["State"]["Pid"]) == m0
        n0, n1 = len(_lines(in0)), len(_lines(in1))
        until(lambda: len(_lines(in0)) > n0 + 3 and len(_lines(in1)) > n1 + 3, "both logs growing", 10)
        in1.reload()
        in0.reload()
        assert in0.status == in1.status == "running"
        in1.stop(timeout=1)
        in1.reload()
        assert in1.status == "exited" and in1.attrs["State"]["ExitCode"] == 255   # lost monitor: unknowable
        in0.stop(timeout=1)
        in0.reload()
        assert in0.attrs["State"]["ExitCode"] == 137   # its own monitor saw the SIGKILL after the timeout
        assert new1 != m1
    finally:
        c.close()


def test_a_restarted_daemon_finds_every_group(fresh_daemon):
    d = fresh_daemon(config={"monitors": 2})   # daemon.json's key
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        a, b = _ticker(c, "a"), _ticker(c, "b")
        monitors = set(d.monitor_pids())
        assert len(monitors) == 2
        d.kill9()
        d.start()
        # the same monitors, each still running its container; exec and logs reach both
        assert set(d.monitor_pids()) == monitors
        for x, word in ((a, "a"), (b, "b")):
            x.reload()
            assert x.status == "running"
            assert x.exec_run(["echo", word]).output == f"{word}\n".encode()
            n = len(_lines(x))
            until(lambda x=x, n=n: len(_lines(x)) > n + 2, "its log growing", 10)
        b.stop(timeout=1)
        a.stop(timeout=1)
        for x in (a, b):
            x.reload()
            assert x.attrs["State"]["ExitCode"] == 137
    finally:
        c.close()
    # stopped (SIGTERM: containers and monitors end), started again: no monitor for an empty group
    d.stop()
    for pid in monitors:
        until(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), "the monitor gone", 10)
    d.start()
    assert d.monitor_processes() == [d.monitor_pid()]   # group 0's only


@pytest.mark.skipif(not DOCKER, reason="Debian's docker CLI (docker.io) is not installed")
def test_an_attach_before_the_start_reaches_the_monitor_that_runs_it(fresh_daemon):
    """`docker run` attaches before it starts: the attach must reach the group the start then
    uses, or the output would go to a monitor no client listens to."""
    d = fresh_daemon("--monitors", "2")
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        busy = _ticker(c, "x")   # group 0 has one running: the next container is placed in group 1
        for word in ("one", "two"):
            p = subprocess.run([DOCKER, "run", "--rm", "--network", "none", "busybox", "echo", word], env=d.env(),
                               capture_output=True, text=True, timeout=60)
            assert (p.returncode, p.stdout) == (0, f"{word}\n"), p.stderr
        assert (d.exec_root / "monitors" / "1" / "monitor.pid").exists()
        p = subprocess.run([DOCKER, "run", "-i", "--rm", "--network", "none", "busybox", "cat"], env=d.env(),
                           input="through stdin\n", capture_output=True, text=True, timeout=60)
        assert (p.returncode, p.stdout) == (0, "through stdin\n"), p.stderr
        busy.remove(force=True)
    finally:
        c.close()


def test_monitors_is_validated(fresh_daemon, tmp_path):
    from tests.helpers import Daemon
    d = Daemon(tmp_path / "bad", "--monitors", "-1")
    with pytest.raises(RuntimeError, match="monitors must be a positive integer"):
        d.start()
    d.cleanup()


def test_concurrent_starts_make_one_monitor_per_group(fresh_daemon):
    """Starts that reach a group without a monitor at the same moment start one monitor, and every
    container started then is one the daemon hears the exit of (a second monitor of the same
    group would hold containers no one follows)."""
    import threading
    d = fresh_daemon("--monitors", "2")
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        first = _ticker(c, "first")   # group 0 is busy: the concurrent starts go to group 1 first
        made, errors = [], []

        def start(k: int) -> None:
            try:
                made.append(c.containers.run("busybox", ["sleep", "1000"], detach=True, network_mode="none"))
            except Exception as e:  # noqa: BLE001 - collected
                errors.append(repr(e))
        ts = [threading.Thread(target=start, args=(k,)) for k in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors
        assert sorted(d.monitor_processes()) == sorted(d.monitor_pids())
        assert len(d.monitor_pids()) == 2
        for x in [first, *made]:   # the daemon hears every exit: each removal ends
            x.remove(force=True)
        assert c.containers.list(all=True) == []
    finally:
        c.close()
