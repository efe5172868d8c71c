"""A cluster on one machine: "hosts" as network namespaces on one bridge (the wire, with no
address in the root namespace), each with its own UTS namespace and hostname, running its own
dockyardd through `ip netns exec`; etcd (one member or three) in namespaces of its own on the
same wire. No namespace has a default route: nothing leaves the rig. `down()` removes all of it.

Used by tests/overlay and bench/overlay."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ..helpers import Daemon, wait_gone

WIRE_NET = "10.231.0"


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p


def cgroup_mounts() -> str:
    """Shell commands that mount the host's cgroup hierarchies again (`ip netns exec` mounts a
    fresh /sys, without them)."""
    cmds = []
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        point = left.split()[4]
        fstype, _src, opts = right.split()[:3]
        if not point.startswith("/sys/fs/cgroup"):
            continue
        o = ",".join(x for x in opts.split(",") if x not in ("rw", "ro"))
        cmds.append(f"mkdir -p {point} && mount -t {fstype} {'-o ' + o if o else ''} {fstype} {point}")
    return " && ".join(cmds) or "true"


class RigDaemon(Daemon):
    """A dockyardd inside one of the rig's hosts (in the host's namespaces, kept by its holder)."""

    def __init__(self, base: Path, holder: int, *args: str, config: dict | None = None) -> None:
        super().__init__(base, *args, config=config)
        self.launcher = ["nsenter", "-t", str(holder), "-m", "-u", "-n", "--"]


class Rig:
    """The wire, the hosts, etcd."""

    def __init__(self, base: Path, hosts: int = 3, members: int = 1, mtu: int = 1500) -> None:
        self.base = base
        self.tag = secrets.token_hex(2)
        self.wire = f"dyw{self.tag}"
        self.hosts = [f"dyr{self.tag}h{k}" for k in range(1, hosts + 1)]
        self.etcd_ns = [f"dyr{self.tag}e{k}" for k in range(1, members + 1)]
        self.mtu = mtu
        self.etcd: dict[int, subprocess.Popen[bytes]] = {}
        self.daemons: dict[int, RigDaemon] = {}
        self.holders: dict[int, subprocess.Popen[bytes]] = {}
        self._fw = ["FORWARD", "-i", self.wire, "-o", self.wire, "-j", "ACCEPT"]
        self.cgroup_parents: set[str] = set()

    # --- addresses -----------------------------------------------------------------------------------
    def host_ip(self, k: int) -> str:
        return f"{WIRE_NET}.{10 + k}"

    def etcd_ip(self, k: int) -> str:
        return f"{WIRE_NET}.{k + 1}"

    @property
    def store(self) -> str:
        return "etcd://" + ",".join(f"{self.etcd_ip(k)}:2379" for k in range(1, len(self.etcd_ns) + 1))

    # --- the wire and the namespaces ------------------------------------------------------------------
    def up(self) -> Rig:
        self.base.mkdir(parents=True, exist_ok=True)
        sh("ip", "link", "add", self.wire, "type", "bridge")
        sh("ip", "link", "set", self.wire, "mtu", str(self.mtu), "up")
        # where br_netfilter is loaded, frames on the wire pass the root FORWARD chain (DROP under dockerd)
        sh("iptables", "-I", *self._fw)
        for i, ns in enumerate(self.hosts + self.etcd_ns):
            ip = self.host_ip(i + 1) if i < len(self.hosts) else self.etcd_ip(i - len(self.hosts) + 1)
            sh("ip", "netns", "add", ns)
            outer = f"{ns}w"[-15:]
            sh("ip", "link", "add", outer, "mtu", str(self.mtu), "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", outer, "master", self.wire, "up")
            for cmd in (["ip", "addr", "add", f"{ip}/24", "dev", "eth0"], ["ip", "link", "set", "eth0", "mtu", str(self.mtu)],
                        ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"]):
                sh("ip", "netns", "exec", ns, *cmd)
        for k in range(1, len(self.hosts) + 1):
            self._hold(k)
        for k in range(1, len(self.etcd_ns) + 1):
            self.start_etcd(k)
        return self

    def _hold(self, k: int) -> None:
        """The host's own mount and UTS namespaces, made by `ip netns exec` (a fresh /sys, where the
        cgroup hierarchies are mounted again) and kept by a process that sleeps in them: every
        start of the host's daemon enters them, as a daemon restarted on a real host finds its
        mounts."""
        ready = self.base / f"h{k}.ready"
        script = f"{cgroup_mounts()} && hostname host{k} && touch {shlex.quote(str(ready))} && exec sleep infinity"
        self.holders[k] = subprocess.Popen(["ip", "netns", "exec", self.hosts[k - 1], "unshare", "--uts", "--",
                                            "sh", "-c", script])
        deadline = time.time() + 10
        while not ready.exists():
            if self.holders[k].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"host {k} could not be set up")
            time.sleep(0.02)

    def set_mtu(self, mtu: int) -> None:
        """The underlay's MTU, on every link of the wire."""
        self.mtu = mtu
        sh("ip", "link", "set", self.wire, "mtu", str(mtu))
        for ns in self.hosts + self.etcd_ns:
            sh("ip", "link", "set", f"{ns}w"[-15:], "mtu", str(mtu))
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "mtu", str(mtu))

    def start_etcd(self, k: int, new: bool = True) -> None:
        ns, ip = self.etcd_ns[k - 1], self.etcd_ip(k)
        cluster = ",".join(f"e{j}=http://{self.etcd_ip(j)}:2380" for j in range(1, len(self.etcd_ns) + 1))
        d = self.base / f"etcd{k}"
        d.mkdir(parents=True, exist_ok=True)
        log = open(d / "log", "ab")
        self.etcd[k] = subprocess.Popen(
            ["ip", "netns", "exec", ns, "etcd", "--name", f"e{k}", "--data-dir", str(d / "data"),
             "--listen-client-urls", f"http://{ip}:2379", "--advertise-client-urls", f"http://{ip}:2379",
             "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
             "--initial-cluster", cluster, "--initial-cluster-state", "new", "--enable-v2=true",
             "--heartbeat-interval", "50", "--election-timeout", "500"], stdout=log, stderr=log)
        if len(self.etcd_ns) == 1 or not new:
            self.wait_etcd(k)

    def wait_etcd(self, k: int, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            p = sh("ip", "netns", "exec", self.etcd_ns[k - 1], "etcdctl", "--endpoints", f"http://{self.etcd_ip(k)}:2379",
                   "--command-timeout=1s", "endpoint", "health", check=False)
            if p.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd {k} did not become healthy: {(self.base / f'etcd{k}' / 'log').read_text()[-2000:]}")

    def stop_etcd(self, k: int, kill: bool = False) -> None:
        p = self.etcd.pop(k, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            p.wait(30)

    # --- daemons ----------------------------------------------------------------------------------------------
    def daemon(self, k: int, *extra: str, ttl: int = 4, busybox: Path | None = None, advertise: str = "") -> RigDaemon:
        parent = f"dyrig{self.tag}h{k}"
        self.cgroup_parents.add(parent)
        d = RigDaemon(self.base / f"h{k}", self.holders[k].pid, "--cluster-store", self.store,
                      "--cluster-advertise", advertise or self.host_ip(k), "--cluster-store-opt", f"lease-ttl={ttl}",
                      "--cgroup-parent", parent, *extra)
        self.daemons[k] = d
        d.start()
        if busybox is not None:
            load_busybox(d, busybox)
        return d

    def in_host(self, k: int, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("nsenter", "-t", str(self.holders[k].pid), "-m", "-u", "-n", "--", *cmd, check=check)

    def in_overlay(self, k: int, network_id: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command in the namespace of an overlay network on host k (where its devices are)."""
        ns = self.daemons[k].exec_root / "overlay" / f"ov-{network_id[:12]}"
        return self.in_host(k, "nsenter", f"--net={ns}", "--", *cmd, check=check)

    def down(self) -> None:
        errors = []
        for d in self.daemons.values():
            try:
                d.cleanup()
            except Exception as e:   # noqa: BLE001 - go on removing the rest
                errors.append(e)
        for k in list(self.etcd):
            self.stop_etcd(k, kill=True)
        for h in self.holders.values():
            h.kill()
            h.wait()
        for ns in self.hosts + self.etcd_ns:
            _kill_in_netns(ns)
            sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", self.wire, check=False)
        sh("iptables", "-D", *self._fw, check=False)
        for parent in self.cgroup_parents:
            for h in Path("/sys/fs/cgroup").iterdir():
                p = h / parent
                if p.is_dir():
                    for sub in sorted(p.rglob("*"), reverse=True):
                        if sub.is_dir():
                            sub.rmdir()
                    p.rmdir()
        if errors:
            raise errors[0]


def _kill_in_netns(ns: str) -> None:
    """Whatever still runs in a namespace of the rig (a container a killed daemon left)."""
    p = sh("ip", "netns", "pids", ns, check=False)
    pids = [int(x) for x in p.stdout.split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        wait_gone(pid, 5.0)


def load_busybox(d: Daemon, tar: Path) -> None:
    import docker
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        with open(tar, "rb") as f:
            c.api.import_image_from_data(f.read(), repository="busybox", tag="latest")
    finally:
        c.close()


def api(rig: Rig, k: int) -> Any:
    """docker-py against host k's daemon."""
    import docker
    return docker.DockerClient(base_url=rig.daemons[k].host, version="auto")


def clear(clients: dict[int, Any]) -> None:
    """What a test left on the rig: containers first, then overlay networks (from any host); the
    clients closed."""
    import docker
    for c in clients.values():
        for ctr in c.containers.list(all=True):
            ctr.remove(force=True)
    for c in clients.values():
        for n in c.networks.list():
            if n.attrs["Driver"] == "overlay":
                try:
                    n.remove()
                except docker.errors.NotFound:
                    pass
        c.close()


def info(d: Daemon) -> dict[str, Any]:
    import docker
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        return dict(c.info())
    finally:
        c.close()


def dumps(x: Any) -> str:
    return json.dumps(x, indent=1, sort_keys=True)
