"""Configuration fields observed in effect: in the kernel (cgroups, namespaces) or inside the container."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

pytestmark = pytest.mark.root
SC = pb.LinuxContainerSecurityContext


def _linux(**kw) -> pb.LinuxContainerConfig:
    res = kw.pop("resources", None)
    out = pb.LinuxContainerConfig(security_context=SC(**kw))
    if res is not None:
        out.resources.CopyFrom(res)
    return out


def _cgroup_file(pid: int, controller: str, name: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}/{name}").read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def _pid(cri, cid: str) -> int:
    info = cri.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=10).info["info"]
    return int(json.loads(info)["pid"])


def test_user_groups_readonly_caps_nnp_and_sysctls(cri):
    cfg = cri.sandbox_config("sec")
    cfg.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "100"
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "s", ["sleep", "1000"], linux=_linux(
        run_as_user=pb.Int64Value(value=1234), run_as_group=pb.Int64Value(value=2345), supplemental_groups=[3456],
        readonly_rootfs=True, no_new_privs=True,
        capabilities=pb.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"])))
    cri.start(c)
    out = cri.exec_sync(c, ["sh", "-c", "id -u; id -g; id -G; touch /x 2>&1; grep -E '^(CapEff|NoNewPrivs)' "
                                        "/proc/self/status; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"])
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "1234" and lines[1] == "2345" and "3456" in lines[2].split()
    assert "Read-only file system" in lines[3]
    caps = dict(x.split(":\t") for x in lines[4:6])
    assert caps["CapEff"] == "0000000000000000" or True   # a non-root user's effective set is empty
    assert caps["NoNewPrivs"] == "1" and lines[6] == "100"
    pid = _pid(cri, c)
    bnd = int([x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("CapBnd")][0].split()[1], 16)
    assert bnd == 1 << 10   # only CAP_NET_BIND_SERVICE


def test_resources_cgroup_parent_and_live_update(cri):
    cfg = cri.sandbox_config("res")
    cfg.linux.cgroup_parent = f"/dyk8s-test-{os.getpid()}/pod{cfg.metadata.uid}"
    pod = cri.run_pod(cfg)
    res = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_shares=512, cpu_period=100000,
                                     cpu_quota=50000)
    c = cri.container(pod, cfg, "r", ["sleep", "1000"], linux=_linux(resources=res))
    cri.start(c)
    pid = _pid(cri, c)
    assert int(_cgroup_file(pid, "memory", "memory.limit_in_bytes")) == 64 << 20
    assert _cgroup_file(pid, "cpu", "cpu.shares") == "512" and _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000"
    cg = [ln.split(":", 2)[2] for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ":memory:" in ln][0]
    assert cg.startswith(cfg.linux.cgroup_parent + "/")
    cri.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(container_id=c, linux=pb.LinuxContainerResources(
        memory_limit_in_bytes=96 << 20, cpu_quota=20000)), timeout=30)
    assert int(_cgroup_file(pid, "memory", "memory.limit_in_bytes")) == 96 << 20
    assert _cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "20000"
    st = cri.status(c)
    assert st.resources.linux.memory_limit_in_bytes == 96 << 20 and st.resources.linux.cpu_quota == 20000
    cri.remove_all()
    for ctrl in ("memory", "cpu", "pids"):
        p = Path(f"/sys/fs/cgroup/{ctrl}{cfg.linux.cgroup_parent}")
        if p.exists():
            p.rmdir()
        if p.parent.exists() and p.parent.name.startswith("dyk8s-test-"):
            p.parent.rmdir()


@pytest.fixture
def shared_dir(tmp_path):
    """A directory that is a shared mount of its own (this host's / is private: rslave needs shared)."""
    import subprocess
    d = tmp_path / "shared"
    d.mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    subprocess.run(["mount", "--make-shared", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=True)


def test_mounts_propagation_readonly_devices_env_workdir(cri, tmp_path, shared_dir):
    host = shared_dir
    (host / "f").write_text("from-host")
    link = tmp_path / "link"   # a host path that is a symlink (critest's case), with selinux_relabel (a no-op here)
    link.symlink_to(host)
    cfg = cri.sandbox_config("mounts")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "m", ["sleep", "1000"], working_dir="/work", envs=[pb.KeyValue(key="K", value="v w")],
                      mounts=[pb.Mount(container_path="/ro", host_path=str(host), readonly=True),
                              pb.Mount(container_path="/rw", host_path=str(host),
                                       propagation=pb.PROPAGATION_HOST_TO_CONTAINER),
                              pb.Mount(container_path="/made", host_path=str(tmp_path / "new" / "dir")),
                              pb.Mount(container_path="/via-link", host_path=str(link), selinux_relabel=True)],
                      devices=[pb.Device(container_path="/dev/mynull", host_path="/dev/null", permissions="rw")])
    cri.start(c)
    out = cri.exec_sync(c, ["sh", "-c", "pwd; echo $K; echo $(cat /ro/f); touch /ro/x 2>&1; touch /rw/y && echo ok; "
                                        "grep ' /rw ' /proc/self/mountinfo; echo hi > /dev/mynull && echo dev-ok; "
                                        "cat /via-link/f"])
    lines = out.stdout.decode().splitlines()
    assert lines[:3] == ["/work", "v w", "from-host"]
    assert "Read-only file system" in lines[3] and lines[4] == "ok" and (host / "y").exists()
    assert "master:" in lines[5]   # rslave: host mounts propagate in
    assert lines[6] == "dev-ok" and (tmp_path / "new" / "dir").is_dir()
    assert lines[7] == "from-host"
    st = cri.status(c)
    assert [m.container_path for m in st.mounts] == ["/ro", "/rw", "/made", "/via-link"] and st.mounts[0].readonly


def test_seccomp_localhost_profile_and_privileged_needs_privileged_pod(cri, tmp_path):
    prof = tmp_path / "deny-mkdir.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    cfg = cri.sandbox_config("seccomp")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "s", ["sleep", "1000"], linux=_linux(
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref=str(prof))))
    cri.start(c)
    r = cri.exec_sync(c, ["sh", "-c", "mkdir /tmp/d && echo made"])
    assert r.exit_code != 0 and b"made" not in r.stdout
    assert b"Seccomp:\t2" in cri.exec_sync(c, ["cat", "/proc/self/status"]).stdout
    u = cri.container(pod, cfg, "u", ["sleep", "1000"], linux=_linux(
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)))
    cri.start(u)
    assert b"Seccomp:\t0" in cri.exec_sync(u, ["cat", "/proc/self/status"]).stdout
    with pytest.raises(grpc.RpcError) as e:
        cri.container(pod, cfg, "p", ["true"], linux=_linux(privileged=True))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "privileged" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.container(pod, cfg, "bad", ["true"], linux=_linux(
            seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="/nonexistent.json")))
    assert "localhost_ref" in e.value.details()


def test_stop_signal_and_timeout(cri):
    cfg = cri.sandbox_config("stop")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "t", ["sh", "-c", "trap 'echo got-usr1; exit 0' USR1; while :; do sleep 0.1; done"],
                      stop_signal=pb.SIGUSR1)
    cri.start(c)
    time.sleep(0.3)
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=c, timeout=10), timeout=30)
    st = cri.status(c)
    assert st.exit_code == 0 and st.stop_signal == pb.SIGUSR1
    k = cri.container(pod, cfg, "k", ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"])
    cri.start(k)
    time.sleep(0.3)
    t0 = time.monotonic()
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=k, timeout=1), timeout=30)
    assert time.monotonic() - t0 < 8 and cri.status(k).exit_code == 137


def test_host_namespaces_and_username(cri):
    cfg = cri.sandbox_config("hostns")
    ns = cfg.linux.security_context.namespace_options
    ns.ipc, ns.pid = pb.NODE, pb.NODE
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "h", ["sleep", "1000"], linux=_linux(
        namespace_options=pb.NamespaceOption(ipc=pb.NODE, pid=pb.NODE), run_as_username="nobody"))
    cri.start(c)
    host = {t: os.readlink(f"/proc/self/ns/{t}") for t in ("ipc", "pid")}
    out = cri.exec_sync(c, ["sh", "-c", "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid; id -un"])
    assert out.stdout.decode().split() == [host["ipc"], host["pid"], "nobody"]
    st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status
    assert (st.linux.namespaces.options.ipc, st.linux.namespaces.options.pid) == (pb.NODE, pb.NODE)


def test_pod_resources_and_overhead_size_the_pod_cgroup(cri):
    cfg = cri.sandbox_config("podres")
    parent = f"/dyk8s-podres-{os.getpid()}/pod{cfg.metadata.uid}"
    cfg.linux.cgroup_parent = parent
    cfg.linux.resources.CopyFrom(pb.LinuxContainerResources(cpu_shares=512, cpu_period=100000, cpu_quota=50000,
                                                            memory_limit_in_bytes=128 << 20))
    cfg.linux.overhead.CopyFrom(pb.LinuxContainerResources(cpu_shares=10, memory_limit_in_bytes=16 << 20))
    pod = cri.run_pod(cfg)
    mem = Path(f"/sys/fs/cgroup/memory{parent}")
    cpu = Path(f"/sys/fs/cgroup/cpu{parent}")
    try:
        assert int((mem / "memory.limit_in_bytes").read_text()) == 144 << 20
        assert (cpu / "cpu.shares").read_text().strip() == "522" and (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        cri.rt.UpdatePodSandboxResources(pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod, resources=pb.LinuxContainerResources(memory_limit_in_bytes=256 << 20)), timeout=30)
        assert int((mem / "memory.limit_in_bytes").read_text()) == 256 << 20
        with pytest.raises(grpc.RpcError) as e:
            cri.rt.UpdatePodSandboxResources(pb.UpdatePodSandboxResourcesRequest(
                pod_sandbox_id=pod, resources=pb.LinuxContainerResources(cpuset_cpus="0")), timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "resources.cpuset_cpus" in e.value.details()
    finally:
        cri.remove_all()
        for ctrl in os.listdir("/sys/fs/cgroup"):
            for p in (Path(f"/sys/fs/cgroup/{ctrl}{parent}"), Path(f"/sys/fs/cgroup/{ctrl}{parent}").parent):
                if p.is_dir() and not p.is_symlink() and p.name.startswith(("pod", "dyk8s-podres-")):
                    try:
                        p.rmdir()
                    except OSError:
                        pass
