"""The monitor keeps one runtime process forked ahead of need (monitor/runtimefork.py): a start
takes it and the monitor forks the next; a spare that died is replaced by a fork on the spot;
none outlives its monitor."""

from __future__ import annotations

import os
import signal

import docker
import pytest

from tests.helpers import until

pytestmark = pytest.mark.root


def _spares(monitor: int) -> list[int]:
    """The monitor's children named as a spare runtime process is (zombies excluded)."""
    out = []
    for k in open(f"/proc/{monitor}/task/{monitor}/children").read().split():
        try:
            stat = open(f"/proc/{k}/stat").read()
        except FileNotFoundError:
            continue
        if stat.split("(", 1)[1].startswith("dy-runtime)") and stat.rsplit(")", 1)[1].split()[0] != "Z":
            out.append(int(k))
    return out




def test_a_start_takes_the_spare_and_a_dead_spare_is_replaced(fresh_daemon):
    d = fresh_daemon()
    mon = d.monitor_pid()
    assert mon
    first = until(lambda: _spares(mon), "a spare", 5)
    assert len(first) == 1
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        assert c.containers.run("busybox", ["echo", "hi"], remove=True, network_mode="none") == b"hi\n"
        second = until(lambda: [p for p in _spares(mon) if p not in first], "a new spare", 5)   # the first one was used
        assert _spares(mon) == second and not os.path.exists(f"/proc/{first[0]}")
        os.kill(second[0], signal.SIGKILL)
        until(lambda: second[0] not in _spares(mon), "the killed spare gone", 5)
        # the dead spare cannot take the next start: the runtime is forked on the spot
        assert c.containers.run("busybox", ["echo", "again"], remove=True, network_mode="none") == b"again\n"
        third = until(lambda: _spares(mon), "a spare again", 5)
        assert second[0] not in third
    finally:
        c.close()
    d.cleanup()
    until(lambda: not os.path.exists(f"/proc/{third[0]}"), "the spare gone with its monitor", 5)


def test_the_monitor_holds_no_openssl_and_no_docstrings(fresh_daemon):
    """What keeps the monitor's fixed memory down (bench/monitor_memory): it runs without
    docstrings (-OO), and its runtime code computes the seccomp cache key with the builtin
    sha256, so neither the monitor nor its spare maps OpenSSL's libcrypto (~1.9 MiB)."""
    d = fresh_daemon()
    mon = d.monitor_pid()
    assert mon
    spare = until(lambda: _spares(mon), "a spare", 5)[0]
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:   # a start with the default seccomp profile: the filter's cache key is computed
        assert c.containers.run("busybox", ["echo", "hi"], remove=True, network_mode="none") == b"hi\n"
    finally:
        c.close()
    assert "-OO" in open(f"/proc/{mon}/cmdline").read().split("\0")
    for pid in (mon, until(lambda: [p for p in _spares(mon) if p != spare], "a new spare", 5)[0]):
        maps = open(f"/proc/{pid}/maps").read()
        assert "libcrypto" not in maps and "_hashlib" not in maps, pid
