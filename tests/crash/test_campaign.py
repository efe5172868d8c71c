"""Issue 8's crash campaign: kill -9 of the daemon at random points during random mixes of
operations, then a restart and invariants: the daemon answers, a container nobody touched kept
running, every container's record matches the kernel (process, freezer, rootfs mount), every
image still runs, and at the end `rm -f` of everything is bounded and leaves nothing behind.

CI runs a short campaign with a fixed seed; DOCKYARD_CRASH_TRIALS=300 (and DOCKYARD_CRASH_SEED)
run a long one; the seed is printed."""

from __future__ import annotations

import os
import random
import threading
import time

import docker
import pytest

from ..helpers import mounts_under

pytestmark = pytest.mark.root

TRIALS = int(os.environ.get("DOCKYARD_CRASH_TRIALS") or 30)
SEED = int(os.environ.get("DOCKYARD_CRASH_SEED") or 20261130)


def _client(d) -> docker.DockerClient:
    return docker.DockerClient(base_url=d.host, version="1.41", timeout=60)


def _op(c: docker.DockerClient, rng: random.Random, n: int) -> None:
    """One random operation; errors are expected (the daemon may die under it)."""
    names = [x.name for x in c.containers.list(all=True) if x.name != "sentinel"]
    pick = rng.choice(names) if names else None
    kind = rng.choice(["run", "run", "create", "start", "stop", "kill", "pause", "unpause", "rm", "rename",
                       "commit", "exec", "tag"])
    if kind == "run" or pick is None:
        c.containers.run("busybox", ["sh", "-c", f"echo {n}; sleep {rng.choice([0, 1, 30])}"], detach=True,
                         name=f"t{n}")
    elif kind == "create":
        c.containers.create("busybox", ["sleep", "30"], name=f"t{n}")
    elif kind == "start":
        c.api.start(pick)
    elif kind == "stop":
        c.api.stop(pick, timeout=1)
    elif kind == "kill":
        c.api.kill(pick)
    elif kind == "pause":
        c.api.pause(pick)
    elif kind == "unpause":
        c.api.unpause(pick)
    elif kind == "rm":
        c.api.remove_container(pick, force=True)
    elif kind == "rename":
        c.api.rename(pick, f"r{n}")
    elif kind == "commit":
        c.api.commit(pick, repository=f"crash{n}", tag="1")
    elif kind == "exec":
        e = c.api.exec_create(pick, ["true"])
        c.api.exec_start(e["Id"])
    elif kind == "tag":
        c.api.tag("busybox", f"crashtag{n}", "1")


def _freezer(pid: int) -> str | None:
    try:
        for line in open(f"/proc/{pid}/cgroup"):
            if ":freezer:" in line:
                return open(f"/sys/fs/cgroup/freezer{line.split(':', 2)[2].strip()}/freezer.state").read().strip()
    except OSError:
        return None
    return None


def _check_kernel_matches(c: docker.DockerClient, d) -> None:
    for ctr in c.api.containers(all=True):
        a = c.api.inspect_container(ctr["Id"])
        st, pid = a["State"], a["State"]["Pid"]
        rootfs_mounted = str(d.data_root / "containers" / a["Id"] / "rootfs") in mounts_under(d.data_root)
        if st["Status"] in ("running", "paused"):
            assert pid and os.path.exists(f"/proc/{pid}"), f"{a['Name']} {st['Status']} but its process is gone"
            fz = _freezer(pid)
            if fz is not None:
                assert (fz == "FROZEN") == (st["Status"] == "paused"), f"{a['Name']}: {st['Status']} vs freezer {fz}"
            assert rootfs_mounted, f"{a['Name']} runs without its rootfs mounted"
        elif st["Status"] in ("exited", "created"):
            assert not rootfs_mounted, f"{a['Name']} {st['Status']} with its rootfs still mounted"


def test_kill9_campaign(fresh_daemon, capsys):
    rng = random.Random(SEED)
    print(f"crash campaign: {TRIALS} trials, seed {SEED}")
    d = fresh_daemon()
    c = _client(d)
    sentinel = c.containers.run("busybox", ["sleep", "100000"], detach=True, name="sentinel")
    spid = c.api.inspect_container(sentinel.id)["State"]["Pid"]
    c.close()
    n = 0
    for trial in range(TRIALS):
        c = _client(d)
        threads = []
        for _ in range(rng.randint(1, 4)):
            n += 1

            def work(k: int = n) -> None:
                try:
                    _op(c, random.Random(SEED * 1000 + k), k)
                except Exception:   # noqa: BLE001 - the daemon may be killed under it
                    pass
            t = threading.Thread(target=work, daemon=True)
            threads.append(t)
            t.start()
        time.sleep(rng.uniform(0, 0.25))
        d.kill9()
        for t in threads:
            t.join(30)
        c.close()
        d.start()
        c = _client(d)
        assert c.ping(), f"trial {trial}: the daemon does not answer"
        s = c.api.inspect_container("sentinel")["State"]
        assert s["Running"] and s["Pid"] == spid, f"trial {trial}: the sentinel was touched"
        _check_kernel_matches(c, d)
        c.close()
    c = _client(d)
    for img in c.images.list():   # every image still saves (its layers rebuild) and runs
        assert sum(len(b) for b in img.save()) > 0
        for tag in img.tags[:1]:
            assert c.containers.run(tag, ["true"], remove=True) == b""
    states: dict[str, int] = {}
    for ctr in c.api.containers(all=True):
        states[ctr["State"]] = states.get(ctr["State"], 0) + 1
    images = len(c.images.list())
    t = time.monotonic()
    for ctr in c.api.containers(all=True):
        c.api.remove_container(ctr["Id"], force=True)
    assert time.monotonic() - t < 10 + 2 * TRIALS, "rm -f of everything took too long"
    assert not c.api.containers(all=True)
    c.close()
    assert not [m for m in mounts_under(d.data_root)], "mounts left behind"
    runtime_state = [p for p in (d.exec_root / "runtime").rglob("*") if p.is_dir() and p.parent.name in ("dockyard", "runc")
                     and not p.name.startswith(".")]
    assert not runtime_state, f"runtime state left behind: {runtime_state}"
    with capsys.disabled():
        print(f"\ncrash campaign: {TRIALS} trials, seed {SEED}: passed; {n} operations; at the end "
              f"containers by state {states}, {images} images, rm -f of all in {time.monotonic() - t:.1f}s")
