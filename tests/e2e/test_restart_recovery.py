"""Containers outlive the daemon: kill -9, restart, reconcile."""

from __future__ import annotations

import os
import time

import docker
import pytest

pytestmark = pytest.mark.root


def _client(d):
    return docker.DockerClient(base_url=d.host, version="auto")


def test_kill9_containers_survive_and_exits_are_recorded(fresh_daemon):
    d = fresh_daemon()
    c = _client(d)
    ticker = c.containers.run("busybox", ["sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done"],
                              detach=True, name="ticker")
    short = c.containers.run("busybox", ["sh", "-c", "sleep 1; exit 7"], detach=True, name="short")
    gone = c.containers.run("busybox", ["sh", "-c", "sleep 1"], detach=True, auto_remove=True, name="gone")
    pid = c.api.inspect_container(ticker.id)["State"]["Pid"]
    logpath = c.api.inspect_container(ticker.id)["LogPath"]
    c.close()
    d.kill9()
    size_at_kill = os.path.getsize(logpath)
    time.sleep(2.0)
    assert os.path.getsize(logpath) > size_at_kill, "logs stopped flowing while the daemon was down"
    os.kill(pid, 0)  # still alive
    d.start()
    c = _client(d)
    a = c.api.inspect_container(ticker.id)
    assert a["State"]["Running"] and a["State"]["Pid"] == pid
    s = c.api.inspect_container(short.id)["State"]
    assert s["Status"] == "exited" and s["ExitCode"] == 7
    assert not s["FinishedAt"].startswith("0001")
    with pytest.raises(docker.errors.NotFound):
        c.containers.get(gone.id)
    n_before = len(ticker.logs().split())
    time.sleep(0.5)
    assert len(c.containers.get("ticker").logs().split()) > n_before
    c.containers.get("ticker").stop(timeout=0)
    assert c.api.inspect_container(ticker.id)["State"]["ExitCode"] == 137
    c.containers.get("ticker").remove()
    c.containers.get("short").remove()
    c.close()


def test_sigterm_stops_containers_without_live_restore(fresh_daemon):
    d = fresh_daemon()
    c = _client(d)
    ctr = c.containers.run("busybox", ["sleep", "300"], detach=True)
    pid = c.api.inspect_container(ctr.id)["State"]["Pid"]
    c.close()
    d.stop()
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    d.start()
    c = _client(d)
    st = c.api.inspect_container(ctr.id)["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 137
    ctr.remove()
    c.close()


def test_live_restore_keeps_containers_on_sigterm(fresh_daemon):
    d = fresh_daemon(config={"live-restore": True})
    c = _client(d)
    ctr = c.containers.run("busybox", ["sleep", "300"], detach=True)
    pid = c.api.inspect_container(ctr.id)["State"]["Pid"]
    c.close()
    d.stop()
    os.kill(pid, 0)
    d.start()
    c = _client(d)
    assert c.api.inspect_container(ctr.id)["State"]["Pid"] == pid
    ctr.remove(force=True)
    c.close()


def test_leftovers_are_removed_on_start(fresh_daemon):
    d = fresh_daemon()
    stale = d.data_root / "containers" / ("f" * 64)
    (stale / "rootfs").mkdir(parents=True)
    (d.exec_root / "containers" / ("f" * 64)).mkdir(parents=True)
    d.stop()
    d.start()
    assert not stale.exists()
    assert not (d.exec_root / "containers" / ("f" * 64)).exists()
