"""Pods and containers through the CRI, with real namespaces, cgroups and CNI plugins."""

from __future__ import annotations

import os
import re
import subprocess
import time

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

pytestmark = pytest.mark.root


def test_version_status_and_runtime_config(cri):
    v = cri.rt.Version(pb.VersionRequest(version="v1"), timeout=10)
    assert (v.runtime_name, v.runtime_api_version) == ("dockyard", "v1")
    st = cri.rt.Status(pb.StatusRequest(verbose=True), timeout=10)
    conds = {c.type: c.status for c in st.status.conditions}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}
    assert "cniConfig" in st.info["config"]
    rc = cri.rt.RuntimeConfig(pb.RuntimeConfigRequest(), timeout=10)
    assert rc.linux.cgroup_driver == pb.CGROUPFS
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.CheckpointContainer(pb.CheckpointContainerRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "CRIU" in e.value.details()


def test_pod_shares_namespaces_and_hostname_and_dns(cri, tmp_path):
    cfg = cri.sandbox_config("web", hostname="web-0", log_directory=str(tmp_path / "logs"),
                             dns_config=pb.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"],
                                                     options=["ndots:5"]),
                             labels={"app": "web"}, annotations={"note": "hello"})
    pod = cri.run_pod(cfg)
    a = cri.container(pod, cfg, "a", ["sleep", "1000"], log_path="a/0.log")
    b = cri.container(pod, cfg, "b", ["sleep", "1000"])
    cri.start(a)
    cri.start(b)
    links = "readlink /proc/1/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts"
    ra = cri.exec_sync(a, ["sh", "-c", f"hostname; cat /etc/resolv.conf; {links}; ip -4 -o addr show eth0"])
    rb = cri.exec_sync(b, ["sh", "-c", links])
    assert ra.exit_code == 0, ra.stderr
    out = ra.stdout.decode().splitlines()
    assert out[0] == "web-0"
    text = ra.stdout.decode()
    assert "nameserver 10.96.0.10" in text and "search default.svc.cluster.local" in text and "ndots:5" in text
    assert out[-4:-1] == rb.stdout.decode().splitlines()   # net, ipc and uts namespaces shared
    ip = re.search(r"inet (\S+)/", text).group(1)
    st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status
    assert st.state == pb.SANDBOX_READY and st.network.ip == ip and ip.startswith(cri.subnet.rsplit(".", 1)[0])
    assert dict(st.labels) == {"app": "web"} and dict(st.annotations) == {"note": "hello"}
    assert st.metadata.name == "web" and st.created_at > 0
    # the pod is in docker ps too, with kubelet's names
    p = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], env=cri.daemon.env(), capture_output=True,
                       text=True)
    assert f"k8s_a_web_default_{cfg.metadata.uid}_0" in p.stdout and f"k8s_POD_web_default_{cfg.metadata.uid}_0" in p.stdout


def test_pid_namespace_modes(cri):
    cfg = cri.sandbox_config("pids")
    cfg.linux.security_context.namespace_options.pid = pb.POD
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "c", ["sleep", "1000"],
                      linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                          namespace_options=pb.NamespaceOption(pid=pb.POD))))
    cri.start(c)
    r = cri.exec_sync(c, ["cat", "/proc/1/cmdline"])
    assert r.stdout.rstrip(b"\0") == b"/pause"   # the holder is the pod's PID 1
    cfg2 = cri.sandbox_config("pids2")
    pod2 = cri.run_pod(cfg2)
    c2 = cri.container(pod2, cfg2, "c", ["sleep", "1000"],
                       linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                           namespace_options=pb.NamespaceOption(pid=pb.CONTAINER))))
    cri.start(c2)
    assert cri.exec_sync(c2, ["cat", "/proc/1/cmdline"]).stdout.rstrip(b"\0") == b"sleep\x001000"


def test_logs_in_cri_format_and_reopen(cri, tmp_path):
    logs = tmp_path / "logs"
    cfg = cri.sandbox_config("logger", log_directory=str(logs))
    pod = cri.run_pod(cfg)
    script = "echo out; echo err >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; sleep 1000"
    c = cri.container(pod, cfg, "l", ["sh", "-c", script], log_path="l/0.log")
    cri.start(c)
    path = logs / "l" / "0.log"
    deadline = time.time() + 10
    while time.time() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 4):
        time.sleep(0.1)
    lines = path.read_bytes().splitlines()
    rx = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) ([FP]) (.*)$")
    parsed = [rx.match(ln).groups() for ln in lines]
    assert (b"stdout", b"F", b"out") in parsed and (b"stderr", b"F", b"err") in parsed
    long = [p for p in parsed if p[2].startswith(b"x")]
    assert [p[1] for p in long] == [b"P", b"F"] and sum(len(p[2]) for p in long) == 20000
    assert cri.status(c).log_path == str(path)
    # kubelet's rotation: rename, then ReopenContainerLog; new output lands in a new file
    os.rename(path, str(path) + ".1")
    cri.rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=c), timeout=10)
    assert path.exists()
    # docker logs reads the CRI format back
    p = subprocess.run(["docker", "logs", c], env=cri.daemon.env(), capture_output=True, text=True)
    assert p.returncode == 0


def test_container_status_exit_and_reason(cri):
    cfg = cri.sandbox_config("exits")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "e", ["sh", "-c", "exit 3"], labels={"k": "v"})
    st = cri.status(c)
    assert st.state == pb.CONTAINER_CREATED and st.created_at > 0 and st.started_at == 0
    cri.start(c)
    st = cri.wait_exit(c)
    assert (st.exit_code, st.reason) == (3, "Error")
    assert st.finished_at >= st.started_at > 0 and dict(st.labels) == {"k": "v"}
    assert st.image.image == "busybox" and st.image_ref.startswith("sha256:")
    ok = cri.container(pod, cfg, "ok", ["true"])
    cri.start(ok)
    assert cri.wait_exit(ok).reason == "Completed"
    items = cri.rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
        label_selector={"k": "v"})), timeout=10).containers
    assert [x.id for x in items] == [c]
    running = cri.rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
        state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))), timeout=10).containers
    assert running == []


def test_exec_sync_timeout_kills(cri):
    cfg = cri.sandbox_config("execs")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "x", ["sleep", "1000"])
    cri.start(c)
    r = cri.exec_sync(c, ["sh", "-c", "echo hi; echo oops >&2; exit 7"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi\n", b"oops\n", 7)
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        cri.exec_sync(c, ["sleep", "30"], timeout=1)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t0 < 15
    ps = cri.exec_sync(c, ["ps", "-o", "args"]).stdout.decode()
    assert "sleep 30" not in ps   # killed at the timeout


def test_stop_and_remove_are_idempotent(cri):
    unknown = "0" * 64
    cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=unknown), timeout=10)
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=unknown), timeout=10)
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=unknown), timeout=10)
    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=unknown), timeout=10)
    cfg = cri.sandbox_config("twice")
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "s", ["sleep", "1000"])
    cri.start(c)
    for _ in range(2):
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status
    assert st.state == pb.SANDBOX_NOTREADY and st.network.ip == ""
    assert cri.status(c).state == pb.CONTAINER_EXITED
    listed = cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(
        state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))), timeout=10).items
    assert pod not in [s.id for s in listed]
    for _ in range(2):
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    with pytest.raises(grpc.RpcError) as e:
        cri.status(c)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("field,mutate", [
    ("config.windows", lambda c: c.windows.SetInParent()),
    ("config.linux.security_context.selinux_options", lambda c: setattr(
        c.linux.security_context.selinux_options, "type", "spc_t")),
    ("config.linux.resources", lambda c: setattr(c.linux.resources, "cpu_shares", 512)),
    ("config.linux.security_context.apparmor", lambda c: c.linux.security_context.apparmor.SetInParent()),
    ("config.linux.security_context.supplemental_groups_policy",
     lambda c: setattr(c.linux.security_context, "supplemental_groups_policy", pb.Strict)),
])
def test_sandbox_fields_refused_by_name(cri, field, mutate):
    cfg = cri.sandbox_config("refused")
    mutate(cfg)
    with pytest.raises(grpc.RpcError) as e:
        cri.run_pod(cfg)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.details()


def test_unknown_fields_refused_by_number(cri):
    cfg = cri.sandbox_config("newer")
    raw = cfg.SerializeToString() + bytes([0x98, 0x06, 0x01])   # field 99, varint 1: not in our .proto
    req = pb.RunPodSandboxRequest()
    req.config.ParseFromString(raw)
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.RunPodSandbox(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "99" in e.value.details()
