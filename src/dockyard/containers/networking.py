"""Containers on networks: which networks a container asks for (NetworkMode and
NetworkingConfig at create, connect and disconnect later), its sandbox and endpoints while it runs,
the embedded DNS's view of who is where, and what inspect shows of it."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import Conflict, EngineError, InvalidArgument, NotFound, PermissionDenied
from ..network import links
from ..network.bridge import parse_ports
from ..network.dns import ADDRESS, Resolver
from ..network.networks import PREDEFINED, Network, Networks
from ..network.overlay import Overlay
from . import etcfiles, fields
from .model import Container

log = logging.getLogger(__name__)
_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
SPECIAL = ("host", "none")


def endpoint_id(cid: str, network_id: str) -> str:
    return hashlib.sha256(f"{cid}:{network_id}".encode()).hexdigest()


def primary(hc: dict[str, Any]) -> str:
    """The network NetworkMode names ('' for host, none and container:)."""
    nm = hc.get("NetworkMode") or "default"
    if nm in SPECIAL or nm.startswith("container:"):
        return ""
    return "bridge" if nm == "default" else nm


class ContainerNetworks:
    """Networks and containers together (the container service owns one)."""

    def __init__(self, nets: Networks, containers: Callable[[], Iterable[Container]]) -> None:
        self.nets = nets
        self.containers = containers
        self.dns = Resolver(self._names, self._reverse, self._upstream)

    # --- create: what a container asks for ------------------------------------------------------------
    def wanted(self, hc: dict[str, Any], nc: Any, mac: str) -> dict[str, Any]:
        """{network name: endpoint settings}, the primary network first; checked against the
        networks as they are now (dockerd's messages)."""
        eps = dict((nc or {}).get("EndpointsConfig") or {})
        first = primary(hc)
        if "default" in eps:   # a current docker CLI names the default network's endpoint "default"
            ep = eps.pop("default")
            eps.setdefault(first or "bridge", ep)
        nm = hc.get("NetworkMode") or "default"
        for ref in eps:   # dockerd's 404 for a network that does not exist, before anything else
            if ref not in ("default", "bridge", first, *SPECIAL):
                self.nets.get(ref)
        if not first:
            if eps and any(not fields.empty(v) for v in eps.values()):
                raise InvalidArgument(f"container cannot be connected to network endpoints with network mode {nm}")
            if mac and nm != "none":
                raise InvalidArgument("conflicting options: mac-address and the network mode")
            return {}
        if first == "bridge" and self.nets.default is None:
            if eps or mac:
                raise InvalidArgument("this daemon runs with --bridge=none: no default bridge to connect to")
            return {}   # lo only, as before
        out: dict[str, Any] = {}
        try:
            net = self.nets.get(first)
        except NotFound:   # as dockerd: the container is made, and its start fails while the network is missing
            conf = fields.canonical_endpoint(dict(eps.pop(first, None) or {}))
            if mac:
                conf["MacAddress"] = mac
            out[first] = _endpoint(f"endpoint on {first}", conf)
            if eps:
                raise InvalidArgument(f"network {first} not found: the container cannot be connected to others") from None
            return out
        conf = fields.canonical_endpoint(dict(eps.pop(first, None) or eps.pop(net.name, None) or eps.pop(net.id, None) or {}))
        if mac:
            conf["MacAddress"] = mac
        out[net.name] = self._settings(net, conf)
        for ref, ep in eps.items():
            other = self.nets.get(ref)
            if other.name in out:
                continue
            if other.bridge is None:
                raise InvalidArgument(f"container cannot be connected to the {other.name} network and another one")
            out[other.name] = self._settings(other, fields.canonical_endpoint(dict(ep or {})))
        return out

    def _settings(self, net: Network, conf: dict[str, Any]) -> dict[str, Any]:
        """An endpoint's settings, checked against the network it is on."""
        ep = _endpoint(f"endpoint on {net.name}", conf)
        if net.bridge is None:
            raise InvalidArgument(f"network {net.name}: containers join it with NetworkMode {net.name}")
        if not net.dns and ep["Aliases"]:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        ipam = ep["IPAMConfig"] or {}
        _check_address(net, ipam.get("IPv4Address") or "", net.bridge.subnet, "IPv4")
        _check_address(net, ipam.get("IPv6Address") or "", net.bridge.subnet6, "IPv6")
        if ep["Links"] and not net.dns:
            raise InvalidArgument("links on the default bridge are HostConfig.Links (--link), not an endpoint's")
        return {**ep, "NetworkID": net.id}

    def with_short_id(self, c: Container, conf: dict[str, Any], name: str) -> dict[str, Any]:
        """dockerd's rule when an endpoint is made: on a user-defined network the container's
        short ID is one of its aliases (docker-compose compares them, and reconnects otherwise)."""
        try:
            dns = self.nets.get(name).dns
        except NotFound:
            return conf
        aliases = list(conf.get("Aliases") or [])
        if not dns or c.id[:12] in aliases:
            return conf
        return {**conf, "Aliases": [*aliases, c.id[:12]]}

    def resolved(self, c: Container) -> dict[str, Any]:
        """The container's networks as its start makes them: the short-ID alias added, the network
        ID of one that exists now filled in."""
        out = {}
        for name, conf in c.cfg.networks.items():
            conf = self.with_short_id(c, conf, name)
            if not conf.get("NetworkID"):
                try:
                    conf = {**conf, "NetworkID": self.nets.get(name).id}
                except NotFound:
                    pass
            out[name] = conf
        return out

    # --- start and stop ----------------------------------------------------------------------------------------
    def plug(self, c: Container) -> str:
        """Sandbox and an endpoint on each wanted network (blocking; all or nothing): the
        sandbox's path, '' when the container has no networks of ours."""
        if not c.cfg.networks:
            return ""
        sandbox = self.nets.make_sandbox(c.id)
        c.state.sandbox, c.state.endpoints = sandbox, {}
        try:
            for name, conf in c.cfg.networks.items():
                self._plug_one(c, name, conf)
        except BaseException:
            self.unplug(c, now=True)
            raise
        return sandbox

    def _plug_one(self, c: Container, name: str, conf: dict[str, Any]) -> dict[str, Any]:
        try:
            net = self.nets.get(name)
        except NotFound:
            raise NotFound(f"network {name} not found") from None
        assert net.bridge is not None
        first = not c.state.endpoints
        ports = parse_ports(c.cfg.host_config, c.cfg.config.get("ExposedPorts") or {}) if first else []
        used = {ep["ifname"] for ep in c.state.endpoints.values()} | \
            {ep["gw"]["ifname"] for ep in c.state.endpoints.values() if ep.get("gw")}
        ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
        route = not net.bridge.cfg.internal and not any(ep.get("route") for ep in c.state.endpoints.values())
        ipam = conf.get("IPAMConfig") or {}
        args = (c.id, c.state.sandbox, ifname, ports, ipam.get("IPv4Address") or "", conf.get("MacAddress") or "", route,
                tuple(ipam.get("LinkLocalIPs") or ()), ipam.get("IPv6Address") or "")
        if isinstance(net.bridge, Overlay):   # the cluster's copy of the endpoint carries its names
            ep = net.bridge.attach(*args, who={"name": c.name, "aliases": sorted(_dns_names(c, net.name, conf))},
                                   used=used)
        else:
            ep = net.bridge.attach(*args)
        ep.update({"network_id": net.id, "route": route, "aliases": list(conf.get("Aliases") or [])})
        c.state.endpoints[net.name] = ep
        return ep

    def unplug(self, c: Container, now: bool = False) -> list[str]:
        """Every endpoint and the sandbox (blocking); the veths left to delete (unless `now`:
        deleting a link waits for the kernel, so the daemon does that off a container's exit path)."""
        veths = []
        for name, ep in list(c.state.endpoints.items()):
            try:
                net = self.nets.get(name)
                if net.bridge is not None:
                    net.bridge.detach(c.id, ep, unplug=now)
            except (OSError, EngineError) as e:
                log.warning("removing the endpoint of %s on %s: %s", c.id[:12], name, e)
            if ep.get("veth") and not now:
                veths.append(ep["veth"])
        if c.state.sandbox:
            self.nets.drop_sandbox(c.id)
        c.state.sandbox, c.state.endpoints = "", {}
        return veths

    def uses_dns(self, c: Container) -> bool:
        return any(self._dns_network(n) for n in c.state.endpoints)

    def wants_dns(self, c: Container) -> bool:
        return any(self._dns_network(n) for n in c.cfg.networks)

    def _dns_network(self, name: str) -> bool:
        try:
            return self.nets.get(name).dns
        except NotFound:
            return False

    async def serve_dns(self, c: Container) -> None:
        if c.state.sandbox and self.uses_dns(c):
            await self.dns.serve(c.id, c.state.sandbox)

    def hosts_lines(self, c: Container) -> list[str]:
        """The container's addresses, for its /etc/hosts."""
        return [ep["ip"] for ep in c.state.endpoints.values()]

    def embedded_dns(self, c: Container) -> str:
        return ADDRESS if self.wants_dns(c) else ""

    # --- connect and disconnect ---------------------------------------------------------------------------------
    def check_connect(self, c: Container, net: Network, conf: dict[str, Any]) -> dict[str, Any]:
        nm = c.cfg.host_config.get("NetworkMode") or "default"
        if net.name in SPECIAL or nm in SPECIAL or nm.startswith("container:"):
            raise PermissionDenied("container sharing network namespace with another container or host cannot be "
                                   "connected to any other network" if nm.startswith("container:") else
                                   "container cannot be disconnected from host network or connected to host network"
                                   if "host" in (nm, net.name) else
                                   "container cannot be connected to multiple networks with one of the networks in "
                                   "private (none) mode")
        if net.name in c.cfg.networks:
            raise PermissionDenied(f"endpoint with name {c.name} already exists in network {net.name}")
        conf = fields.canonical_endpoint(dict(conf or {}))
        if not conf.get("MacAddress") and net.name == primary(c.cfg.host_config) and c.cfg.config.get("MacAddress"):
            conf["MacAddress"] = c.cfg.config["MacAddress"]   # back on its primary network: its own MAC again
        settings = self._settings(net, conf)
        return self.with_short_id(c, settings, net.name) if c.state.running else settings

    def connect_running(self, c: Container, net: Network, conf: dict[str, Any]) -> dict[str, Any]:
        """Plug a running container into one more network (blocking)."""
        if not c.state.sandbox:
            raise Conflict(f"container {c.id[:12]} runs without a network namespace of ours: it cannot be connected")
        return self._plug_one(c, net.name, conf)

    def disconnect_running(self, c: Container, net: Network) -> None:
        """Unplug one network of a running container (blocking); the default route moves to
        another network when it was on this one."""
        ep = c.state.endpoints.pop(net.name, None)
        if ep is None:
            return
        assert net.bridge is not None
        net.bridge.detach(c.id, ep, unplug=True)
        if ep.get("route"):
            nxt = next((e for n, e in c.state.endpoints.items() if not self._internal(n)), None)
            if nxt is not None:
                nxt["route"] = True
            links.set_default_route(c.state.sandbox, nxt["gateway"] if nxt else "", (nxt or {}).get("gateway6", ""))

    def _internal(self, name: str) -> bool:
        try:
            br = self.nets.get(name).bridge
        except NotFound:
            return True
        return br is None or br.cfg.internal

    # --- the embedded DNS's view ------------------------------------------------------------------------------------
    def _running(self) -> list[Container]:
        """Containers with endpoints: plugged before their process starts (which may ask the DNS
        before the daemon has marked it running) and unplugged when it stops."""
        return [c for c in self.containers() if c.state.endpoints]

    def _names(self, cid: str, qname: str) -> list[str] | None:
        running = self._running()   # once per query
        me = next((c for c in running if c.id == cid), None)
        if me is None:
            return None
        for item in me.cfg.host_config.get("Links") or []:   # a link's alias: seen by this container only
            target_name, alias = parse_link(item)
            if qname == alias.lower():
                target = next((o for o in running if o.name == target_name), None)
                if target is not None:
                    try:
                        return [link_address(target, me)]
                    except Conflict:
                        pass
        for net_name, conf in me.cfg.networks.items():   # links of an endpoint: on that network, found lazily
            for item in conf.get("Links") or []:
                target_name, alias = parse_link(item)
                if qname in (alias.lower(), target_name.lower()):
                    target = next((o for o in running if o.name == target_name and net_name in o.state.endpoints), None)
                    if target is not None:
                        return [target.state.endpoints[net_name]["ip"]]
        mine = {n for n in me.state.endpoints if self._dns_network(n)}
        tries = [(qname, mine)] + [(qname[: -len(n) - 1], {n}) for n in mine if qname.endswith("." + n.lower())]
        for name, nets in tries:
            found = [o.state.endpoints[n]["ip"] for o in running for n in sorted(nets & o.state.endpoints.keys())
                     if name in _dns_names(o, n)]
            found += self._remote(me, nets, name)
            if found:
                return list(dict.fromkeys(found))
        return None

    def _remote(self, me: Container, nets: set[str], name: str) -> list[str]:
        """Containers of other hosts on the overlay networks among `nets` (from the copy of the store)."""
        if self.nets.overlay is None:
            return []
        return [ip for n in sorted(nets) if me.state.endpoints[n].get("overlay")
                for ip in self.nets.overlay.lookup(me.state.endpoints[n]["overlay"], name)]

    def _reverse(self, cid: str, ip: str) -> str | None:
        running = self._running()
        me = next((c for c in running if c.id == cid), None)
        if me is None:
            return None
        for o in running:
            for n, ep in o.state.endpoints.items():
                if ep["ip"] == ip and n in me.state.endpoints and self._dns_network(n):
                    return f"{o.name}.{n}"
        if self.nets.overlay is not None:
            for n, ep in me.state.endpoints.items():
                name = self.nets.overlay.reverse(ep["overlay"], ip) if ep.get("overlay") else None
                if name:
                    return f"{name}.{n}"
        return None

    def _upstream(self, cid: str) -> list[str]:
        c = next((c for c in self.containers() if c.id == cid), None)
        return etcfiles.upstream_servers(list(c.cfg.host_config.get("Dns") or []) if c else [])

    def connected(self, net: Network) -> list[Container]:
        """Containers (running or not) whose config names the network."""
        return [c for c in self.containers() if net.name in c.cfg.networks]



def _endpoint(where: str, conf: dict[str, Any]) -> dict[str, Any]:
    """An endpoint's settings as a create or connect asks for them, checked for what needs no
    network (the network's own checks are `_settings`'); NetworkID is filled in by the caller."""
    fields.check_endpoint(where, conf)
    ipam = conf.get("IPAMConfig") or {}
    local = [str(x) for x in ipam.get("LinkLocalIPs") or []]
    for x in local:
        try:
            if not ipaddress.ip_address(x).is_link_local or ipaddress.ip_address(x).version != 4:
                raise ValueError
        except ValueError:
            raise InvalidArgument(f"invalid link-local IP address: {x}") from None
    mac = conf.get("MacAddress") or ""
    if mac and not _MAC.match(mac):
        raise InvalidArgument(f"invalid MAC address: {mac}")
    lnks = [str(x) for x in conf.get("Links") or []]
    for x in lnks:
        parse_link(x)
    out_ipam = {k: v for k, v in (("IPv4Address", ipam.get("IPv4Address") or ""),
                                  ("IPv6Address", ipam.get("IPv6Address") or ""), ("LinkLocalIPs", local)) if v}
    return {"Aliases": [str(a) for a in conf.get("Aliases") or []] or None, "IPAMConfig": out_ipam or None,
            "MacAddress": mac, "NetworkID": "", "Links": lnks or None,
            "DriverOpts": dict(conf.get("DriverOpts") or {}) or None}


def _check_address(net: Network, addr: str, subnet: str, kind: str) -> None:
    """An address a container asks for on a network: dockerd's checks and words."""
    if not addr:
        return
    if net.predefined and not (kind == "IPv6" and net.name == "bridge"):
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    try:
        a = ipaddress.ip_address(addr)
    except ValueError:
        raise InvalidArgument(f"invalid {kind} address: {addr}") from None
    if not subnet:
        raise InvalidArgument(f"network {net.name} has no {kind}: it cannot give {addr}")
    if a not in ipaddress.ip_network(subnet):
        raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {addr}")


def settings(c: Container) -> dict[str, Any]:
    """`NetworkSettings.Networks`: every network it is connected to, with its address while it runs."""
    out: dict[str, Any] = {}
    nm = c.cfg.host_config.get("NetworkMode") or "default"
    # host and none have an entry, as in dockerd; a container: mode has none (the namespace is another's)
    wanted = c.cfg.networks or ({} if primary(c.cfg.host_config) or nm.startswith("container:") else {nm: {}})
    for name, conf in wanted.items():
        ep = c.state.endpoints.get(name) or {}
        nid = conf.get("NetworkID", "")
        out[name] = {"IPAMConfig": conf.get("IPAMConfig"), "Links": conf.get("Links"), "Aliases": conf.get("Aliases"),
                     "MacAddress": ep.get("mac") or conf.get("MacAddress") or "", "DriverOpts": conf.get("DriverOpts"),
                     "NetworkID": nid,
                     "EndpointID": endpoint_id(c.id, nid) if ep else "", "Gateway": ep.get("gateway", ""),
                     "IPAddress": ep.get("ip", ""), "IPPrefixLen": ep.get("prefix", 0),
                     "IPv6Gateway": ep.get("gateway6", ""), "GlobalIPv6Address": ep.get("ip6", ""),
                     "GlobalIPv6PrefixLen": ep.get("prefix6", 0),
                     "DNSNames": sorted(_dns_names(c, name)) if ep and name not in PREDEFINED else None}
    return out


def published(c: Container) -> list[dict[str, Any]]:
    """The ports a running container publishes (on its primary network)."""
    return [p for ep in c.state.endpoints.values() for p in ep.get("ports") or []]


def members(c_list: Iterable[Container], net: Network) -> dict[str, Any]:
    """`Containers` of a network's inspect: the running containers on it."""
    out = {}
    for c in c_list:
        ep = c.state.endpoints.get(net.name) if c.state.running else None
        if ep:
            out[c.id] = {"Name": c.name, "EndpointID": endpoint_id(c.id, net.id), "MacAddress": ep["mac"],
                         "IPv4Address": f"{ep['ip']}/{ep['prefix']}",
                         "IPv6Address": f"{ep['ip6']}/{ep['prefix6']}" if ep.get("ip6") else ""}
    return out


def parse_link(item: str) -> tuple[str, str]:
    """`name:alias`, `name`, or dockerd's stored form `/name:/child/alias` → (name, alias)."""
    name, _, alias = str(item).partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name or not alias:
        raise InvalidArgument(f"invalid link {item!r}: want NAME[:ALIAS]")
    return name, alias


def link_address(target: Container, child: Container) -> str:
    """The linked container's address on a network the child is on (the child's primary first)."""
    for n in child.cfg.networks:
        ep = target.state.endpoints.get(n)
        if ep:
            return str(ep["ip"])
    raise Conflict(f"Cannot link to /{target.name}: it is not on a network of /{child.name}")


def link_env(alias: str, target: Container, child: str, ip: str) -> list[str]:
    """The legacy link's variables, as dockerd sets them: <ALIAS>_NAME, <ALIAS>_PORT and
    <ALIAS>_PORT_<port>_<PROTO>[_ADDR|_PORT|_PROTO] for each exposed port, and the target's
    environment as <ALIAS>_ENV_<KEY> (but HOME and PATH)."""
    a = re.sub(r"[^A-Za-z0-9]", "_", alias).upper()
    ports = sorted((int(k.partition("/")[0]), k.partition("/")[2] or "tcp") for k in
                    target.cfg.config.get("ExposedPorts") or {})
    env = []
    if ports:
        env.append(f"{a}_PORT={ports[0][1]}://{ip}:{ports[0][0]}")
    for port, proto in ports:
        p = f"{a}_PORT_{port}_{proto.upper()}"
        env += [f"{p}={proto}://{ip}:{port}", f"{p}_ADDR={ip}", f"{p}_PORT={port}", f"{p}_PROTO={proto}"]
    env.append(f"{a}_NAME=/{child}/{alias}")
    for e in target.cfg.config.get("Env") or []:
        k, eq, v = str(e).partition("=")
        if eq and k not in ("HOME", "PATH"):
            env.append(f"{a}_ENV_{k}={v}")
    return env


def _dns_names(c: Container, network: str, conf: dict[str, Any] | None = None) -> set[str]:
    ep = c.state.endpoints.get(network) or {}
    aliases = ep.get("aliases") or (conf or c.cfg.networks.get(network) or {}).get("Aliases") or []
    return {c.name.lower(), c.id[:12], *(str(a).lower() for a in aliases)}


async def delete_veths(veths: list[str]) -> None:
    for v in veths:
        await asyncio.to_thread(links.delete_link, v)
