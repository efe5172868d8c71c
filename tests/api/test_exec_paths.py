"""The two ways an exec starts with Dockyard's own runtime give the same process: the C helper
(`dockyard-nsexec`, the default when scripts/install.sh built it) and the Python runtime's
`exec` forked from the monitor (the fallback: `DOCKYARD_NSEXEC=off`). Same probes in both,
outputs compared field by field; and the helper run by hand from a plan, as the monitor does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest

from dockyard.runtime import execplan

pytestmark = pytest.mark.root

# (exec_run keyword arguments, command): what each probe prints must match on both paths
PROBES = [
    ({}, "id; pwd; echo $PATH; echo $BASE"),
    ({"user": "nobody", "workdir": "/tmp", "environment": {"X": "y z"}}, "id; pwd; echo $X; echo $HOME"),
    ({"user": "1234:5678"}, "id"),
    ({}, "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"),
    ({"user": "nobody"}, "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"),
    ({"privileged": True}, "grep -E '^Cap(Eff|Bnd)' /proc/self/status"),
    ({}, "ulimit -n; ulimit -Hn; ulimit -u"),
    ({}, "diff /proc/1/cgroup /proc/self/cgroup && echo same-cgroups"),
    ({}, "for n in ipc uts net pid mnt cgroup; do [ $(readlink /proc/1/ns/$n) = $(readlink /proc/self/ns/$n) ]"
         " && echo $n; done; hostname"),
    ({}, "ls /proc/self/fd | wc -l; echo out; echo err >&2; exit 7"),
    ({"tty": True}, "tty; stty size 2>/dev/null; echo $TERM"),
]
FAILURES = [(["nosuchcmd"], {}), (["./rel"], {}), (["/etc"], {}), (["/etc/passwd"], {}),
            (["true"], {"workdir": "/nonexistent"})]


def _probe(d) -> list:
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        ctr = c.containers.run("busybox", ["sleep", "1000"], detach=True, environment={"BASE": "b"},
                               cap_drop=["NET_RAW"], cap_add=["SYS_PTRACE"], group_add=["wheel"],
                               ulimits=[docker.types.Ulimit(name="nofile", soft=1000, hard=2000),
                                        docker.types.Ulimit(name="nproc", soft=300, hard=400)],
                               security_opt=["no-new-privileges"], hostname="h1")
        try:
            out = [ctr.exec_run(["sh", "-c", cmd], demux=not kw.get("tty"), **kw) for kw, cmd in PROBES]
            out += [ctr.exec_run(cmd, **kw) for cmd, kw in FAILURES]
            # the process is in the container: killed with it, counted by its pids controller
            ex = c.api.exec_create(ctr.id, ["sleep", "999"])
            c.api.exec_start(ex["Id"], detach=True)
            procs = sorted(p[-1] for p in ctr.top()["Processes"])
            ctr.kill()
            out += [procs, ctr.wait()["StatusCode"], c.api.exec_inspect(ex["Id"])["Running"]]
            return [o.replace(ctr.id.encode(), b"ID") if isinstance(o, bytes) else o for o in out]
        finally:
            ctr.remove(force=True)
    finally:
        c.close()


def test_helper_and_fallback_give_the_same_process(fresh_daemon):
    assert execplan.enabled(), "scripts/install.sh builds dockyard-nsexec: the fast path must be on here"
    fast = _probe(fresh_daemon())
    slow = _probe(fresh_daemon(env={"DOCKYARD_NSEXEC": "off"}))
    assert fast == slow
    by = {cmd: r for (_, cmd), r in zip(PROBES, fast, strict=False)}
    assert by["id; pwd; echo $PATH; echo $BASE"] == (
        0, (b"uid=0(root) gid=0(root) groups=10(wheel)\n/\n"
            b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nb\n", None))
    assert by["id"].output[0] == b"uid=1234 gid=5678 groups=10(wheel)\n"
    status = dict(line.split(":\t") for line in fast[3].output[0].decode().splitlines())
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    eff = int(status["CapEff"], 16)
    assert eff & (1 << 19) and not eff & (1 << 13)   # SYS_PTRACE added, NET_RAW dropped
    assert fast[4].output[0].count(b"0000000000000000") == 4   # nobody: no capabilities but the bounding set
    assert fast[6].output[0] == b"1000\n2000\n300\n"
    assert fast[7].output[0] == b"same-cgroups\n"
    assert fast[8].output[0] == b"ipc\nuts\nnet\npid\nmnt\ncgroup\nh1\n"
    assert fast[9].exit_code == 7 and fast[9].output == (b"4\nout\n", b"err\n")   # stdio and ls's own: nothing leaked
    assert fast[10].output.startswith(b"/dev/pts/") and fast[10].output.endswith(b"xterm\r\n")
    fails = fast[len(PROBES):len(PROBES) + len(FAILURES)]
    assert all(r.exit_code == 126 for r in fails)
    assert b'exec: "nosuchcmd": executable file not found in $PATH' in fails[0].output
    assert b'exec: "./rel": stat ./rel: no such file or directory' in fails[1].output
    assert b'exec: "/etc": permission denied' in fails[2].output
    assert b'exec: "/etc/passwd": permission denied' in fails[3].output
    assert b'chdir to cwd ("/nonexistent") set in config.json failed' in fails[4].output
    assert "sleep 999" in fast[-3] and fast[-2] == 137 and fast[-1] is False


def test_helper_run_by_hand_from_a_plan(daemon, client, tmp_path: Path):
    """What the monitor does, done by a test: build the plan, run the helper with a status pipe."""
    ctr = client.containers.run("busybox", ["sleep", "1000"], detach=True)
    try:
        root = Path(daemon.exec_root) / "runtime" / "dockyard"
        proc = {"args": ["sh", "-c", "echo $$; cat /proc/self/cgroup | grep -c /dockyard/" + ctr.id],
                "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
        plan = tmp_path / "plan"
        plan.write_bytes(execplan.build(root, ctr.id, proc, None))
        r, w = os.pipe()
        p = subprocess.run([str(execplan.HELPER), str(plan)], pass_fds=(w, 3), capture_output=True,
                           preexec_fn=lambda: os.dup2(w, 3))
        os.close(w)
        status = os.read(r, 4096).decode()
        os.close(r)
        assert p.returncode == 0 and status.startswith("pid "), (status, p.stderr)
        # its pid in the container's PID namespace is printed; every hierarchy is the container's
        lines = p.stdout.decode().split()
        assert int(lines[0]) > 1 and int(lines[1]) == len(open("/proc/self/cgroup").read().splitlines())
        # a plan for a container that is gone: refused before anything starts
        ctr.kill()
        ctr.wait()
        with pytest.raises(execplan.StateError):
            execplan.build(root, ctr.id, proc, None)
        # a broken plan: an error on the status pipe, nothing started
        plan.write_bytes(b"bogus=1\0")
        r, w = os.pipe()
        p = subprocess.run([str(execplan.HELPER), str(plan)], pass_fds=(w, 3), capture_output=True,
                           preexec_fn=lambda: os.dup2(w, 3))
        os.close(w)
        assert p.returncode == 1 and os.read(r, 4096) == b"error nsexec: unknown plan key bogus\n"
        os.close(r)
    finally:
        ctr.remove(force=True)
