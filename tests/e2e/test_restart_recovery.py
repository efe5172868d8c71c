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


def test_kill9_during_load_leaves_a_consistent_store(fresh_daemon, tmp_path):
    """A load cut off by kill -9: after restart nothing half-written remains and a new load works."""
    import hashlib
    import io
    import json
    import socket
    import tarfile
    d = fresh_daemon()
    big = os.urandom(1 << 20) * 40  # 40 MiB layer
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        ti = tarfile.TarInfo("big.bin")
        ti.size = len(big)
        tf.addfile(ti, io.BytesIO(big))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    arch = io.BytesIO()
    with tarfile.open(fileobj=arch, mode="w") as tf:
        for name, data in (("layer/layer.tar", layer_bytes), ("cfg.json", cfg),
                           ("manifest.json", json.dumps([{"Config": "cfg.json", "RepoTags": ["cut:1"],
                                                         "Layers": ["layer/layer.tar"]}]).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    data = arch.getvalue()
    snaps = d.data_root / "snapshots"
    before = sorted(p.name for p in snaps.iterdir())
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(d.sock))
    s.sendall(b"POST /v1.41/images/load HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
              + f"Content-Length: {len(data)}\r\n\r\n".encode())
    s.sendall(data[: len(data) // 2])
    time.sleep(1.0)
    d.kill9()
    s.close()
    # a large member is spooled to the ingest area, then unpacked by a worker (small ones are
    # unpacked as they stream by): either is left half-written by the kill
    ingest = d.data_root / "content" / "ingest"
    partial = [p for p in snaps.iterdir() if (p / "tarsplit.tmp").exists()] + list(ingest.iterdir())
    assert partial, "the cut load should have left a half-written spool or layer behind"
    d.start()
    assert sorted(p.name for p in snaps.iterdir()) == before
    assert not list(ingest.iterdir())
    c = _client(d)
    assert not [i for i in c.images.list(all=True) if "cut:1" in i.tags]
    blobs = list((d.data_root / "content" / "blobs" / "sha256").iterdir())
    assert diff_id.split(":")[1] not in [b.name for b in blobs]
    c.images.load(data)
    assert c.images.get("cut:1").attrs["RootFS"]["Layers"] == [diff_id]
    c.images.remove("cut:1")
    c.close()


def test_runtime_leftovers_of_unknown_containers_are_removed(fresh_daemon, tmp_path):
    """A container the runtime knows but the engine does not (e.g. a crash between the two):
    its process, state and cgroups are removed at start-up."""
    import json
    import subprocess
    import tarfile

    from dockyard.containers import spec as specgen

    from ..helpers import BIN, make_busybox_tar, wait_gone
    d = fresh_daemon(image=False)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with tarfile.open(make_busybox_tar(tmp_path / "bb.tar")) as tf:
        tf.extractall(rootfs, numeric_owner=True)
    b = tmp_path / "bundle"
    b.mkdir()
    cfg = specgen.build(specgen.SpecInput(cid="orphan1", rootfs=str(rootfs), args=["sleep", "300"], env=[], cwd="/",
                                          uid=0, gid=0, additional_gids=[], hostname="o", domainname="",
                                          files={}, host_config={"NetworkMode": "none"}))
    (b / "config.json").write_text(json.dumps(cfg))
    root = d.exec_root / "runtime" / "dockyard"
    rt = [str(BIN / "dockyard-runtime"), "--root", str(root)]
    subprocess.run(rt + ["create", "--bundle", str(b), "orphan1"], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(rt + ["start", "orphan1"], check=True)
    pid = json.loads((root / "orphan1" / "state.json").read_text())["pid"]
    os.kill(pid, 0)
    d.stop()
    d.start()
    assert not (root / "orphan1").exists()
    assert wait_gone(pid, 5.0), "orphan process still alive"
    assert not os.path.exists("/sys/fs/cgroup/memory/dockyard/orphan1")


def _freezer_state(pid: int) -> str:
    rel = next(line.split(":", 2)[2].strip() for line in open(f"/proc/{pid}/cgroup") if ":freezer:" in line)
    return f"/sys/fs/cgroup/freezer{rel}/freezer.state"


@pytest.mark.parametrize("runtime", ["dockyard", "runc"])
def test_frozen_behind_the_daemons_back_is_paused_after_a_crash(fresh_daemon, runtime):
    """Issue 8's hole: kill -9 of the daemon in the middle of `pause` left the container frozen
    in the kernel while the record said running (unpause 409, kill 500, rm -f hanging). The
    record now follows the freezer at start-up, and kill/stop/rm -f thaw whatever is frozen."""
    if not os.path.exists("/sys/fs/cgroup/freezer"):
        pytest.skip("no v1 freezer on this host")
    d = fresh_daemon()
    c = _client(d)
    ctr = c.containers.run("busybox", ["sh", "-c", "while :; do sleep 0.1; done"], detach=True, runtime=runtime)
    pid = c.api.inspect_container(ctr.id)["State"]["Pid"]
    state = _freezer_state(pid)
    with open(state, "w") as f:   # as if the daemon died between the freezer and its record
        f.write("FROZEN")
    c.close()
    d.kill9()
    d.start()
    c = _client(d)
    s = c.api.inspect_container(ctr.id)["State"]
    assert s["Status"] == "paused" and s["Paused"] and s["Running"]
    c.api.unpause(ctr.id)
    assert open(state).read().strip() == "THAWED"
    assert c.api.inspect_container(ctr.id)["State"]["Status"] == "running"
    # frozen again behind the daemon's back while it runs: rm -f still finishes, promptly
    with open(state, "w") as f:
        f.write("FROZEN")
    t = time.monotonic()
    c.api.remove_container(ctr.id, force=True)
    assert time.monotonic() - t < 10
    assert not os.path.exists(f"/proc/{pid}")
    c.close()


def test_a_monitor_that_does_not_answer_is_an_error_not_a_hang(fresh_daemon):
    """Every request to the monitor is bounded (here: the monitor stopped with SIGSTOP)."""
    import signal
    os.environ["DOCKYARD_MONITOR_TIMEOUT"] = "5"
    try:
        d = fresh_daemon()
    finally:
        del os.environ["DOCKYARD_MONITOR_TIMEOUT"]
    c = docker.DockerClient(base_url=d.host, version="auto", timeout=120)
    ctr = c.containers.create("busybox", ["true"])
    mon = d.monitor_pid()
    os.kill(mon, signal.SIGSTOP)
    try:
        t = time.monotonic()
        with pytest.raises(docker.errors.APIError) as e:
            ctr.start()
        assert time.monotonic() - t < 30 and "did not answer" in str(e.value)
        assert c.ping()   # the daemon kept serving meanwhile
    finally:
        os.kill(mon, signal.SIGCONT)
    ctr.remove(force=True)
    c.close()


def test_kill9_of_the_monitor(fresh_daemon):
    """Issue 8: the monitor is not a single point of failure. After kill -9 of dockyard-monitor
    the daemon starts a new one, which adopts the containers still running: they keep running
    (same process), a writer keeps writing (its pipe has a spare reader in the daemon, so no
    SIGPIPE) and its output goes on into its log (nothing lost but, at worst, the one chunk the
    killed monitor had read and not yet written), it can be stopped and
    removed, and exits are recorded. What is lost, pinned here: the exit code of a container
    that was running when its monitor died (recorded as 255, with the reason)."""
    import signal
    d = fresh_daemon()
    c = _client(d)
    quiet = c.containers.run("busybox", ["sleep", "1000"], detach=True, name="quiet")
    talker = c.containers.run("busybox", ["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.02; done"],
                              detach=True, name="talker")
    short = c.containers.run("busybox", ["sh", "-c", "sleep 2; echo bye; exit 3"], detach=True, name="short")
    qpid = c.api.inspect_container(quiet.id)["State"]["Pid"]
    tpid = c.api.inspect_container(talker.id)["State"]["Pid"]
    old = d.monitor_pid()
    time.sleep(0.5)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and d.monitor_pid() in (None, old):
        time.sleep(0.1)
    assert d.monitor_pid() not in (None, old), "no new monitor"
    # a new container works with the new monitor
    assert c.containers.run("busybox", ["echo", "after"], remove=True) == b"after\n"
    # both were adopted: still running, same processes
    for x, pid in ((quiet, qpid), (talker, tpid)):
        s = c.api.inspect_container(x.id)["State"]
        assert s["Running"] and s["Pid"] == pid, s
    # the short one's exit, after the loss, is seen by the new monitor; its output is in its log
    assert c.api.wait(short.id, timeout=20)["StatusCode"] == 255
    assert "monitor was lost" in c.api.inspect_container(short.id)["State"]["Error"]
    assert short.logs() == b"bye\n"
    # the talker's output goes on, every line of it, across the loss
    time.sleep(1)
    talker.stop(timeout=1)
    assert _gone(tpid)
    ticks = [int(line.split()[1]) for line in talker.logs().decode().splitlines()]
    # at most the one chunk the killed monitor had read and not yet written (microseconds' worth)
    assert ticks == sorted(set(ticks)) and ticks[-1] - len(ticks) <= 1 and len(ticks) > 50, ticks[-5:]
    quiet.stop(timeout=1)
    assert _gone(qpid)
    for x in (quiet, talker, short):
        x.remove(force=True)
    c.close()


def _gone(pid: int) -> bool:
    """Dead: no process, or a zombie its new parent (init, after the monitor's loss) has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_sigusr1_dumps_every_stack_while_work_runs(fresh_daemon):
    """SIGUSR1 (as dockerd's) writes every thread's and task's stack to the log and the daemon
    carries on — repeated while containers start and stop in worker threads (faulthandler's dump
    from the signal handler crashed the interpreter here once)."""
    import signal
    import threading
    d = fresh_daemon()
    c = _client(d)
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            c.containers.run("busybox", ["true"], remove=True)
    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(20):
            d.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.1)
    finally:
        stop.set()
        t.join(60)
    assert d.proc.poll() is None and d.ping()
    log = d.log.read_text()
    assert log.count("thread MainThread:") == 20 and "in serve" in log
