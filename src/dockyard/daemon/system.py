"""`/version` and `/info` from the services' state."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
from typing import Any

from .. import API_VERSION, MIN_API_VERSION, __version__
from ..containers.model import Status
from ..containers.service import ContainerService
from ..images.service import ARCH, ImageService
from ..runtime import cgroups
from ..units import unix_seconds
from .config import Config


class SystemService:
    """The system backend."""

    def __init__(self, cfg: Config, images: ImageService, containers: ContainerService) -> None:
        self.cfg = cfg
        self.images = images
        self.containers = containers

    def version(self) -> dict[str, Any]:
        """`GET /version`."""
        return {
            "Platform": {"Name": "Dockyard Engine"},
            "Components": [{"Name": "Engine", "Version": __version__,
                            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                        "Os": "linux", "Arch": ARCH, "KernelVersion": platform.release()}}],
            "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "", "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": ARCH,
            "KernelVersion": platform.release(), "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        """`GET /info`."""
        cs = list(self.containers.by_id.values())
        running = sum(1 for c in cs if c.state.status == Status.RUNNING)
        paused = sum(1 for c in cs if c.state.status == Status.PAUSED)
        mem = 0
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) * 1024
        except OSError:
            pass
        return {
            "ID": self._daemon_id(), "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": paused,
            "ContainersStopped": len(cs) - running - paused, "Images": len(self.images.meta.images()),
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
            "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": None,
                        "Log": ["json-file", "local", "none"]},
            "MemoryLimit": True, "SwapLimit": False, "KernelMemory": False, "CpuCfsPeriod": True,
            "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
            "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": self.cfg.log_level == "debug",
            "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True, "NGoroutines": len(asyncio.all_tasks()),
            "SystemTime": _now(), "LoggingDriver": self.cfg.log_driver,
            "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if cgroups.is_unified() else "1",
            "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
            "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(), "IndexServerAddress":
            "https://index.docker.io/v1/", "RegistryConfig": _registry_config(),
            "NCPU": os.cpu_count() or 1, "MemTotal": mem, "DockerRootDir": self.cfg.data_root,
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": socket.gethostname(), "Labels": [],
            "ExperimentalBuild": False, "ServerVersion": __version__,
            "Runtimes": {n: {"path": r.argv[0]} for n, r in self.containers.runtimes.items()},
            "DefaultRuntime": self.cfg.default_runtime, "Swarm": {"LocalNodeState": "inactive",
                                                                  "NodeID": "", "NodeAddr": "",
                                                                  "ControlAvailable": False, "Error": "",
                                                                  "RemoteManagers": None},
            "LiveRestoreEnabled": bool(self.cfg.live_restore), "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": ["name=seccomp,profile=default"],
            "Warnings": None, **self._cluster(),
        }

    def _cluster(self) -> dict[str, Any]:
        """ClusterStore, ClusterAdvertise and, as Docker's classic swarm did, the nodes the store
        lists in SystemStatus."""
        nets = self.containers.networks.nets if self.containers.networks is not None else None
        cluster = nets.overlay.cluster if nets is not None and nets.overlay is not None else None
        if cluster is None:
            return {}
        nodes = cluster.nodes()
        status = [["Cluster store", "up" if cluster.up else "unreachable"], ["Nodes", str(len(nodes))]]
        status += [[f" {n.get('name')}", f"{n.get('addr')}{' (this host)' if n.get('node') == cluster.node else ''}"]
                   for n in nodes]
        return {"ClusterStore": cluster.settings.url, "ClusterAdvertise": cluster.addr, "SystemStatus": status}

    def disk_usage(self) -> dict[str, Any]:
        """`GET /system/df`: layers counted once, what each image shares, container layers."""
        from ..containers import mounts as mountpoints
        from ..oci.digest import chain_ids
        imgs = self.images.list()
        users: dict[str, int] = {}
        for c in self.containers.by_id.values():
            users[c.cfg.image_id] = users.get(c.cfg.image_id, 0) + 1
        layer_users: dict[str, int] = {}
        layer_size: dict[str, int] = {}
        chains = {}
        for img in imgs:
            chains[img.id] = chain_ids(img.config["rootfs"]["diff_ids"])
            for ch in chains[img.id]:
                layer_users[ch] = layer_users.get(ch, 0) + 1
                row = self.images.meta.snapshot(ch)
                layer_size[ch] = int(row["size"]) if row else 0
        out_images = []
        for img in imgs:
            shared = sum(layer_size[ch] for ch in chains[img.id] if layer_users[ch] > 1)
            out_images.append({"Id": img.id, "ParentId": img.parent, "RepoTags": img.tags,
                               "RepoDigests": img.digests, "Created": unix_seconds(img.created),
                               "Size": img.size, "SharedSize": shared, "VirtualSize": img.size,
                               "Labels": img.container_config.get("Labels") or {},
                               "Containers": users.get(img.id, 0)})
        out_ctrs = []
        for c in self.containers.list():
            rw = self.containers.rw_size(c)
            base = next((i.size for i in imgs if i.id == c.cfg.image_id), 0)
            out_ctrs.append({"Id": c.id, "Names": ["/" + c.name], "Image": c.cfg.image_ref, "ImageID": c.cfg.image_id,
                             "Command": " ".join([c.cfg.path, *c.cfg.args]), "Created": unix_seconds(c.cfg.created),
                             "Ports": [], "SizeRw": rw, "SizeRootFs": rw + base,
                             "Labels": c.cfg.config.get("Labels") or {}, "State": c.state.status.value,
                             "Status": c.state.status.value, "Mounts": mountpoints.inspect(c.cfg.mounts)})
        out_vols = []
        cv = self.containers.volumes
        if cv is not None:
            for v in cv.store.list():
                out_vols.append(v.view(usage=(cv.store.size(v), len(cv.users(v.name)))))
        return {"LayersSize": sum(layer_size.values()), "Images": out_images, "Containers": out_ctrs,
                "Volumes": out_vols, "BuildCache": []}

    def _daemon_id(self) -> str:
        p = os.path.join(self.cfg.data_root, "engine-id")
        try:
            return open(p).read().strip()
        except FileNotFoundError:
            import uuid
            v = str(uuid.uuid4())
            with open(p, "w") as f:
                f.write(v)
            return v


def _now() -> str:
    from ..images.service import now_iso
    return now_iso()


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _registry_config() -> dict[str, Any]:
    from ..registry import hosts
    return hosts.current.info()
