"""Limits and security flags through Debian's docker CLI and through dockyard's own CLI: the
same command line gives the same effect, `update` changes a running container, and what is
refused is refused with the daemon's message and exit code 125."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root

FLAGS = ["-m", "64m", "--memory-swap", "96m", "--cpus", "0.5", "--pids-limit", "30", "--cap-drop", "ALL",
         "--cap-add", "NET_ADMIN", "--ulimit", "nofile=64:128", "--shm-size", "4m", "--sysctl", "kernel.shmmax=999",
         "--security-opt", "no-new-privileges", "--cpuset-cpus", "0", "--oom-score-adj", "300",
         "--memory-reservation", "32m", "--group-add", "wheel", "-w", "/made/here"]
SCRIPT = ("pwd; cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes "
          "memory/memory.soft_limit_in_bytes cpu/cpu.cfs_quota_us pids/pids.max cpuset/cpuset.cpus "
          "/proc/sys/kernel/shmmax /proc/self/oom_score_adj; ulimit -n; ulimit -Hn; id -G; "
          "grep -E 'CapEff|NoNewPrivs' /proc/self/status; df -k /dev/shm | tail -1 | awk '{print $2}'")
WANT = ["/made/here", str(64 << 20), str(96 << 20), str(32 << 20), "50000", "30", "0", "999", "300", "64", "128", "0 10",
        "CapEff:\t0000000000001000", "NoNewPrivs:\t1", "4096"]


@pytest.mark.parametrize("which", ["docker", "dockyard"])
def test_run_flags_take_effect(which, docker_cli, dy_cli):
    cli = docker_cli if which == "docker" else dy_cli
    out = cli("run", "--rm", *FLAGS, "busybox", "sh", "-c", SCRIPT).stdout
    assert out.splitlines() == WANT


@pytest.mark.parametrize("which", ["docker", "dockyard"])
def test_update_and_refusals(which, docker_cli, dy_cli):
    cli = docker_cli if which == "docker" else dy_cli
    name = f"upd-{which}"
    cli("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "60")
    try:
        assert cli("update", "-m", "64m", "--memory-swap", "128m", "--cpus", "1.5", "--pids-limit", "9",
                   "--restart", "on-failure:3", name).stdout.strip() == name
        out = cli("exec", name, "sh", "-c", "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes "
                  "cpu/cpu.cfs_quota_us pids/pids.max").stdout.split()
        assert out == [str(64 << 20), "150000", "9"]
        assert cli("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NanoCpus}}",
                   name).stdout.split() == ["on-failure", "1500000000"]
    finally:
        cli("rm", "-f", name)
    for flags, msg in ((["-m", "1m"], "Minimum memory limit allowed is 6MB"),
                       (["--security-opt", "bogus=1"], "invalid --security-opt 2"),
                       (["-p", "8080:80"], "HostConfig.PortBindings"),
                       (["--platform", "linux/arm64"], "does not match the specified platform"),
                       (["--cap-add", "BOGUS"], 'unknown capability: "CAP_BOGUS"')):
        r = cli("run", "--rm", *flags, "busybox", "true", check=False)
        assert r.returncode == 125 and msg in r.stderr, (flags, r.stderr)
