"""Issue 8: one wedged container never delays operations on the others. The wedge: a runtime
that hangs (on `kill` and `delete` of the wedged container, as a runtime stuck on a dead NFS
mount would). While a `kill` and an `rm -f` of it wait (bounded by DOCKYARD_MONITOR_TIMEOUT),
50 other containers are created, started, listed and removed, and `ps` keeps answering."""

from __future__ import annotations

import os
import signal
import threading
import time

import docker
import pytest

from ..helpers import BIN

pytestmark = pytest.mark.root

HANG = """#!/bin/sh
for a in "$@"; do
  case "$a" in
    kill|delete) if [ -e {flag} ]; then echo $$ >> {pids}; exec sleep 600; fi;;
  esac
done
exec {runtime} "$@"
"""


def test_a_wedged_container_does_not_delay_the_others(fresh_daemon, tmp_path, monkeypatch, capsys):
    flag, pids = tmp_path / "wedge", tmp_path / "hung.pids"
    script = tmp_path / "hang-runtime"
    script.write_text(HANG.format(flag=flag, pids=pids, runtime=BIN / "dockyard-runtime"))
    script.chmod(0o755)
    monkeypatch.setenv("DOCKYARD_MONITOR_TIMEOUT", "20")
    d = fresh_daemon(config={"runtimes": {"hang": {"path": str(script)}}})
    c = docker.APIClient(base_url=d.host, version="1.41", timeout=120)
    w = c.create_container("busybox", ["sleep", "100000"], name="wedged", host_config=c.create_host_config(
        runtime="hang"))
    c.start(w["Id"])
    flag.touch()
    wedged_done: dict[str, float] = {}
    wedged_err: dict[str, str] = {}

    def wedged(op: str) -> None:
        api = docker.APIClient(base_url=d.host, version="1.41", timeout=120)
        try:
            api.kill("wedged") if op == "kill" else api.remove_container("wedged", force=True)
        except docker.errors.APIError as e:
            wedged_err[op] = str(e.explanation)
        wedged_done[op] = time.monotonic()
    hung = [threading.Thread(target=wedged, args=(op,)) for op in ("kill", "rm")]
    for t in hung:
        t.start()
    time.sleep(0.5)
    ps_lat: list[float] = []
    stop = threading.Event()

    def ps() -> None:
        api = docker.APIClient(base_url=d.host, version="1.41", timeout=120)
        while not stop.is_set():
            t = time.monotonic()
            api.containers(all=True)
            ps_lat.append(time.monotonic() - t)
            time.sleep(0.01)
    pt = threading.Thread(target=ps)
    pt.start()
    errors: list[str] = []

    def worker(k: int) -> None:
        api = docker.APIClient(base_url=d.host, version="1.41", timeout=120)
        for i in range(10):
            try:
                x = api.create_container("busybox", ["sleep", "1000"], name=f"o{k}-{i}")
                api.start(x["Id"])
                assert api.inspect_container(x["Id"])["State"]["Running"]
                api.remove_container(x["Id"], force=True)
            except Exception as e:  # noqa: BLE001 - collected
                errors.append(repr(e))
    ws = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
    for t in ws:
        t.start()
    for t in ws:
        t.join()
    others_done = time.monotonic()
    stop.set()
    pt.join()
    assert not errors, errors[:3]
    assert not wedged_done, "the wedged container's operations should still be waiting on its runtime"
    for t in hung:
        t.join(60)
    # bounded: both ended with an error naming the wait, not a hang
    assert set(wedged_done) == {"kill", "rm"} and min(wedged_done.values()) > others_done
    assert all("did not answer" in e or "runtime" in e for e in wedged_err.values()), wedged_err
    # the wedge lifted, rm -f works
    flag.unlink()
    for pid in pids.read_text().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    c.remove_container("wedged", force=True)
    assert not c.containers(all=True)
    c.close()
    ps_lat.sort()
    with capsys.disabled():
        print(f"\nwedged: 50 others created, started and removed while it hung; ps {len(ps_lat)} calls, "
              f"p50 {ps_lat[len(ps_lat) // 2] * 1000:.0f} ms, p99 {ps_lat[int(len(ps_lat) * .99)] * 1000:.0f} ms")
