"""A dockyardd serving the CRI on a socket of its own, with a CNI bridge network of its own (own
bridge name, subnet and IPAM data directory), and a gRPC client of the project's own stubs."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

_seq = itertools.count(1)


class Cri:
    def __init__(self, daemon, sock: Path, bridge: str, subnet: str) -> None:
        import grpc

        from dockyard.cri.proto import runtime_v1_pb2_grpc as pbg
        self.daemon, self.sock, self.bridge, self.subnet = daemon, sock, bridge, subnet
        self.channel = grpc.insecure_channel(f"unix://{sock}")
        self.rt = pbg.RuntimeServiceStub(self.channel)
        self.img = pbg.ImageServiceStub(self.channel)

    def sandbox_config(self, name: str = "pod", **kw):
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        uid = kw.pop("uid", f"uid-{name}-{next(_seq)}")
        cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name=name, namespace="default", uid=uid, attempt=0),
                                  **kw)
        return cfg

    def run_pod(self, cfg):
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        return self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id

    def container(self, pod_id: str, pod_cfg, name: str, args: list[str], **kw) -> str:
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image="busybox"),
                                 command=args[:1], args=args[1:], **kw)
        return self.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=cfg,
                                                                 sandbox_config=pod_cfg), timeout=60).container_id

    def start(self, cid: str) -> None:
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)

    def status(self, cid: str):
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        return self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=30).status

    def wait_exit(self, cid: str, timeout: float = 30):
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.status(cid)
            if st.state == pb.CONTAINER_EXITED:
                return st
            time.sleep(0.1)
        raise AssertionError(f"container {cid} did not exit")

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 10):
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        return self.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout), timeout=timeout + 30)

    def remove_all(self) -> None:
        from dockyard.cri.proto import runtime_v1_pb2 as pb
        for s in self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
            self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id), timeout=60)
            self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60)


def banner(port: int, want: bytes, timeout: float = 10) -> bytes:
    """What a server on 127.0.0.1:port says first, retried until it says `want` (it may not listen yet)."""
    import socket
    got = b""
    deadline = time.time() + timeout
    while time.time() < deadline and want not in got:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                got = s.recv(100)
        except OSError:
            time.sleep(0.2)
    return got


def cni_conf(d: Path, bridge: str, subnet: str, ipam_dir: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "10-dockyard-test.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": f"net-{bridge}",
        "plugins": [{"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": str(ipam_dir),
                              "routes": [{"dst": "0.0.0.0/0"}]}},
                    {"type": "loopback"}]}))


@pytest.fixture
def cri_factory(fresh_daemon, tmp_path):
    """Make a CRI daemon (extra flags, daemon.json); each is cleaned up after the test."""
    made: list[Cri] = []

    def make(*args: str, config: dict | None = None) -> Cri:
        n = next(_seq) + 10 * (os.getpid() % 20)
        bridge, subnet = f"dycri{n}", f"10.89.{n % 250}.0/24"
        base = tmp_path / f"cri{len(made)}"
        cni_conf(base / "net.d", bridge, subnet, base / "ipam")
        sock = base / "cri.sock"
        d = fresh_daemon(f"--cri-socket=unix://{sock}", f"--cni-conf-dir={base / 'net.d'}", *args, config=config)
        deadline = time.time() + 20
        while not sock.exists() and time.time() < deadline:
            time.sleep(0.05)
        c = Cri(d, sock, bridge, subnet)
        made.append(c)
        return c
    yield make
    for c in made:
        try:
            c.remove_all()
        finally:
            c.channel.close()
            subprocess.run(["ip", "link", "del", c.bridge], capture_output=True)


@pytest.fixture
def cri(cri_factory):
    return cri_factory()


@pytest.fixture(scope="session")
def peer_registry(tmp_path_factory, daemon):
    """A docker-registry holding the stand-in images (registry.k8s.io's, by a mirror)."""
    from ..registry.conftest import _registry
    from .peer import push_stand_ins
    base = tmp_path_factory.mktemp("cri-registry")
    for addr in _registry(base, ""):
        push_stand_ins(daemon, addr, base)
        yield addr


@pytest.fixture(scope="session")
def containerd_peer(tmp_path_factory, peer_registry):
    """Debian's containerd with its CRI, as a Cri client; skipped where containerd is not installed."""
    import shutil as _sh
    if not _sh.which("containerd") or not os.path.isdir("/usr/lib/cni"):
        pytest.skip("Debian's containerd and containernetworking-plugins are not installed")
    from .peer import Containerd
    n = 200 + os.getpid() % 50
    ctd = Containerd(tmp_path_factory.mktemp("containerd"), peer_registry, f"dyref{n}", f"10.244.{n}.0/24").start()
    c = Cri(None, ctd.sock, ctd.bridge, f"10.244.{n}.0/24")
    try:
        yield c
    finally:
        try:
            c.remove_all()
        finally:
            c.channel.close()
            ctd.stop()
