"""Pod networking through Debian's CNI plugins (bridge + host-local + loopback): two pods reach
each other, a hostPort answers on 127.0.0.1 through Dockyard's DNAT, DEL runs on stop (also after
a daemon was killed), and nothing of it stays on the host."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

from ..helpers import free_port
from .conftest import banner

pytestmark = pytest.mark.root


def _pod_ip(cri, pod):
    return cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status.network.ip


def test_two_pods_reach_each_other_and_hostport(cri):
    cfg1 = cri.sandbox_config("server")
    port = free_port()
    cfg1.port_mappings.add(protocol=pb.TCP, container_port=8080, host_port=port, host_ip="127.0.0.1")
    p1 = cri.run_pod(cfg1)
    srv = cri.container(p1, cfg1, "nc", ["sh", "-c", "while true; do echo hello-from-pod | nc -l -p 8080; done"])
    cri.start(srv)
    cfg2 = cri.sandbox_config("client")
    p2 = cri.run_pod(cfg2)
    cli = cri.container(p2, cfg2, "c", ["sleep", "1000"])
    cri.start(cli)
    ip1, ip2 = _pod_ip(cri, p1), _pod_ip(cri, p2)
    assert ip1 and ip2 and ip1 != ip2
    deadline = time.time() + 10
    out = b""
    while time.time() < deadline and b"hello-from-pod" not in out:
        out = cri.exec_sync(cli, ["sh", "-c", f"nc {ip1} 8080 </dev/null"]).stdout
        time.sleep(0.2)
    assert b"hello-from-pod" in out
    # the hostPort, from the host's loopback
    assert b"hello-from-pod" in banner(port, b"hello-from-pod")
    nat = subprocess.run(["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert f"--dport {port}" in nat
    cri.remove_all()
    nat = subprocess.run(["iptables", "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert f"--dport {port}" not in nat and f"DY-NAT-{cri.bridge}" not in nat   # rules and chains gone
    leases = [p for p in (cri.daemon.base.parent / "cri0" / "ipam").rglob("*") if p.is_file()
              and p.name[0].isdigit()]
    assert leases == []   # host-local's leases released by DEL


def test_network_not_ready_without_config(cri_factory, tmp_path):
    cri = cri_factory()
    for f in (cri.daemon.base.parent / "cri0" / "net.d").iterdir():
        f.unlink()
    st = cri.rt.Status(pb.StatusRequest(), timeout=10)
    conds = {c.type: (c.status, c.reason) for c in st.status.conditions}
    assert conds["NetworkReady"] == (False, "NetworkPluginNotReady")
    import grpc
    with pytest.raises(grpc.RpcError) as e:
        cri.run_pod(cri.sandbox_config("nonet"))
    assert "network not ready" in e.value.details()
    # a pod on the host's network needs no CNI
    cfg = cri.sandbox_config("hostnet")
    cfg.linux.security_context.namespace_options.network = pb.NODE
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "h", ["sleep", "100"], linux=pb.LinuxContainerConfig(
        security_context=pb.LinuxContainerSecurityContext(namespace_options=pb.NamespaceOption(network=pb.NODE))))
    cri.start(c)
    host_ns = subprocess.run(["readlink", "/proc/self/ns/net"], capture_output=True, text=True).stdout.strip()
    assert cri.exec_sync(c, ["readlink", "/proc/self/ns/net"]).stdout.decode().strip() == host_ns


def test_cni_del_after_daemon_killed(cri):
    cfg = cri.sandbox_config("orphan")
    pod = cri.run_pod(cfg)
    info = json.loads(cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
                                              timeout=10).info["info"])
    ipam = cri.daemon.base.parent / "cri0" / "ipam"
    assert [p for p in ipam.rglob("*") if p.is_file() and p.name[0].isdigit()]
    holder = info["pid"]
    cri.daemon.kill9()
    import os
    import signal
    os.kill(holder, signal.SIGKILL)   # the holder dies while no daemon watches
    cri.daemon.start()
    deadline = time.time() + 20
    while time.time() < deadline and not cri.sock.exists():
        time.sleep(0.1)
    cri.channel.close()
    import grpc

    from dockyard.cri.proto import runtime_v1_pb2_grpc as pbg
    cri.channel = grpc.insecure_channel(f"unix://{cri.sock}")
    cri.rt = pbg.RuntimeServiceStub(cri.channel)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=5).status
            break
        except grpc.RpcError:
            time.sleep(0.2)
    assert st.state == pb.SANDBOX_NOTREADY
    assert not [p for p in ipam.rglob("*") if p.is_file() and p.name[0].isdigit()]   # DEL ran at recovery
