"""Daemon configuration: dockerd's flag names plus daemon.json (flags win)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument


@dataclass
class Config:
    """Everything the daemon is told."""

    hosts: list[str] = field(default_factory=lambda: ["unix:///run/dockyard.sock"])
    data_root: str = "/var/lib/dockyard"
    exec_root: str = "/run/dockyard"
    pidfile: str = ""
    log_level: str = "info"
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_runtime: str = "dockyard"
    live_restore: bool = False
    cgroup_parent: str = "dockyard"
    group: str = "docker"
    log_opts: dict[str, str] = field(default_factory=dict)
    log_driver: str = "json-file"
    default_ulimits: dict[str, dict[str, Any]] = field(default_factory=dict)
    userns_remap: str = ""
    tls: bool | None = None           # None: not said; False: plain TCP asked for explicitly
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    registry_mirrors_for: dict[str, list[str]] = field(default_factory=dict)   # dockyard's: any registry
    registry_certs_dir: str = "/etc/docker/certs.d"
    insecure_loopback: bool = True    # dockerd: always; dockyard lets tests verify TLS on loopback
    max_concurrent_downloads: int = 3
    monitors: int = 0                  # container monitors (groups); 0: one per CPU, at most 4
    bridge: str = "dockyard0"          # "none": no default bridge (containers get a namespace with lo only)
    bip: str = "172.29.0.1/16"
    fixed_cidr: str = ""               # where the default bridge's addresses come from (within bip's subnet)
    ipv6: bool = False                 # IPv6 on the default bridge (needs fixed_cidr_v6)
    fixed_cidr_v6: str = ""            # the default bridge's IPv6 subnet (its gateway is the first address)
    mtu: int = 0
    icc: bool = True
    iptables: bool = True
    ip_forward: bool = True
    max_concurrent_uploads: int = 5
    init: bool = False                 # every container gets --init unless it says otherwise
    init_path: str = ""                # the init binary (default: docker-init, else tini-static, on PATH)
    cri_socket: str = ""               # unix:///PATH: serve the Kubernetes CRI there (off when empty)
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dir: list[str] = field(default_factory=lambda: ["/opt/cni/bin", "/usr/lib/cni"])
    pod_infra_image: str = ""          # a pause image for sandboxes instead of Dockyard's own holder
    streaming_address: str = "127.0.0.1:0"   # the CRI streaming server (exec, attach, port-forward)
    streaming_idle_timeout: int = 4 * 3600
    cluster_store: str = ""            # etcd://HOST:PORT[,...]: overlay networks across hosts (off when empty)
    cluster_advertise: str = ""        # this host's address (or the interface carrying it) on the underlay
    cluster_store_opts: dict[str, str] = field(default_factory=dict)   # lease-ttl, vxlan-port


def parser() -> argparse.ArgumentParser:
    """dockerd-compatible flags."""
    p = argparse.ArgumentParser(prog="dockyardd", description="Dockyard engine daemon")
    p.add_argument("-H", "--host", action="append", dest="hosts", default=None)
    p.add_argument("--data-root", "-g", dest="data_root")
    p.add_argument("--exec-root", dest="exec_root")
    p.add_argument("--pidfile", "-p", dest="pidfile")
    p.add_argument("--log-level", "-l", dest="log_level", choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("--config-file", dest="config_file", default="/etc/dockyard/daemon.json")
    p.add_argument("--default-runtime", dest="default_runtime")
    p.add_argument("--add-runtime", action="append", dest="add_runtime", default=[],
                   help="NAME=PATH, as dockerd's --add-runtime")
    p.add_argument("--live-restore", action="store_true", default=None)
    p.add_argument("--cgroup-parent", dest="cgroup_parent")
    p.add_argument("--group", "-G", dest="group")
    p.add_argument("--log-opt", action="append", dest="log_opt", default=[],
                   help="KEY=VALUE, default options of the log driver (max-size, max-file, compress, ...)")
    p.add_argument("--log-driver", dest="log_driver")
    p.add_argument("--userns-remap", dest="userns_remap",
                   help="default | USER[:GROUP]: map containers' root to the user's /etc/subuid range")
    p.add_argument("--tls", nargs="?", const="true", default=None, help="use TLS; --tls=false allows plain TCP")
    p.add_argument("--tlsverify", nargs="?", const="true", default=None,
                   help="TLS with client certificates signed by --tlscacert")
    p.add_argument("--tlscacert", dest="tlscacert")
    p.add_argument("--tlscert", dest="tlscert")
    p.add_argument("--tlskey", dest="tlskey")
    p.add_argument("--default-ulimit", action="append", dest="default_ulimit", default=[],
                   help="NAME=SOFT[:HARD], default ulimits for containers (as dockerd)")
    p.add_argument("--insecure-registry", action="append", dest="insecure_registry", default=[],
                   help="HOST[:PORT] or CIDR: a registry spoken to without TLS verification (or over HTTP)")
    p.add_argument("--registry-mirror", action="append", dest="registry_mirror", default=[],
                   help="URL of a Docker Hub mirror")
    p.add_argument("--registry-certs-dir", dest="registry_certs_dir",
                   help="where <host[:port]>/ca.crt and client certificates are (default /etc/docker/certs.d)")
    p.add_argument("--monitors", dest="monitors", type=int,
                   help="container monitors: the output of containers in different groups is carried on "
                        "different cores (default: one per CPU, at most 4)")
    p.add_argument("--max-concurrent-downloads", dest="max_concurrent_downloads", type=int,
                   help="layers fetched at once per pull (default 3)")
    p.add_argument("--max-concurrent-uploads", dest="max_concurrent_uploads", type=int,
                   help="layers pushed at once per push (default 5)")
    p.add_argument("-b", "--bridge", dest="bridge", help="the default bridge's name, or none (default dockyard0)")
    p.add_argument("--bip", dest="bip", help="the default bridge's address and prefix (default 172.29.0.1/16)")
    p.add_argument("--mtu", dest="mtu", type=int, help="MTU of the bridge and the containers' eth0")
    p.add_argument("--ipv6", dest="ipv6", nargs="?", const="true", choices=("true", "false"),
                   help="IPv6 on the default bridge (with --fixed-cidr-v6)")
    p.add_argument("--fixed-cidr-v6", dest="fixed_cidr_v6", help="the default bridge's IPv6 subnet (a ULA /64, say)")
    p.add_argument("--fixed-cidr", dest="fixed_cidr", help="the default bridge hands out addresses from this "
                   "range only (within --bip's subnet)")
    for flag in ("icc", "iptables", "ip-forward"):
        p.add_argument(f"--{flag}", dest=flag.replace("-", "_"), choices=["true", "false"])
    p.add_argument("--init", action="store_true", default=None,
                   help="run an init (tini) as PID 1 of every container that does not say otherwise")
    p.add_argument("--init-path", dest="init_path", help="the init binary (default: docker-init on PATH)")
    p.add_argument("--insecure-loopback", dest="insecure_loopback", choices=["true", "false"],
                   help="treat 127.0.0.0/8 and ::1 as insecure registries, as dockerd always does (default true)")
    p.add_argument("--cri-socket", dest="cri_socket", help="unix:///PATH: serve the Kubernetes CRI (runtime.v1) there")
    p.add_argument("--cni-conf-dir", dest="cni_conf_dir", help="CNI network configurations (default /etc/cni/net.d)")
    p.add_argument("--cni-bin-dir", dest="cni_bin_dir", action="append", default=None,
                   help="where CNI plugin binaries are (repeatable; default /opt/cni/bin and /usr/lib/cni)")
    p.add_argument("--pod-infra-image", dest="pod_infra_image",
                   help="run this image as each pod sandbox's holder instead of Dockyard's built-in one")
    p.add_argument("--streaming-address", dest="streaming_address",
                   help="HOST:PORT of the CRI streaming server (default 127.0.0.1 and a free port)")
    p.add_argument("--streaming-idle-timeout", dest="streaming_idle_timeout", type=int,
                   help="seconds a CRI exec/attach/port-forward stream may stay idle (default 14400)")
    p.add_argument("--cluster-store", dest="cluster_store",
                   help="etcd://HOST:PORT[,HOST:PORT...]: share overlay networks with the other hosts of that store")
    p.add_argument("--cluster-advertise", dest="cluster_advertise",
                   help="IP or interface: this host's address on the underlay (VXLAN traffic comes to it)")
    p.add_argument("--cluster-store-opt", dest="cluster_store_opt", action="append", default=[],
                   help="KEY=VALUE: lease-ttl (seconds a dead host's endpoints live on, default 15), "
                        "vxlan-port (UDP port of VXLAN, default 4789)")
    return p


_JSON_KEYS = {"hosts": "hosts", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
              "log-level": "log_level", "runtimes": "runtimes", "default-runtime": "default_runtime",
              "live-restore": "live_restore", "cgroup-parent": "cgroup_parent", "group": "group",
              "log-opts": "log_opts", "log-driver": "log_driver", "default-ulimits": "default_ulimits",
              "userns-remap": "userns_remap",
              "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert",
              "tlskey": "tlskey", "insecure-registries": "insecure_registries",
              "registry-mirrors": "registry_mirrors", "registry-mirrors-for": "registry_mirrors_for",
              "registry-certs-dir": "registry_certs_dir", "insecure-loopback": "insecure_loopback",
              "max-concurrent-downloads": "max_concurrent_downloads", "monitors": "monitors",
              "max-concurrent-uploads": "max_concurrent_uploads", "bridge": "bridge", "bip": "bip", "mtu": "mtu",
              "fixed-cidr": "fixed_cidr", "ipv6": "ipv6", "fixed-cidr-v6": "fixed_cidr_v6", "icc": "icc",
              "iptables": "iptables", "ip-forward": "ip_forward",
              "init": "init", "init-path": "init_path", "cri-socket": "cri_socket", "cni-conf-dir": "cni_conf_dir",
              "cni-bin-dir": "cni_bin_dir", "pod-infra-image": "pod_infra_image",
              "streaming-address": "streaming_address", "streaming-idle-timeout": "streaming_idle_timeout",
              "cluster-store": "cluster_store", "cluster-advertise": "cluster_advertise",
              "cluster-store-opts": "cluster_store_opts"}


def load(argv: list[str] | None = None) -> Config:
    """Flags over daemon.json over defaults."""
    ns = parser().parse_args(argv)
    cfg = Config()
    path = ns.config_file
    try:
        with open(path) as f:
            text = f.read()
        data = json.loads(text) if text.strip() else {}
    except FileNotFoundError:
        data = {}
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"unable to configure the daemon: {path}: {e}") from None
    for k, v in data.items():
        if k not in _JSON_KEYS:
            raise InvalidArgument(f"the following directives don't match any configuration option: {k}")
        setattr(cfg, _JSON_KEYS[k], v)
    for attr in ("hosts", "data_root", "exec_root", "pidfile", "log_level", "default_runtime", "live_restore",
                 "cgroup_parent", "group", "userns_remap", "init", "init_path"):
        v = getattr(ns, attr)
        if v is not None:
            setattr(cfg, attr, v)
    for item in ns.log_opt:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise InvalidArgument(f"invalid --log-opt {item!r}: want KEY=VALUE")
        cfg.log_opts[k] = v
    if ns.log_driver is not None:
        cfg.log_driver = ns.log_driver
    if not isinstance(cfg.log_opts, dict) or not all(isinstance(v, str) for v in cfg.log_opts.values()):
        raise InvalidArgument("log-opts must be an object of strings")
    from ..containers import logconfig
    cfg.log_driver = logconfig.check_driver(cfg.log_driver or logconfig.DRIVER)
    logconfig.merge({}, cfg.log_driver, cfg.log_opts)   # the same checks as a container's
    for item in ns.default_ulimit:
        name, eq, val = item.partition("=")
        soft, _, hard = val.partition(":")
        try:
            cfg.default_ulimits[name] = {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
        except ValueError:
            raise InvalidArgument(f"invalid --default-ulimit {item!r}: want NAME=SOFT[:HARD]") from None
    if not isinstance(cfg.default_ulimits, dict):
        raise InvalidArgument("default-ulimits must be an object")
    from ..containers.resources import ulimits
    ulimits({}, cfg.default_ulimits)
    for item in ns.add_runtime:
        name, _, rpath = item.partition("=")
        if not name or not rpath:
            raise InvalidArgument(f"invalid --add-runtime {item!r}: want NAME=PATH")
        cfg.runtimes[name] = {"path": rpath}
    for flag in ("tls", "tlsverify"):
        v = getattr(ns, flag)
        if v is not None:
            if v.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid --{flag}={v}: want true or false")
            setattr(cfg, flag, v.lower() in ("true", "1"))
    for attr in ("tlscacert", "tlscert", "tlskey"):
        if getattr(ns, attr):
            setattr(cfg, attr, getattr(ns, attr))
    cfg.insecure_registries = [*cfg.insecure_registries, *ns.insecure_registry]
    cfg.registry_mirrors = [*cfg.registry_mirrors, *ns.registry_mirror]
    if ns.registry_certs_dir:
        cfg.registry_certs_dir = ns.registry_certs_dir
    if ns.insecure_loopback:
        cfg.insecure_loopback = ns.insecure_loopback == "true"
    if ns.monitors is not None:
        cfg.monitors = ns.monitors
    if not isinstance(cfg.monitors, int) or isinstance(cfg.monitors, bool) or cfg.monitors < 0:
        raise InvalidArgument(f"monitors must be a positive integer (0: the default), not {cfg.monitors!r}")
    if cfg.monitors == 0:
        # measured on 2 CPUs (bench/streams, four 100 MB log streams at once): 2.93 s with one
        # monitor, 2.54 s with two, though the producers take ~60% of the CPU
        cfg.monitors = min(len(os.sched_getaffinity(0)), 4)
    for attr in ("max_concurrent_downloads", "max_concurrent_uploads"):
        if getattr(ns, attr) is not None:
            setattr(cfg, attr, getattr(ns, attr))
        v = getattr(cfg, attr)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InvalidArgument(f"{attr.replace('_', '-')} must be a positive integer, not {v!r}")
    for attr in ("bridge", "bip", "mtu", "fixed_cidr", "fixed_cidr_v6"):
        if getattr(ns, attr) is not None:
            setattr(cfg, attr, getattr(ns, attr))
    for attr in ("icc", "iptables", "ip_forward", "ipv6"):
        if getattr(ns, attr) is not None:
            setattr(cfg, attr, getattr(ns, attr) == "true")
        if not isinstance(getattr(cfg, attr), bool):
            raise InvalidArgument(f"{attr.replace('_', '-')} must be true or false")
    for attr in ("cri_socket", "cni_conf_dir", "cni_bin_dir", "pod_infra_image", "streaming_address",
                 "streaming_idle_timeout"):
        if getattr(ns, attr) is not None:
            setattr(cfg, attr, getattr(ns, attr))
    for attr in ("cluster_store", "cluster_advertise"):
        if getattr(ns, attr) is not None:
            setattr(cfg, attr, getattr(ns, attr))
    for item in ns.cluster_store_opt:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise InvalidArgument(f"invalid --cluster-store-opt {item!r}: want KEY=VALUE")
        cfg.cluster_store_opts = {**cfg.cluster_store_opts, k: v}
    _check_cri(cfg)
    cluster_settings(cfg)   # refuses what it cannot use
    bridge_config(cfg)   # refuses what it cannot use
    registry_hosts(cfg)   # refuses what it cannot use
    _check_hosts(cfg)
    return cfg


def cluster_settings(cfg: Config) -> Any:
    """The cluster store's settings (`network.cluster.Settings`), None without --cluster-store."""
    from ..network.cluster import Settings
    if not cfg.cluster_store:
        if cfg.cluster_advertise or cfg.cluster_store_opts:
            raise InvalidArgument("--cluster-advertise and --cluster-store-opt need --cluster-store")
        return None
    if not cfg.cluster_advertise:
        raise InvalidArgument("--cluster-store needs --cluster-advertise (this host's IP or interface on the underlay)")
    if not isinstance(cfg.cluster_store_opts, dict):
        raise InvalidArgument("cluster-store-opts must be an object of strings")
    return Settings.parse(str(cfg.cluster_store), str(cfg.cluster_advertise),
                          {str(k): str(v) for k, v in cfg.cluster_store_opts.items()})


def registry_hosts(cfg: Config) -> Any:
    """The registry settings (`registry.hosts.RegistryHosts`) of a configuration."""
    from ..registry.hosts import RegistryHosts
    if not isinstance(cfg.insecure_registries, list) or not isinstance(cfg.registry_mirrors, list):
        raise InvalidArgument("insecure-registries and registry-mirrors must be lists")
    if not isinstance(cfg.registry_mirrors_for, dict) or not all(
            isinstance(v, list) for v in cfg.registry_mirrors_for.values()):
        raise InvalidArgument("registry-mirrors-for must map registry host[:port] to lists of mirror URLs")
    if not isinstance(cfg.insecure_loopback, bool):
        raise InvalidArgument("insecure-loopback must be true or false")
    return RegistryHosts(list(cfg.insecure_registries), list(cfg.registry_mirrors), dict(cfg.registry_mirrors_for),
                         str(cfg.registry_certs_dir), cfg.insecure_loopback, cfg.max_concurrent_downloads,
                         cfg.max_concurrent_uploads)


def _check_cri(cfg: Config) -> None:
    if cfg.cri_socket and (not isinstance(cfg.cri_socket, str) or not cfg.cri_socket.startswith("unix:///")):
        raise InvalidArgument(f"cri-socket {cfg.cri_socket!r}: want unix:///PATH")
    if isinstance(cfg.cni_bin_dir, str):
        cfg.cni_bin_dir = [cfg.cni_bin_dir]
    if not isinstance(cfg.cni_bin_dir, list) or not all(isinstance(d, str) for d in cfg.cni_bin_dir):
        raise InvalidArgument("cni-bin-dir must be a list of directories")
    host, _, port = str(cfg.streaming_address).rpartition(":")
    if not host or not port.isdigit():
        raise InvalidArgument(f"streaming-address {cfg.streaming_address!r}: want HOST:PORT (port 0: any free one)")
    if not isinstance(cfg.streaming_idle_timeout, int) or cfg.streaming_idle_timeout < 1:
        raise InvalidArgument("streaming-idle-timeout must be a positive number of seconds")


def _check_hosts(cfg: Config) -> None:
    """unix:// always; tcp:// only with --tlsverify and its three files, or with an explicit
    --tls=false (dockerd refuses unauthenticated TCP unless told so)."""
    for h in cfg.hosts:
        if h.startswith("unix://"):
            continue
        if not h.startswith("tcp://"):
            raise InvalidArgument(f"invalid host {h}: want unix://PATH or tcp://ADDR:PORT")
        addr = h[len("tcp://"):]
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidArgument(f"invalid host {h}: want tcp://ADDR:PORT")
        if cfg.tlsverify:
            missing = [f"--{a}" for a in ("tlscacert", "tlscert", "tlskey") if not getattr(cfg, a)]
            if missing:
                raise InvalidArgument(f"--tlsverify needs {', '.join(missing)}")
        elif cfg.tls is not False:
            raise InvalidArgument(f"{h}: listening on TCP needs --tlsverify with --tlscacert, --tlscert and --tlskey "
                                  "(client certificates); to allow unauthenticated plain TCP say --tls=false")


def bridge_config(cfg: Config) -> Any:
    """The default bridge's settings (`network.bridge.BridgeConfig`), None for --bridge=none."""
    import ipaddress

    from ..network.bridge import BridgeConfig
    if cfg.bridge in ("none", ""):
        return None
    if not isinstance(cfg.bridge, str) or len(cfg.bridge) > 15 or "/" in cfg.bridge or " " in cfg.bridge:
        raise InvalidArgument(f"bridge {cfg.bridge!r}: not a link name (at most 15 characters)")
    try:
        iface = ipaddress.ip_interface(str(cfg.bip))
    except ValueError:
        raise InvalidArgument(f"bip {cfg.bip!r}: want an IPv4 address with a prefix, as 172.29.0.1/16") from None
    if iface.version != 4 or iface.network.prefixlen > 30 or iface.ip == iface.network.network_address:
        raise InvalidArgument(f"bip {cfg.bip!r}: want an IPv4 host address with a prefix of at most /30")
    if not isinstance(cfg.mtu, int) or isinstance(cfg.mtu, bool) or (cfg.mtu and not 68 <= cfg.mtu <= 65535):
        raise InvalidArgument(f"mtu {cfg.mtu!r}: want 68 to 65535")
    fixed = ""
    if cfg.fixed_cidr:
        try:
            rng = ipaddress.ip_network(str(cfg.fixed_cidr), strict=False)
        except ValueError:
            raise InvalidArgument(f"fixed-cidr {cfg.fixed_cidr!r}: want an IPv4 network, as 172.29.5.0/24") from None
        if rng.version != 4 or not rng.subnet_of(iface.network):
            raise InvalidArgument(f"fixed-cidr {rng}: not within the bridge's subnet {iface.network}")
        fixed = str(rng)
    bip6 = ""
    if cfg.ipv6:   # dockerd's rule: the default bridge's IPv6 subnet is --fixed-cidr-v6, its gateway the first address
        try:
            net6 = ipaddress.ip_network(str(cfg.fixed_cidr_v6), strict=False)
        except ValueError:
            raise InvalidArgument(f"ipv6: give the default bridge an IPv6 subnet with --fixed-cidr-v6 (not "
                                  f"{cfg.fixed_cidr_v6!r})") from None
        if net6.version != 6 or net6.prefixlen > 124:
            raise InvalidArgument(f"fixed-cidr-v6 {cfg.fixed_cidr_v6!r}: want an IPv6 network of at most /124")
        bip6 = f"{net6.network_address + 1}/{net6.prefixlen}"
    elif cfg.fixed_cidr_v6:
        raise InvalidArgument("fixed-cidr-v6 is for the default bridge's IPv6: it needs --ipv6")
    return BridgeConfig(cfg.bridge, str(cfg.bip), cfg.mtu, cfg.icc, cfg.iptables, cfg.ip_forward, ip_range=fixed,
                        bip6=bip6)
