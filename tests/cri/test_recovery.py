"""kill -9 of dockyardd: pods and their containers keep running; after the restart the CRI lists the
same sandboxes and containers in the same states, and their network and exec still work."""

from __future__ import annotations

import time

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb
from dockyard.cri.proto import runtime_v1_pb2_grpc as pbg

pytestmark = pytest.mark.root


def _reconnect(cri) -> None:
    deadline = time.time() + 30
    while time.time() < deadline and not cri.sock.exists():
        time.sleep(0.1)
    cri.channel.close()
    cri.channel = grpc.insecure_channel(f"unix://{cri.sock}")
    cri.rt, cri.img = pbg.RuntimeServiceStub(cri.channel), pbg.ImageServiceStub(cri.channel)
    while time.time() < deadline:
        try:
            cri.rt.Version(pb.VersionRequest(), timeout=2)
            return
        except grpc.RpcError:
            time.sleep(0.1)
    raise AssertionError("the CRI did not come back")


def _snapshot(cri):
    pods = {s.id: (s.state, s.metadata.name, dict(s.labels))
            for s in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10).items}
    ctrs = {c.id: (c.state, c.pod_sandbox_id, c.metadata.name)
            for c in cri.rt.ListContainers(pb.ListContainersRequest(), timeout=10).containers}
    return pods, ctrs


def test_kill9_keeps_pods_and_the_restart_lists_them(cri):
    cfg = cri.sandbox_config("survivor", labels={"tier": "db"})
    pod = cri.run_pod(cfg)
    c = cri.container(pod, cfg, "main", ["sleep", "1000"])
    cri.start(c)
    done = cri.container(pod, cfg, "done", ["true"])
    cri.start(done)
    cri.wait_exit(done)
    ip = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status.network.ip
    before = _snapshot(cri)
    cri.daemon.kill9()
    cri.daemon.start()
    _reconnect(cri)
    assert _snapshot(cri) == before
    st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod), timeout=10).status
    assert st.state == pb.SANDBOX_READY and st.network.ip == ip
    r = cri.exec_sync(c, ["sh", "-c", "ip -4 -o addr show eth0"])
    assert ip in r.stdout.decode()
    # and it can still be stopped and removed cleanly
    cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert _snapshot(cri) == ({}, {})
