"""The crash campaign, through the CRI: kill -9 of dockyardd at random points while random CRI operations
run (run pod, create and start containers, exec, stop, remove), a restart after each; then invariants: the
CRI answers, a sentinel pod and its container were not touched (same state, same IP), no sandbox is left
half made, every ready sandbox has its namespace and address, every other has none; at the end everything
is removed and nothing stays on the host (network namespaces, IPAM leases, firewall rules, cgroups).

CI runs a short campaign with a fixed seed; DOCKYARD_CRI_CRASH_TRIALS and DOCKYARD_CRASH_SEED run others."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time

import grpc
import pytest

from dockyard.cri.proto import runtime_v1_pb2 as pb

from ..helpers import dockyard_cgroups
from .test_recovery import _reconnect

pytestmark = pytest.mark.root
TRIALS = int(os.environ.get("DOCKYARD_CRI_CRASH_TRIALS") or 12)
SEED = int(os.environ.get("DOCKYARD_CRASH_SEED") or 20261207)


def _op(cri, rng: random.Random, k: int) -> None:
    pods = [s.id for s in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20).items
            if not s.metadata.name.startswith("sentinel")]
    choice = rng.random()
    if choice < 0.4 or not pods:
        cfg = cri.sandbox_config(f"c{k}")
        pod = cri.run_pod(cfg)
        c = cri.container(pod, cfg, "w", ["sleep", "1000"])
        cri.start(c)
    elif choice < 0.6:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=rng.choice(pods)), timeout=60)
    elif choice < 0.8:
        pod = rng.choice(pods)
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    else:
        for c in cri.rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
                state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))), timeout=20).containers[:1]:
            cri.exec_sync(c.id, ["true"])


def _leases(cri) -> list:
    return [p.name for p in (cri.daemon.base.parent / "cri0" / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit()]


def test_kill9_campaign_through_the_cri(cri, capsys):
    rng = random.Random(SEED)
    cfg = cri.sandbox_config("sentinel")
    sentinel = cri.run_pod(cfg)
    sc = cri.container(sentinel, cfg, "s", ["sleep", "100000"])
    cri.start(sc)
    ip = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sentinel), timeout=10).status.network.ip
    n = 0
    for trial in range(TRIALS):
        threads = []
        for _ in range(rng.randint(1, 3)):
            n += 1

            def work(k: int = n) -> None:
                try:
                    _op(cri, random.Random(SEED * 1000 + k), k)
                except grpc.RpcError:   # the daemon may be killed under it
                    pass
            t = threading.Thread(target=work, daemon=True)
            threads.append(t)
            t.start()
        time.sleep(rng.uniform(0.02, 0.4))
        cri.daemon.kill9()
        for t in threads:
            t.join(60)
        cri.daemon.start()
        _reconnect(cri)
        st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sentinel), timeout=10).status
        assert st.state == pb.SANDBOX_READY and st.network.ip == ip, f"trial {trial}: the sentinel pod was touched"
        assert cri.status(sc).state == pb.CONTAINER_RUNNING, f"trial {trial}: the sentinel container was touched"
        ready = 0
        for s in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20).items:
            full = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=s.id), timeout=10).status
            if full.state == pb.SANDBOX_READY:
                ready += 1
                assert full.network.ip, f"trial {trial}: ready sandbox {s.id[:12]} without an address"
            else:
                assert not full.network.ip, f"trial {trial}: stopped sandbox {s.id[:12]} with an address"
        assert len(_leases(cri)) == ready, f"trial {trial}: {len(_leases(cri))} leases for {ready} ready pods"
    states: dict[str, int] = {}
    for s in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20).items:
        states[pb.PodSandboxState.Name(s.state)] = states.get(pb.PodSandboxState.Name(s.state), 0) + 1
    cri.remove_all()
    assert not cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20).items
    assert not cri.rt.ListContainers(pb.ListContainersRequest(), timeout=20).containers
    assert _leases(cri) == []
    netns = [ln for ln in open("/proc/mounts") if str(cri.daemon.exec_root) in ln]
    assert not netns, f"mounts left behind: {netns}"
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert cri.bridge not in rules, "firewall rules left behind"
    assert not dockyard_cgroups(), "cgroups left behind"
    with capsys.disabled():
        print(f"\nCRI crash campaign: {TRIALS} trials, seed {SEED}: passed; {n} operations; sandboxes at the end "
              f"by state {states}")
