"""The CRI peer: Debian's containerd with its CRI plugin, private to the test session (own root, state,
socket, CNI bridge and IPAM directory), pulling registry.k8s.io through a local docker-registry that holds
the stand-in images (busybox from our own daemon; pause:3.9 made of Dockyard's pod holder)."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
PAUSE = "registry.k8s.io/pause:3.9"


def push_stand_ins(daemon, registry: str, work: Path) -> None:
    """busybox and pause:3.9 into the registry, from the session daemon (docker save → skopeo)."""
    import docker

    from dockyard.cri import holder

    from ..registry.conftest import save_image, skopeo_copy
    binary = holder.binary(work / "holder")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(_info("pause", binary.stat().st_size), open(binary, "rb"))
    c = docker.APIClient(base_url=daemon.host, version="1.41")
    try:
        c.import_image_from_data(buf.getvalue(), repository="pause", tag="3.9", changes=['ENTRYPOINT ["/pause"]'])
    finally:
        c.close()
    skopeo_copy(save_image(daemon, "busybox:latest", work / "busybox.tar"), f"{registry}/e2e-test-images/busybox:1.29-2")
    skopeo_copy(save_image(daemon, "pause:3.9", work / "pause.tar"), f"{registry}/pause:3.9")


def _info(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = size, 0o755
    return ti


class Containerd:
    def __init__(self, work: Path, mirror: str, bridge: str, subnet: str) -> None:
        self.work, self.bridge = work, bridge
        (work / "net.d").mkdir(parents=True, exist_ok=True)
        (work / "net.d" / "10-bridge.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "criref", "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}],
                          "dataDir": str(work / "ipam")}},
                {"type": "loopback"}]}))
        self.sock = work / "state" / "containerd.sock"
        mirrors = "".join(f'    [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{r}"]\n'
                          f'      endpoint = ["http://{mirror}"]\n' for r in ("registry.k8s.io", "gcr.io"))
        (work / "config.toml").write_text(f"""version = 2
root = "{work}/root"
state = "{work}/state"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE}"
    restrict_oom_score_adj = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "{work}/net.d"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
{mirrors}""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Containerd":
        self.proc = subprocess.Popen(["containerd", "--config", str(self.work / "config.toml")],
                                     stdout=open(self.work / "containerd.log", "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline and not self.sock.exists():
            if self.proc.poll() is not None:
                raise RuntimeError((self.work / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        mounts = [ln.split()[1] for ln in open("/proc/mounts") if ln.split()[1].startswith(str(self.work))]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(self.work / "root", ignore_errors=True)
