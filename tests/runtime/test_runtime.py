"""dockyard-runtime against runc: generated bundles, compare what the container sees."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.containers import spec as specgen

from ..helpers import BIN

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard", "runc"]


def _argv(runtime: str, root: Path) -> list[str]:
    if runtime == "dockyard":
        return [str(BIN / "dockyard-runtime"), "--root", str(root)]
    if not shutil.which(runtime):
        pytest.skip(f"{runtime} not installed")
    return [shutil.which(runtime), "--root", str(root)]  # type: ignore[list-item]


@pytest.fixture(scope="module", autouse=True)
def _parent_cgroup():
    """Every bundle here puts its container under /dockyard-test; the runtime removes a container's
    own cgroups but leaves the parent (see cgroups.Manager.destroy), so the module removes it."""
    yield
    from dockyard.runtime import cgroups
    cgroups.remove_if_empty("/dockyard-test")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory, busybox_tar) -> Path:
    d = tmp_path_factory.mktemp("rootfs")
    with tarfile.open(busybox_tar) as tf:
        tf.extractall(d, numeric_owner=True)
    os.chmod(d, 0o755)
    return d


def bundle(tmp: Path, rootfs: Path, cid: str, args: list[str], **kw) -> Path:
    b = tmp / f"bundle-{cid}"
    b.mkdir()
    si = specgen.SpecInput(cid=cid, rootfs=str(rootfs), args=args, env=["PATH=/bin:/usr/bin"], cwd=kw.get("cwd", "/"),
                           uid=kw.get("uid", 0), gid=kw.get("gid", 0), additional_gids=[], hostname="box",
                           domainname="", files={}, cgroup_parent="dockyard-test",
                           host_config={"NetworkMode": "none", "ReadonlyRootfs": True})
    cfg = specgen.build(si)
    if "rlimits" in kw:
        cfg["process"]["rlimits"] = kw["rlimits"]
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def run(runtime: str, tmp: Path, rootfs: Path, args: list[str], **kw) -> subprocess.CompletedProcess[str]:
    cid = f"t{os.getpid()}{runtime}{int(time.time() * 1e6) % 10**8}"
    b = bundle(tmp, rootfs, cid, args, **kw)
    root = tmp / f"state-{runtime}"
    p = subprocess.run(_argv(runtime, root) + ["run", "--bundle", str(b), cid], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return p


PROBE = ("for n in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$n; done; echo PID=$$; hostname; "
         "grep -E '^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; "
         "awk '{print $5}' /proc/self/mountinfo | sort; ls /dev | sort | tr '\\n' ' '; echo; "
         "ulimit -n; id -u; touch /rootfile 2>&1 || echo readonly-root")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_isolation(runtime, tmp_path, rootfs):
    p = run(runtime, tmp_path, rootfs, ["sh", "-c", PROBE],
            rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}])
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    host_ns = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "uts", "ipc", "net", "cgroup")]
    assert all(a != b for a, b in zip(out[:6], host_ns, strict=True)), (out[:6], host_ns)
    assert "PID=1" in out and "box" in out
    status = {ln.split(":")[0]: ln.split(":")[1].strip() for ln in out if ln.startswith(("Cap", "NoNew", "Seccomp:"))}
    assert status["CapEff"] == "00000000a80425fb" and status["CapBnd"] == "00000000a80425fb"
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "0"
    for m in ("/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/proc/keys", "/proc/sys"):
        assert m in out, m
    assert "null" in p.stdout and "urandom" in p.stdout and "ptmx" in p.stdout
    assert "1024" in out and "readonly-root" in p.stdout


def test_same_view_as_runc(tmp_path, rootfs):
    if not shutil.which("runc"):
        pytest.skip("runc not installed")
    ours = run("dockyard", tmp_path, rootfs, ["sh", "-c", PROBE]).stdout.splitlines()[6:]
    theirs = run("runc", tmp_path, rootfs, ["sh", "-c", PROBE]).stdout.splitlines()[6:]
    assert ours == theirs


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_user_and_cwd(runtime, tmp_path, rootfs):
    p = run(runtime, tmp_path, rootfs, ["sh", "-c", "id -u; id -g; pwd; grep CapEff /proc/self/status"],
            uid=33, gid=33, cwd="/tmp")
    assert p.stdout.split()[:3] == ["33", "33", "/tmp"]
    assert p.stdout.split()[-1] == "0000000000000000"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seccomp_blocks_syscalls(runtime, tmp_path, rootfs):
    p = run(runtime, tmp_path, rootfs, ["sh", "-c", "unshare -U true 2>&1; echo rc=$?"])
    assert "rc=1" in p.stdout and "not permitted" in p.stdout


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_exit_codes(runtime, tmp_path, rootfs):
    assert run(runtime, tmp_path, rootfs, ["sh", "-c", "exit 42"]).returncode == 42
    p = run(runtime, tmp_path, rootfs, ["nosuchbinary"])
    assert p.returncode != 0


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_create_start_state_kill_delete_and_cgroups(runtime, tmp_path, rootfs):
    cid = f"life{runtime}{os.getpid()}"
    b = bundle(tmp_path, rootfs, cid, ["sleep", "30"])
    base = _argv(runtime, tmp_path / "state")
    subprocess.run(base + ["create", "--bundle", str(b), cid], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        st = json.loads(subprocess.run(base + ["state", cid], check=True, capture_output=True, text=True).stdout)
        assert st["status"] == "created" and st["pid"] > 0
        subprocess.run(base + ["start", cid], check=True, timeout=30)
        st = json.loads(subprocess.run(base + ["state", cid], check=True, capture_output=True, text=True).stdout)
        assert st["status"] == "running"
        procs = Path(f"/sys/fs/cgroup/memory/dockyard-test/{cid}/cgroup.procs")
        if not procs.exists():
            procs = Path(f"/sys/fs/cgroup/dockyard-test/{cid}/cgroup.procs")
        assert str(st["pid"]) in procs.read_text().split()
        subprocess.run(base + ["kill", cid, "KILL"], check=True, timeout=30)
        for _ in range(100):
            st = json.loads(subprocess.run(base + ["state", cid], capture_output=True, text=True).stdout)
            if st["status"] == "stopped":
                break
            time.sleep(0.05)
        assert st["status"] == "stopped"
    finally:
        subprocess.run(base + ["delete", "--force", cid], timeout=30)
    assert not procs.parent.exists()
    assert subprocess.run(base + ["state", cid], capture_output=True).returncode != 0


# the runtime with the init always forked by a middle process (the path a new user namespace takes)
_LADDER = "import sys\nfrom dockyard.runtime import cli, init\ninit._direct_flags = lambda spec: None\ncli.main()\n"


def test_direct_clone_and_the_ladder_make_the_same_container(tmp_path, rootfs):
    """Without a new user namespace the init is cloned straight into its namespaces and cgroups;
    with the middle process (forced here) the container must look the same from inside,
    private cgroup namespace included."""
    probe = PROBE + "; cat /proc/self/cgroup; cat /proc/self/oom_score_adj"
    outs = []
    for how in ("direct", "ladder"):
        cid = f"{how}{os.getpid()}"
        b = bundle(tmp_path, rootfs, cid, ["sh", "-c", probe])
        cfg = json.loads((b / "config.json").read_text())
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["process"]["oomScoreAdj"] = 123
        (b / "config.json").write_text(json.dumps(cfg))
        runtime = [str(BIN / "dockyard-runtime")] if how == "direct" else [str(BIN / "python"), "-c", _LADDER]
        p = subprocess.run(runtime + ["--root", str(tmp_path / "st"), "run", "--bundle", str(b), cid],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout.splitlines())
    direct, ladder = outs
    assert direct[6:] == ladder[6:]   # past the namespace ids, which differ per container
    cgroups = [ln for ln in direct if ln.split(":")[0].isdigit() and ln.count(":") >= 2]
    assert cgroups and all(ln.endswith(":/") for ln in cgroups), cgroups
    assert direct[-1] == "123" and "PID=1" in direct


def test_signal_exit_code_is_128_plus_n(tmp_path, rootfs):
    cid = "sig1"
    b = bundle(tmp_path, rootfs, cid, ["sleep", "30"])
    root = tmp_path / "st"
    proc = subprocess.Popen([str(BIN / "dockyard-runtime"), "--root", str(root), "run", "--bundle", str(b), cid],
                            stdin=subprocess.DEVNULL)
    for _ in range(100):
        if (root / cid / "state.json").exists() and not (root / cid / "exec.fifo").exists():
            break
        time.sleep(0.05)
    pid = json.loads((root / cid / "state.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(30) == 137


def test_bad_bundle_errors(tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    (b / "config.json").write_text("{not json")
    p = subprocess.run([str(BIN / "dockyard-runtime"), "--root", str(tmp_path / "r"), "create", "--bundle", str(b), "x"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "config.json" in p.stderr
    p = subprocess.run([str(BIN / "dockyard-runtime"), "--root", str(tmp_path / "r"), "create", "--bundle", str(b),
                        "../evil"], capture_output=True, text=True)
    assert p.returncode == 1
    p = subprocess.run([str(BIN / "dockyard-runtime"), "bogus"], capture_output=True, text=True)
    assert p.returncode == 2


def test_kill_and_delete_refuse_wrong_states(tmp_path, rootfs):
    cid = "states1"
    b = bundle(tmp_path, rootfs, cid, ["true"])
    base = [str(BIN / "dockyard-runtime"), "--root", str(tmp_path / "st")]
    subprocess.run(base + ["create", "--bundle", str(b), cid], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(base + ["start", cid], check=True)
    for _ in range(100):
        st = json.loads(subprocess.run(base + ["state", cid], capture_output=True, text=True).stdout)
        if st["status"] == "stopped":
            break
        time.sleep(0.05)
    p = subprocess.run(base + ["kill", cid, "TERM"], capture_output=True, text=True)
    assert p.returncode == 1 and "not running" in p.stderr
    p = subprocess.run(base + ["start", cid], capture_output=True, text=True)
    assert p.returncode == 1 and "stopped" in p.stderr
    p = subprocess.run(base + ["kill", cid, "NOTASIGNAL"], capture_output=True, text=True)
    assert p.returncode == 1
    subprocess.run(base + ["delete", cid], check=True)
    p = subprocess.run(base + ["delete", cid], capture_output=True, text=True)
    assert p.returncode == 1 and "does not exist" in p.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_proc_over_a_symlink_is_refused(runtime, tmp_path, rootfs):
    """CVE-2019-19921: the runtime mounts procfs on an ordinary directory only."""
    import shutil as _sh
    evil = tmp_path / "evilroot"
    _sh.copytree(rootfs, evil, symlinks=True)
    if (evil / "proc").is_dir():
        _sh.rmtree(evil / "proc")
    (evil / "tmp" / "fakeproc").mkdir(parents=True, exist_ok=True)
    (evil / "proc").symlink_to("tmp/fakeproc")
    p = run(runtime, tmp_path, evil, ["true"])
    assert p.returncode != 0
    assert "must be mounted on ordinary directory" in p.stderr, p.stderr


def test_delete_without_waiting_neither_kills_nor_blocks(tmp_path, rootfs):
    """The monitor's in-process `delete` right after an init's exit: a container that still
    runs is left alone (False, nothing killed, nothing removed); a stopped one loses its cgroups
    and state at once."""
    from dockyard.runtime import cli as runtime_cli
    cid = f"nowait{os.getpid()}"
    b = bundle(tmp_path, rootfs, cid, ["sleep", "30"])
    root = tmp_path / "st"
    base = [str(BIN / "dockyard-runtime"), "--root", str(root)]
    subprocess.run(base + ["create", "--bundle", str(b), cid], check=True, timeout=30, stdin=subprocess.DEVNULL)
    subprocess.run(base + ["start", cid], check=True, timeout=30)
    st = json.loads((root / cid / "state.json").read_text())
    try:
        assert runtime_cli.delete(root, cid, wait=False) is False
        assert os.path.exists(f"/proc/{st['pid']}") and (root / cid / "state.json").exists()
        os.kill(st["pid"], signal.SIGKILL)
        for _ in range(200):   # its reaper is gone (the runtime exited): it is re-parented and reaped
            if runtime_cli.delete(root, cid, wait=False):
                break
            time.sleep(0.01)
        assert not (root / cid).exists()
        assert not any(os.path.exists(p) for p in st["cgroup_paths"].values())
    finally:
        subprocess.run(base + ["delete", "--force", cid], timeout=30)
