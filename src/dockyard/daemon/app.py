"""Composition root: the only code that knows every concrete class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..api.routers.containers import ContainersRouter
from ..api.routers.events import EventsRouter
from ..api.routers.execs import ExecsRouter
from ..api.routers.images import ImagesRouter
from ..api.routers.system import SystemRouter
from ..api.server import Routes, make_app
from ..containers import userns
from ..containers.execs import ExecService
from ..containers.filesystem import ContainerFS
from ..containers.health import HealthMonitor
from ..containers.networking import ContainerNetworks
from ..containers.runtimes import build_runtimes
from ..containers.service import ContainerService, Paths
from ..errors import InvalidArgument
from ..events.bus import EventBus
from ..images.service import ContainerRefs, ImageService
from ..monitor.client import MonitorClient
from ..store.content import ContentStore
from ..store.metadata import Metadata
from ..store.snapshots import Snapshotter
from .config import Config
from .system import SystemService


@dataclass
class Services:
    """Everything the daemon runs."""

    meta: Metadata
    images: ImageService
    containers: ContainerService
    system: SystemService
    app: web.Application
    events: EventBus
    health: HealthMonitor
    plugins: Any = None   # plugins.manager.PluginManager
    execs: Any = None     # containers.execs.ExecService


class _ContainerRefs(ContainerRefs):
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    def using(self, image_id: str) -> list[tuple[str, bool]]:
        return self.containers.using_image(image_id)


def build_services(cfg: Config) -> Services:
    """Wire stores, services and routers for one daemon."""
    data, run = Path(cfg.data_root), Path(cfg.exec_root)
    from ..registry import hosts
    from .config import registry_hosts
    hosts.configure(registry_hosts(cfg))
    data.mkdir(parents=True, exist_ok=True, mode=0o710)
    run.mkdir(parents=True, exist_ok=True, mode=0o700)
    meta = Metadata(data / "metadata.db")
    content = ContentStore(data / "content")
    content.clean_ingest()
    content.sweep_partials(24 * 3600)   # downloads nobody resumed for a day
    snaps = Snapshotter(data / "snapshots", meta)
    snaps.cleanup_incomplete()
    images = ImageService(content, snaps, meta)
    images.gc()  # what an interrupted import or load left behind
    runtimes = build_runtimes(cfg.runtimes, str(run))
    if cfg.default_runtime not in runtimes:
        raise InvalidArgument(f"default runtime {cfg.default_runtime!r} is not configured")
    bus = EventBus()
    images.on_event = lambda action, iid, attrs: bus.publish("image", action, iid, attrs)
    containers = ContainerService(meta, images, snaps, MonitorClient(str(run)), runtimes, cfg.default_runtime,
                                  Paths(data, run), cgroup_parent=cfg.cgroup_parent, log_opts=cfg.log_opts,
                                  log_driver=cfg.log_driver,
                                  default_ulimits=cfg.default_ulimits, remap=userns.resolve(cfg.userns_remap),
                                  init=bool(cfg.init), init_path=cfg.init_path, monitors=cfg.monitors,
                                  on_event=lambda action, c, attrs: bus.publish(
                                      "container", action, c.id, _container_attrs(c, attrs)))
    images.containers = _ContainerRefs(containers)
    from ..images.service import now_iso
    from ..network.networks import Networks
    from .config import bridge_config
    started = now_iso()
    nets = Networks(data, run, bridge_config(cfg), started, cfg.iptables, cfg.ip_forward, cfg.mtu)
    containers.networks = ContainerNetworks(nets, containers.by_id.values)
    from .config import cluster_settings
    settings = cluster_settings(cfg)
    if settings is not None:
        import socket

        from ..network.cluster import Cluster
        from ..network.overlay import OverlayDriver
        nets.overlay = OverlayDriver(nets, Cluster(settings, data, socket.gethostname()))
    from ..containers.volumeuse import ContainerVolumes
    from ..volumes.store import VolumeStore
    volumes = VolumeStore(data / "volumes")
    containers.volumes = ContainerVolumes(volumes, containers.by_id.values, data / "trash", now_iso)
    containers.on_network_event = lambda action, n, attrs: bus.publish(
        "network", action, n.id, {"name": n.name, "type": n.record["Driver"], **attrs})
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:   # netlink (pyroute2) runs its own event loop: not in this thread's
        pool.submit(nets.setup).result()
    system = SystemService(cfg, images, containers)
    routes = Routes()
    SystemRouter(system).routes(routes)
    ImagesRouter(images).routes(routes)
    ContainersRouter(containers, ContainerFS(containers)).routes(routes)
    from ..api.routers.networks import NetworksRouter
    NetworksRouter(containers).routes(routes)
    from ..api.routers.volumes import VolumesRouter
    VolumesRouter(containers).routes(routes)
    EventsRouter(bus).routes(routes)
    from ..api.routers.swarm import SwarmRouter
    SwarmRouter().routes(routes)
    from ..api.routers.plugins import PluginsRouter
    from ..plugins.manager import PluginManager
    plugins = PluginManager(data / "plugins", run / "plugins", containers.monitor,
                            runtimes[cfg.default_runtime].describe(), cfg.cgroup_parent,
                            in_use=lambda name: [v.name for v in volumes.by_name.values() if v.driver == name
                                                 or v.driver == name.rsplit(":", 1)[0]])

    def managed(name: str) -> tuple[str, str] | None:
        addr = plugins.socket_of(name, "docker.volumedriver/1.0")
        return (addr, plugins.rootfs(name)) if addr else None
    volumes.plugins.managed = managed
    containers.on_other_exit = plugins.on_exit
    PluginsRouter(plugins).routes(routes)
    execs = ExecService(containers)
    ExecsRouter(execs).routes(routes)
    from ..api.routers.build import BuildRouter
    from ..builder.engine import Builder
    BuildRouter(Builder(containers, data / "builder")).routes(routes)
    health = HealthMonitor(containers, execs)
    publish = containers.on_event

    def on_event(action: str, c: Any, attrs: dict[str, str]) -> None:
        publish(action, c, attrs)
        health.on_event(action, c)
    containers.on_event = on_event
    return Services(meta, images, containers, system, make_app(routes), bus, health, plugins, execs)


def _container_attrs(c: Any, extra: dict[str, str]) -> dict[str, str]:
    """Docker's container event attributes: its labels, image and name, then the event's own."""
    return {**(c.cfg.config.get("Labels") or {}), "image": c.cfg.image_ref, "name": c.name, **extra}
