"""A bridge network — the default one (`dockyard0`, dockerd's `--bridge`/`--bip`/`--mtu`/`--icc`/
`--iptables`/`--ip-forward`) or a user-defined one (`br-<id>`): a veth into a container's network
namespace (its sandbox, made by `networks`) with an address from the pool, and DNAT rules for its
published ports. An endpoint is a plain dict the container keeps in its state, so the daemon
restores addresses and port rules at start-up and removes whatever is not a running container's.

Blocking: run in worker threads."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, InvalidArgument
from . import firewall, links
from .firewall import Port
from .ipam import Pool


@dataclass(frozen=True)
class BridgeConfig:
    """dockerd's bridge flags."""

    name: str = "dockyard0"
    bip: str = "172.29.0.1/16"
    mtu: int = 0
    icc: bool = True
    iptables: bool = True
    ip_forward: bool = True
    internal: bool = False        # no way in or out of the bridge, no default route
    masquerade: bool = True
    ip_range: str = ""            # where dynamic addresses come from (IPAM IPRange)
    reserved: tuple[str, ...] = ()   # IPAM AuxiliaryAddresses
    bip6: str = ""                # IPv6: the gateway's address and prefix on the bridge ('' = no IPv6)
    ip_range6: str = ""           # where dynamic IPv6 addresses come from


def parse_ports(host_config: dict[str, Any], exposed: dict[str, Any]) -> list[tuple[str, int, str, int]]:
    """(host ip, host port (0: any), protocol, container port) for PortBindings, and for every
    exposed port when PublishAllPorts."""
    out: list[tuple[str, int, str, int]] = []
    bindings = dict(host_config.get("PortBindings") or {})
    if host_config.get("PublishAllPorts"):
        for k in exposed or {}:
            bindings.setdefault(k, [{"HostIp": "", "HostPort": ""}])
    for key, binds in bindings.items():
        port, _, proto = str(key).partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp", "sctp") or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid port specification: {key!r}")
        for b in binds or [{"HostIp": "", "HostPort": ""}]:
            hp = str((b or {}).get("HostPort") or "0")
            if not hp.isdigit() or int(hp) > 65535:
                raise InvalidArgument(f"invalid host port {hp!r} for {key}")
            ip = str((b or {}).get("HostIp") or "")
            if ip:
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    raise InvalidArgument(f"invalid HostIp {ip!r}") from None
            out.append((ip, int(hp), proto, int(port)))
    return out


class Bridge:
    """One bridge network."""

    def __init__(self, cfg: BridgeConfig) -> None:
        iface = ipaddress.ip_interface(cfg.bip)
        if iface.version != 4:
            raise InvalidArgument(f"--bip {cfg.bip}: want an IPv4 address with a prefix")
        if len(cfg.name) > 15:
            raise InvalidArgument(f"--bridge {cfg.name}: a link name has at most 15 characters")
        self.cfg = cfg
        self.gateway, self.subnet = str(iface.ip), str(iface.network)
        self.pool = Pool(self.subnet, self.gateway, cfg.ip_range, cfg.reserved)
        self.rules = firewall.Rules(cfg.name, self.subnet, cfg.icc, cfg.internal, cfg.masquerade)
        self.gateway6 = self.subnet6 = ""
        self.pool6: Pool | None = None
        self.rules6: firewall.Rules | None = None
        if cfg.bip6:
            iface6 = ipaddress.ip_interface(cfg.bip6)
            self.gateway6, self.subnet6 = str(iface6.ip), str(iface6.network)
            self.pool6 = Pool(self.subnet6, self.gateway6, cfg.ip_range6, cfg.reserved)
            self.rules6 = firewall.Rules(cfg.name, self.subnet6, cfg.icc, cfg.internal, cfg.masquerade, tool="ip6tables")
        self.reserved: dict[str, list[socket.socket]] = {}   # container → sockets holding its host ports

    # --- the bridge itself ------------------------------------------------------------------------
    def setup(self) -> None:
        links.ensure_bridge(self.cfg.name, self.gateway, ipaddress.ip_network(self.subnet).prefixlen, self.cfg.mtu)
        if self.cfg.ip_forward:
            firewall.set_sysctl("net.ipv4.ip_forward", "1")
        firewall.set_sysctl(f"net.ipv4.conf.{self.cfg.name}.route_localnet", "1")   # DNAT from 127.0.0.1
        if self.rules6 is not None:
            self._setup6()
        if self.cfg.iptables:
            for r in self._rule_sets():
                r.install()

    def _rule_sets(self) -> list[firewall.Rules]:
        """iptables', and ip6tables' on an IPv6 bridge."""
        return [self.rules, *([self.rules6] if self.rules6 is not None else [])]

    def _setup6(self) -> None:
        firewall.set_sysctl(f"net.ipv6.conf.{self.cfg.name}.disable_ipv6", "0")
        links.add_address(self.cfg.name, self.gateway6, ipaddress.ip_network(self.subnet6).prefixlen)
        if self.cfg.ip_forward:   # as dockerd with --ipv6: the host forwards IPv6 (DNAT'd ports, routed traffic)
            firewall.set_sysctl("net.ipv6.conf.all.forwarding", "1")

    def teardown(self) -> None:
        """The bridge and its rules (when no container of ours is on it)."""
        if self.cfg.iptables:
            for r in self._rule_sets():
                r.remove()
        links.delete_link(self.cfg.name)

    def intact(self, endpoints: dict[str, dict[str, Any]]) -> bool:
        """Whether the bridge and every rule of ours are there for these (running) endpoints."""
        if links.index_of(self.cfg.name) is None:
            return False
        if not self.cfg.iptables:
            return True
        return self.rules.intact(sum(len(self._ports4(ep)) for ep in endpoints.values())) and \
            (self.rules6 is None or self.rules6.intact(sum(len(self._ports6(ep)) for ep in endpoints.values())))

    def repair(self, endpoints: dict[str, dict[str, Any]]) -> None:
        """Make the bridge and the rules again (someone flushed the firewall or deleted the link)."""
        links.ensure_bridge(self.cfg.name, self.gateway, ipaddress.ip_network(self.subnet).prefixlen, self.cfg.mtu)
        if self.rules6 is not None:
            self._setup6()
        if not self.cfg.iptables:
            return
        for r in self._rule_sets():
            r.install()
            r.flush_ports()
        for cid, ep in endpoints.items():
            self._publish(cid, ep)

    # --- endpoints ----------------------------------------------------------------------------------
    def attach(self, cid: str, sandbox: str, ifname: str, ports: list[tuple[str, int, str, int]],
               want_ip: str = "", want_mac: str = "", route: bool = True,
               link_local: tuple[str, ...] = (), want_ip6: str = "") -> dict[str, Any]:
        """Address (and an IPv6 one on an IPv6 network), veth into the sandbox as `ifname` (with
        the default routes when `route`), ports: the endpoint (all or nothing)."""
        if ports and self.cfg.internal:
            raise InvalidArgument("published ports (-p, -P) cannot reach a container on an internal network")
        ip = self.pool.take(cid, want_ip)
        ep: dict[str, Any] = {"ip": ip, "gateway": self.gateway, "prefix": ipaddress.ip_network(self.subnet).prefixlen,
                              "mac": want_mac or _mac(ip), "veth": veth_name(cid, self.cfg.name), "ifname": ifname,
                              "bridge": self.cfg.name, "ports": []}
        try:
            v6 = None
            if self.pool6 is not None:
                ep.update(ip6=self.pool6.take(cid, want_ip6), gateway6=self.gateway6,
                          prefix6=ipaddress.ip_network(self.subnet6).prefixlen)
                v6 = (ep["ip6"], ep["prefix6"], self.gateway6 if route and not self.cfg.internal else "")
            published = self._reserve(cid, ports)
            ep["ports"] = [p.__dict__ for p in published]
            links.plug(sandbox, self.cfg.name, ep["veth"], ifname, ip, ep["prefix"],
                       self.gateway if route and not self.cfg.internal else "", ep["mac"], self.cfg.mtu, link_local, v6)
            self._publish(cid, ep)
        except BaseException:
            self.detach(cid, ep)
            raise
        return ep

    @staticmethod
    def _ports4(ep: dict[str, Any]) -> list[Port]:
        """The published ports an IPv4 rule serves: those on every address or on an IPv4 one."""
        return [Port(**p) for p in ep.get("ports") or [] if ":" not in p["host_ip"]]

    @staticmethod
    def _ports6(ep: dict[str, Any]) -> list[Port]:
        """The published ports an IPv6 rule serves: those on every address or on an IPv6 one."""
        if not ep.get("ip6"):
            return []
        return [Port(**p) for p in ep.get("ports") or [] if not p["host_ip"] or ":" in p["host_ip"]]

    def _rules_for(self, ep: dict[str, Any]) -> list[tuple[firewall.Rules, str, list[Port]]]:
        """(rules, the container's address, its ports) for each address family it publishes on."""
        out = [(self.rules, ep["ip"], self._ports4(ep))]
        if self.rules6 is not None:
            out.append((self.rules6, ep.get("ip6", ""), self._ports6(ep)))
        return [x for x in out if x[2]]

    def _publish(self, cid: str, ep: dict[str, Any]) -> None:
        if self.cfg.iptables:
            for rules, ip, ports in self._rules_for(ep):
                rules.publish(cid, ip, ports)

    def _reserve(self, cid: str, ports: list[tuple[str, int, str, int]]) -> list[Port]:
        """Bind each host port (a random one for port 0) and keep the socket, so nothing else on
        the host takes it while the kernel forwards it: Docker's error if one is taken."""
        held: list[socket.socket] = []
        out: list[Port] = []
        self.reserved[cid] = held
        for ip, hp, proto, cp in ports:
            if ":" in ip and self.pool6 is None:
                raise InvalidArgument(f"HostIp {ip}: the network has no IPv6 to publish on")
            try:
                s = _bind(ip, hp, proto)
                held.append(s)
                port = s.getsockname()[1]
                if not ip and self.pool6 is not None:   # on every address: the IPv6 ones too
                    held.append(_bind("::", port, proto))
            except OSError:
                raise Conflict(f"driver failed programming external connectivity on endpoint {cid[:12]}: "
                               f"Bind for {ip or '0.0.0.0'}:{hp} failed: port is already allocated") from None
            out.append(Port(ip, port, proto, cp))
        return out

    def detach(self, cid: str, ep: dict[str, Any], unplug: bool = True) -> None:
        """Undo attach (what of it exists). The veth goes with the namespace once nothing holds
        it (the kernel does that on its own time); `unplug` also deletes it now — deleting a link
        waits for the kernel (~20 ms), so the daemon does that off a container's exit path."""
        if ep.get("ports") and self.cfg.iptables:
            for rules, ip, ports in self._rules_for(ep):
                rules.unpublish(cid, ip, ports)
        for s in self.reserved.pop(cid, []):
            s.close()
        if unplug and ep.get("veth"):
            links.delete_link(ep["veth"])
        if ep.get("ip"):
            self.pool.give_back(ep["ip"])
        if ep.get("ip6") and self.pool6 is not None:
            self.pool6.give_back(ep["ip6"])

    def restore(self, endpoints: dict[str, dict[str, Any]]) -> None:
        """Start-up: the running containers' endpoints keep their addresses and ports; every
        other veth on this bridge and port rule of ours goes."""
        if self.cfg.iptables:
            for r in self._rule_sets():
                r.flush_ports()
        for cid, ep in endpoints.items():
            self.pool.take(cid, ep["ip"])
            if ep.get("ip6") and self.pool6 is not None:
                self.pool6.take(cid, ep["ip6"])
            ports = [Port(**p) for p in ep.get("ports") or []]
            held: list[socket.socket] = []
            for p in ports:
                with contextlib.suppress(OSError):   # taken meanwhile: the rule stands all the same
                    held.append(_bind(p.host_ip, p.host_port, p.proto))
                if not p.host_ip and ep.get("ip6"):
                    with contextlib.suppress(OSError):
                        held.append(_bind("::", p.host_port, p.proto))
            self.reserved[cid] = held
            self._publish(cid, ep)
        keep_veths = {ep.get("veth") for ep in endpoints.values()}
        for name in links.enslaved_to(self.cfg.name):
            if name not in keep_veths:
                links.delete_link(name)


def _bind(ip: str, port: int, proto: str) -> socket.socket:
    """A socket bound to the host port (0: a free one), holding it."""
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    s = socket.socket(family, kind, socket.IPPROTO_SCTP if proto == "sctp" else 0)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((ip or "0.0.0.0", port))
    except OSError:
        s.close()
        raise
    return s


def veth_name(cid: str, bridge: str) -> str:
    """The host end of a container's veth on a bridge: `dy` and 11 hex digits of both."""
    return "dy" + hashlib.sha256(f"{cid}:{bridge}".encode()).hexdigest()[:11]


def _mac(ip: str) -> str:
    """02:42 and the address, as Docker makes them."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
