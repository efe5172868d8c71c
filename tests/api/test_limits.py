"""Resource limits (issue 7): each one observed in the kernel or inside the container, through
docker-py, for Dockyard's runtime and for runc."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import docker
import pytest

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard", pytest.param("runc", marks=pytest.mark.skipif(not shutil.which("runc"), reason="no runc"))]
MB = 1024 * 1024


def sh(client, script: str, runtime: str = "dockyard", **kw) -> str:
    return client.containers.run("busybox", ["sh", "-c", script], remove=True, runtime=runtime, **kw).decode()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_memory_hog_is_oom_killed_at_the_limit(client, runtime):
    since = int(time.time()) - 1
    c = client.containers.run("busybox", ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                                          "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes; "
                                          "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"],
                              mem_limit="16m", memswap_limit="16m", runtime=runtime, detach=True)
    assert c.wait(timeout=60)["StatusCode"] == 137
    out = c.logs().decode().split()
    assert out[:2] == [str(16 * MB), str(16 * MB)] and "survived" not in out
    a = client.api.inspect_container(c.id)
    assert a["State"]["OOMKilled"] is True and a["State"]["ExitCode"] == 137
    assert a["HostConfig"]["Memory"] == 16 * MB and a["HostConfig"]["MemorySwap"] == 16 * MB
    evs = list(client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                 filters={"container": c.id, "event": ["oom", "die"]}))
    assert [e["Action"] for e in evs] == ["oom", "die"]
    c.remove()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_memory_swap_defaults_to_twice_memory_and_other_memory_knobs(client, runtime):
    out = sh(client, "cd /sys/fs/cgroup/memory; cat memory.limit_in_bytes memory.memsw.limit_in_bytes "
                     "memory.soft_limit_in_bytes memory.swappiness; grep oom_kill_disable memory.oom_control",
             runtime, mem_limit="64m", mem_reservation="32m", mem_swappiness=7, oom_kill_disable=True)
    assert out.split() == [str(64 * MB), str(128 * MB), str(32 * MB), "7", "oom_kill_disable", "1"]
    c = client.containers.create("busybox", ["true"], mem_limit="64m")
    assert client.api.inspect_container(c.id)["HostConfig"]["MemorySwap"] == 128 * MB
    c.remove()


def test_oom_kill_disable_without_memory_warns(client):
    r = client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(oom_kill_disable=True))
    assert any("OOM killer is disabled" in w for w in r["Warnings"])
    client.api.remove_container(r["Id"])


def _cpu_share(client, runtime: str, seconds: float = 1.5, **kw) -> float:
    """CPU time / wall time of a busy loop, from the container's own cpuacct counter."""
    script = ("read a < /sys/fs/cgroup/cpuacct/cpuacct.usage; read s x < /proc/uptime; "
              f"timeout {seconds} sh -c 'while :; do :; done'; "
              "read b < /sys/fs/cgroup/cpuacct/cpuacct.usage; read e x < /proc/uptime; echo $((b-a)) $s $e")
    used, s, e = sh(client, script, runtime, **kw).split()
    return int(used) / ((float(e) - float(s)) * 1e9)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_cpu_quota_holds_a_busy_loop(client, runtime):
    share = _cpu_share(client, runtime, nano_cpus=300_000_000)
    assert 0.1 < share < 0.45, share
    out = sh(client, "cat /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.cfs_quota_us", runtime,
             cpu_period=50000, cpu_quota=10000)
    assert out.split() == ["50000", "10000"]
    share = _cpu_share(client, runtime, cpu_period=50000, cpu_quota=10000)
    assert share < 0.3, share


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_cpu_shares_split_one_cpu_and_cpuset_pins(client, runtime):
    """Two loops pinned to CPU 0: the one with 8x the shares gets most of it."""
    loop = ["sh", "-c", "grep Cpus_allowed_list /proc/self/status; cat /sys/fs/cgroup/cpu/cpu.shares; "
                        "while :; do :; done"]
    big = client.containers.run("busybox", loop, cpuset_cpus="0", cpu_shares=2048, detach=True, runtime=runtime)
    small = client.containers.run("busybox", loop, cpuset_cpus="0", cpu_shares=256, detach=True, runtime=runtime)
    try:
        time.sleep(2.0)
        usage = {}
        for c in (big, small):
            c.reload()
            pid = c.attrs["State"]["Pid"]
            rel = next(line.split(":", 2)[2].strip() for line in open(f"/proc/{pid}/cgroup") if ":cpuacct" in line)
            usage[c.id] = int(open(f"/sys/fs/cgroup/cpuacct{rel}/cpuacct.usage").read())
        assert usage[big.id] > 2.5 * usage[small.id], usage
        assert big.logs().decode().split() == ["Cpus_allowed_list:", "0", "2048"]
    finally:
        big.remove(force=True)
        small.remove(force=True)
    out = sh(client, "grep -E 'Cpus_allowed_list|Mems_allowed_list' /proc/self/status", runtime, cpuset_cpus="1",
             cpuset_mems="0")
    assert out.split() == ["Cpus_allowed_list:", "1", "Mems_allowed_list:", "0"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fork_bomb_stops_at_the_pids_limit(client, runtime):
    # builtins only once the bomb has gone off: a fork would fail
    out = sh(client, "(for i in $(seq 40); do sleep 2 & done) 2>/dev/null; "
                     "read cur < /sys/fs/cgroup/pids/pids.current; read mx < /sys/fs/cgroup/pids/pids.max; "
                     "echo $cur $mx; wait; exit 0", runtime, pids_limit=12)
    cur, mx = out.split()[-2:]
    assert mx == "12" and 8 <= int(cur) <= 12, out


def test_pids_limit_zero_and_minus_one_mean_unlimited(client):
    c = client.containers.create("busybox", ["true"], pids_limit=-1)
    assert client.api.inspect_container(c.id)["HostConfig"]["PidsLimit"] is None
    c.remove()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ulimits_and_shm_size_seen_inside(client, runtime):
    out = sh(client, "ulimit -n; ulimit -Hn; ulimit -u; df -k /dev/shm | tail -1", runtime,
             ulimits=[docker.types.Ulimit(name="nofile", soft=123, hard=456),
                      docker.types.Ulimit(name="nproc", soft=77, hard=77)], shm_size="8m")
    w = out.split()
    assert w[:3] == ["123", "456", "77"] and w[4] == "8192"


def test_a_low_nofile_limit_is_set_after_the_runtimes_own_opens(client):
    """The init sets rlimits last (after closing what it inherited), so nofile=10 works (runc
    1.1.5 itself fails there: it opens a pipe after setting them)."""
    out = sh(client, "ulimit -n; ls /proc/$$/fd; true", ulimits=[docker.types.Ulimit(name="nofile", soft=10, hard=10)])
    assert out.split() == ["10", "0", "1", "2"]


def test_ulimit_above_the_daemons_hard_limit_is_refused(client):
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on this host")
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], ulimits=[docker.types.Ulimit(name="nofile", soft=10, hard=hard + 1)])
    assert e.value.status_code == 400 and "ulimit nofile" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], ulimits=[docker.types.Ulimit(name="nofile", soft=10, hard=5)])
    assert "soft limit must be less than or equal to hard limit" in str(e.value)


def test_daemon_default_ulimits(fresh_daemon):
    d = fresh_daemon(config={"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 321, "Hard": 654}}})
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        assert c.containers.run("busybox", ["sh", "-c", "ulimit -n; ulimit -Hn"], remove=True).split() == [b"321", b"654"]
        out = c.containers.run("busybox", ["sh", "-c", "ulimit -n"], remove=True,
                               ulimits=[docker.types.Ulimit(name="nofile", soft=99, hard=99)])
        assert out.strip() == b"99"   # the container's own wins
    finally:
        c.close()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_cgroup_parent_and_cgroupns(client, runtime):
    c = client.containers.run("busybox", ["sh", "-c", "cat /proc/self/cgroup; sleep 30"], cgroup_parent="dytest-parent",
                              detach=True, runtime=runtime, cgroupns="private")
    try:
        time.sleep(0.3)
        assert os.path.isdir(f"/sys/fs/cgroup/memory/dytest-parent/{c.id}")
        assert all(line.endswith(":/") for line in c.logs().decode().split())   # private cgroup namespace
    finally:
        c.remove(force=True)
    assert not os.path.exists("/sys/fs/cgroup/memory/dytest-parent")
    # dockerd's default: the host's cgroup namespace on a cgroup v1 (or hybrid) host, private on v2
    from dockyard.runtime.cgroups import is_unified
    for asked in ("host", None):
        c = client.api.create_container("busybox", ["cat", "/proc/self/cgroup"],
                                        host_config=client.api.create_host_config(cgroupns=asked, runtime=runtime))
        mode = client.api.inspect_container(c["Id"])["HostConfig"]["CgroupnsMode"]
        assert mode == (asked or ("private" if is_unified() else "host"))
        client.api.start(c["Id"])
        client.api.wait(c["Id"])
        assert (f"/dockyard/{c['Id']}" in client.api.logs(c["Id"]).decode()) == (mode == "host")
        client.api.remove_container(c["Id"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_oom_score_adj(client, runtime):
    assert sh(client, "cat /proc/self/oom_score_adj", runtime, oom_score_adj=500).strip() == "500"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_realtime_cpu_budget(client, runtime):
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no RT group scheduling in this kernel")
    out = sh(client, "cat /sys/fs/cgroup/cpu/cpu.rt_period_us /sys/fs/cgroup/cpu/cpu.rt_runtime_us", runtime,
             cpu_rt_period=100000, cpu_rt_runtime=5000)
    assert out.split() == ["100000", "5000"]
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], cpu_rt_period=1000, cpu_rt_runtime=5000)
    assert "cpu-rt-runtime cannot be higher than cpu-rt-period" in str(e.value)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_update_changes_a_running_containers_limits(client, runtime):
    c = client.containers.run("busybox", ["sleep", "60"], runtime=runtime, mem_limit="32m", detach=True)
    try:
        c.update(mem_limit="96m", memswap_limit="192m", cpuset_cpus="0",
                 restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
        _update(client, c.id, {"NanoCpus": 500_000_000, "PidsLimit": 33})   # docker-py's update lacks these
        r = c.exec_run(["sh", "-c", "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes "
                        "cpu/cpu.cfs_quota_us pids/pids.max cpuset/cpuset.cpus"])
        assert r.output.decode().split() == [str(96 * MB), str(192 * MB), "50000", "33", "0"]
        hc = client.api.inspect_container(c.id)["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"], hc["CpusetCpus"]) == \
            (96 * MB, 192 * MB, 500_000_000, 33, "0")
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        with pytest.raises(docker.errors.APIError) as e:
            c.update(mem_limit="300m")   # above the memory+swap already set
        assert "memoryswap" in str(e.value)
        with pytest.raises(docker.errors.APIError) as e:
            c.update(mem_limit="1m")
        assert "Minimum memory limit allowed is 6MB" in str(e.value)
    finally:
        c.remove(force=True)


def _update(client, cid: str, body: dict) -> None:
    r = client.api._post_json(client.api._url("/containers/{0}/update", cid), data=body)
    client.api._raise_for_status(r)


def test_update_of_a_stopped_container_applies_at_start(client):
    c = client.containers.create("busybox", ["cat", "/sys/fs/cgroup/pids/pids.max"])
    _update(client, c.id, {"PidsLimit": 44})
    c.start()
    c.wait()
    assert c.logs().strip() == b"44"
    c.remove()


def _loop_device(tmp_path):
    img = tmp_path / "blk.img"
    with open(img, "wb") as f:
        f.truncate(16 * MB)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True)
    if dev.returncode != 0:
        pytest.skip(f"no loop device: {dev.stderr.strip()}")
    return dev.stdout.strip()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_blkio_throttling_with_direct_io_on_a_loop_device(client, tmp_path, runtime):
    dev = _loop_device(tmp_path)
    try:
        script = ("read s x < /proc/uptime; dd if=/dev/zero of=/dev/xvdb bs=64k count=32 oflag=direct 2>/dev/null; "
                  "read m x < /proc/uptime; dd if=/dev/xvdb of=/dev/null bs=4k count=20 iflag=direct 2>/dev/null; "
                  "read e x < /proc/uptime; echo $s $m $e; cat /sys/fs/cgroup/blkio/blkio.throttle.write_bps_device")
        out = sh(client, script, runtime, devices=[f"{dev}:/dev/xvdb:rwm"],
                 device_write_bps=[{"Path": dev, "Rate": 1 * MB}], device_read_iops=[{"Path": dev, "Rate": 10}])
        w = out.split()
        write_s, read_s = float(w[1]) - float(w[0]), float(w[2]) - float(w[1])
        # 2 MiB at 1 MiB/s, 20 reads at 10/s: each takes over a second (unthrottled: milliseconds)
        assert write_s > 1.2 and read_s > 1.0, (write_s, read_s)
        st = os.stat(dev)
        assert w[3:] == [f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", str(MB)]
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def test_blkio_read_bps_and_write_iops(client, tmp_path):
    dev = _loop_device(tmp_path)
    try:
        script = ("read s x < /proc/uptime; dd if=/dev/xvdb of=/dev/null bs=64k count=32 iflag=direct 2>/dev/null; "
                  "read m x < /proc/uptime; dd if=/dev/zero of=/dev/xvdb bs=4k count=20 oflag=direct 2>/dev/null; "
                  "read e x < /proc/uptime; echo $s $m $e")
        out = sh(client, script, devices=[f"{dev}:/dev/xvdb:rwm"],
                 device_read_bps=[{"Path": dev, "Rate": 1 * MB}], device_write_iops=[{"Path": dev, "Rate": 10}])
        s, m, e = (float(x) for x in out.split())
        assert m - s > 1.2 and e - m > 1.0, (m - s, e - m)
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def test_blkio_weight_is_refused_where_the_kernel_lacks_it(client):
    from dockyard.containers.resources import host
    if host().blkio_weight:
        out = sh(client, "cat /sys/fs/cgroup/blkio/blkio.weight 2>/dev/null || cat /sys/fs/cgroup/blkio/blkio.bfq.weight",
                 blkio_weight=300)
        assert "300" in out
        return
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], blkio_weight=300)
    assert e.value.status_code == 400 and "Block I/O weight" in str(e.value)


def test_cgroup_v2_limits(tmp_path):
    """On a cgroup v2 host the same limits go to memory.max, cpu.max, pids.max, io.max. This host
    is hybrid: its v2 hierarchy has no memory/cpu/pids controllers (they are bound to v1), so a
    private cgroup2 mount cannot hold them either."""
    from dockyard.runtime import cgroups
    if cgroups.is_unified():
        pytest.skip("covered by every other test here on a v2 host")
    ctrls = open("/sys/fs/cgroup/unified/cgroup.controllers").read().split() if os.path.exists(
        "/sys/fs/cgroup/unified/cgroup.controllers") else []
    if not {"memory", "cpu", "pids"} <= set(ctrls):
        pytest.skip(f"this host's cgroup v2 hierarchy offers only {ctrls or 'no'} controllers; memory, cpu and "
                    "pids are bound to v1, so v2 limits cannot be exercised here (the v2 writer is unit-tested)")
