"""The networks of one daemon: the predefined `bridge` (the default bridge, when there is one),
`host` and `none`, and user-defined bridge networks — a record each in
`<data-root>/networks/<id>.json` and a Linux bridge `br-<id[:12]>` (or the name its options give).
A container's sandbox is its network namespace, bound at `<exec-root>/netns/<container id>`.

Blocking (netlink, iptables, files): run in worker threads."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from . import links, netns
from .bridge import Bridge, BridgeConfig

if TYPE_CHECKING:
    from .overlay import OverlayDriver

PREDEFINED = ("bridge", "host", "none")
_OPT = "com.docker.network."
OPTIONS = {_OPT + "bridge.name", _OPT + "bridge.enable_icc", _OPT + "bridge.enable_ip_masquerade",
           _OPT + "driver.mtu"}
# where subnets come from when none is asked for (dockerd's default address pools)
_POOLS = [f"172.{n}.0.0/16" for n in range(18, 32)] + [f"192.168.{n}.0/20" for n in range(0, 256, 16)]


@dataclass
class Network:
    """One network: Docker's record (without Containers) and its bridge (None for host/none)."""

    record: dict[str, Any]
    bridge: Bridge | None

    @property
    def name(self) -> str:
        return str(self.record["Name"])

    @property
    def id(self) -> str:
        return str(self.record["Id"])

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def dns(self) -> bool:
        """User-defined networks resolve container names (the default bridge does not)."""
        return not self.predefined


def _record(name: str, ident: str, created: str, driver: str, **kw: Any) -> dict[str, Any]:
    return {"Name": name, "Id": ident, "Created": created, "Scope": "local", "Driver": driver, "EnableIPv6": False,
            "IPAM": kw.get("IPAM") or {"Driver": "default", "Options": None, "Config": []},
            "Internal": bool(kw.get("Internal")), "Attachable": bool(kw.get("Attachable")), "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": kw.get("Options") or {},
            "Labels": kw.get("Labels") or {}}


class Networks:
    """Every network of the daemon, and the containers' sandboxes."""

    def __init__(self, data_root: Path, run_dir: Path, default: BridgeConfig | None, created: str,
                 iptables: bool = True, ip_forward: bool = True, mtu: int = 0) -> None:
        self.dir = data_root / "networks"
        self.ns_dir = run_dir / "netns"
        self.iptables, self.ip_forward, self.mtu = iptables, ip_forward, mtu
        self.lock = threading.Lock()
        self.overlay: OverlayDriver | None = None   # with --cluster-store
        self.by_id: dict[str, Network] = {}
        for name in PREDEFINED:
            if name == "bridge" and default is None:
                continue
            ident = hashlib.sha256(f"dockyard-network:{name}:{default.name if default else ''}".encode()).hexdigest()
            rec = _record(name, ident, created, {"bridge": "bridge", "host": "host", "none": "null"}[name])
            br = None
            if name == "bridge" and default is not None:
                br = Bridge(default)
                rec["IPAM"]["Config"] = [{"Subnet": br.subnet, "Gateway": br.gateway}]
                if default.ip_range:
                    rec["IPAM"]["Config"][0]["IPRange"] = default.ip_range
                if br.subnet6:
                    rec["IPAM"]["Config"].append({"Subnet": br.subnet6, "Gateway": br.gateway6})
                    rec["EnableIPv6"] = True
                rec["Options"] = {_OPT + "bridge.default_bridge": "true",
                                  _OPT + "bridge.enable_icc": str(default.icc).lower(),
                                  _OPT + "bridge.enable_ip_masquerade": "true",
                                  _OPT + "bridge.name": default.name,
                                  _OPT + "driver.mtu": str(default.mtu or 1500)}
            self.by_id[ident] = Network(rec, br)
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(self.dir.glob("*.json")):
            rec = json.loads(f.read_text())
            self.by_id[rec["Id"]] = Network(rec, Bridge(self._bridge_config(rec)))

    @property
    def default(self) -> Bridge | None:
        """The default bridge."""
        n = next((n for n in self.by_id.values() if n.name == "bridge"), None)
        return n.bridge if n else None

    def put(self, net: Network) -> None:
        """Add a network to the table (a new table: readers iterating the old one are not disturbed)."""
        self.by_id = {**self.by_id, net.id: net}

    def drop(self, ident: str) -> None:
        self.by_id = {k: v for k, v in self.by_id.items() if k != ident}

    def bridges(self) -> list[Network]:
        return [n for n in self.by_id.values() if n.bridge is not None]

    def setup(self) -> None:
        """Every network's bridge and rules (start-up; idempotent)."""
        for n in self.bridges():
            assert n.bridge is not None
            n.bridge.setup()

    # --- lookup -------------------------------------------------------------------------------------
    def get(self, ref: str) -> Network:
        """By name, full ID or unique ID prefix (dockerd's order)."""
        for n in self.by_id.values():
            if ref == n.id:
                return n
        named = [n for n in self.by_id.values() if n.name == ref]
        if len(named) > 1:   # CheckDuplicate=false made two of one name (dockerd's words)
            raise InvalidArgument(f"network {ref} is ambiguous ({len(named)} matches found based on name)")
        if named:
            return named[0]
        found = [n for n in self.by_id.values() if ref and n.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def list(self) -> list[Network]:
        return sorted(self.by_id.values(), key=lambda n: (not n.predefined, n.name))

    # --- create and remove ----------------------------------------------------------------------------
    def create(self, body: dict[str, Any], created: str) -> Network:
        """`POST /networks/create` (blocking): checked, the bridge made, then the record written."""
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("network name must be specified")
        known = {"Name", "CheckDuplicate", "Driver", "Internal", "Attachable", "Ingress", "IPAM", "EnableIPv6",
                 "Options", "Labels", "Scope", "ConfigOnly", "ConfigFrom"}
        for k, v in body.items():
            if k not in known and v not in (None, "", {}, [], False):
                raise InvalidArgument(f"unknown field {k}: Dockyard does not know it, and would not apply it")
        driver = body.get("Driver") or "bridge"
        if driver == "overlay" and self.overlay is None:
            raise InvalidArgument("network driver overlay: this daemon runs without --cluster-store, so it has no "
                                  "other hosts to span (start it with --cluster-store etcd://... --cluster-advertise ...)")
        if driver not in ("bridge", "overlay"):
            raise InvalidArgument(f"network driver {driver!r}: only bridge and overlay networks are supported")
        for k, why in (("Ingress", "ingress is for swarm"), ("ConfigOnly", "config-only networks are not supported")):
            if body.get(k):
                raise InvalidArgument(f"{k}: {why}")
        for k in ("IPAM", "Options", "Labels", "ConfigFrom"):
            if body.get(k) is not None and not isinstance(body[k], dict):
                raise InvalidArgument(f"{k} must be an object")
        if (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidArgument("ConfigFrom: config-only networks are not supported")
        scopes = ("", "local") if driver == "bridge" else ("", "global")
        if (body.get("Scope") or "") not in scopes:
            raise InvalidArgument(f"Scope {body['Scope']!r}: {driver} networks are {scopes[1]}")
        opts = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = body.get("Labels") or {}
        if driver == "overlay":
            assert self.overlay is not None
            if not isinstance(labels, dict):
                raise InvalidArgument("Labels must be an object")
            if body.get("CheckDuplicate") is not False and any(n.name == name for n in self.by_id.values()):
                raise Conflict(f"network with name {name} already exists")
            return self.overlay.create(body, created, opts, labels)
        for k in opts:
            if k not in OPTIONS:
                raise InvalidArgument(f"network option {k!r} is not supported (supported: {', '.join(sorted(OPTIONS))})")
        if not isinstance(labels, dict):
            raise InvalidArgument("Labels must be an object")
        with self.lock:
            # API 1.41: CheckDuplicate false lets a second network take a name (then only its ID finds it)
            check = body.get("CheckDuplicate") is not False
            if name in PREDEFINED or (check and any(n.name == name for n in self.by_id.values())):
                raise Conflict(f"network with name {name} already exists")
            ident = secrets.token_hex(32)
            ipam = self._ipam(body.get("IPAM") or {}, bool(body.get("EnableIPv6")))
            rec = _record(name, ident, created, "bridge", IPAM=ipam, Internal=body.get("Internal"),
                          Attachable=body.get("Attachable"), Options=opts, Labels=labels)
            # a network with an IPv6 pool has IPv6 (dockerd would keep such a pool and use it only
            # with EnableIPv6: here nothing asked for is left unused)
            rec["EnableIPv6"] = len(ipam["Config"]) > 1
            cfg = self._bridge_config(rec)
            if any(n.bridge is not None and n.bridge.cfg.name == cfg.name for n in self.by_id.values()):
                raise Conflict(f"bridge name {cfg.name} is in use by another network")
            br = Bridge(cfg)
            try:
                br.setup()
                tmp = self.dir / f"{ident}.json.tmp"
                tmp.write_text(json.dumps(rec))
                os.replace(tmp, self.dir / f"{ident}.json")
            except BaseException:
                br.teardown()
                raise
            net = Network(rec, br)
            self.put(net)
            return net

    def remove(self, net: Network) -> None:
        """The bridge, its rules and the record (the caller checked that it is no predefined
        network and that nothing runs on it)."""
        if net.record.get("Driver") == "overlay" and self.overlay is not None:
            self.overlay.remove(net)
            return
        with self.lock:
            assert net.bridge is not None
            net.bridge.teardown()
            (self.dir / f"{net.id}.json").unlink(missing_ok=True)
            self.drop(net.id)

    def repair(self, net: Network, endpoints: dict[str, dict[str, Any]]) -> bool:
        """Make a network's bridge and rules again if something removed them (a firewall flush, a
        deleted link); False if it had to. Under the lock, so a network being removed is not
        made again."""
        with self.lock:
            if net.bridge is None or self.by_id.get(net.id) is not net or net.bridge.intact(endpoints):
                return True
            net.bridge.repair(endpoints)
            return False

    def _bridge_config(self, rec: dict[str, Any]) -> BridgeConfig:
        opts = rec.get("Options") or {}
        conf = (rec["IPAM"].get("Config") or [{}])[0]
        conf6: dict[str, Any] = next((c for c in rec["IPAM"].get("Config") or [] if ":" in c.get("Subnet", "")), {})
        prefix = ipaddress.ip_network(conf["Subnet"]).prefixlen
        mtu = opts.get(_OPT + "driver.mtu")
        aux = [*(conf.get("AuxiliaryAddresses") or {}).values(), *(conf6.get("AuxiliaryAddresses") or {}).values()]
        return BridgeConfig(name=opts.get(_OPT + "bridge.name") or f"br-{rec['Id'][:12]}",
                            bip=f"{conf['Gateway']}/{prefix}", mtu=int(mtu) if mtu else self.mtu,
                            icc=_flag(opts, "bridge.enable_icc"), iptables=self.iptables, ip_forward=self.ip_forward,
                            internal=bool(rec.get("Internal")), masquerade=_flag(opts, "bridge.enable_ip_masquerade"),
                            ip_range=conf.get("IPRange") or "", reserved=tuple(str(a) for a in aux),
                            bip6=f"{conf6['Gateway']}/{ipaddress.ip_network(conf6['Subnet']).prefixlen}" if conf6 else "",
                            ip_range6=conf6.get("IPRange") or "")

    def _ipam(self, ipam: dict[str, Any], ipv6: bool = False) -> dict[str, Any]:
        """IPAM with one IPv4 pool (a free one of dockerd's default pools when none is asked) and,
        for IPv6, one IPv6 pool (which must be given: there is no default IPv6 pool)."""
        if (ipam.get("Driver") or "default") != "default":
            raise InvalidArgument(f"IPAM driver {ipam['Driver']!r}: only the default IPAM driver is supported")
        options = ipam.get("Options")
        if options is not None and (not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values())):
            raise InvalidArgument("IPAM.Options must be an object of strings")
        if not isinstance(ipam.get("Config") or [], list) or not all(isinstance(c, dict) for c in ipam.get("Config") or []):
            raise InvalidArgument("IPAM.Config must be a list of objects")
        configs = [dict(c) for c in ipam.get("Config") or []]
        v6 = [c for c in configs if ":" in str(c.get("Subnet") or "")]
        v4 = [c for c in configs if c not in v6]
        if len(v4) > 1 or len(v6) > 1:
            raise InvalidArgument("IPAM.Config: one IPv4 and one IPv6 pool per network are supported")
        if ipv6 and not v6:
            raise InvalidArgument("EnableIPv6: give the network an IPv6 subnet (IPAM.Config, --subnet): "
                                  "there is no default IPv6 pool")
        out = [self._pool4(v4[0] if v4 else {})]
        if v6:
            out.append(self._pool6(v6[0]))
        # the default IPAM driver's options are recorded and reported, as dockerd's default driver does
        return {"Driver": "default", "Options": dict(options) if options else None, "Config": out}

    def _pool6(self, conf: dict[str, Any]) -> dict[str, Any]:
        unknown = set(conf) - {"Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"}
        if unknown:
            raise InvalidArgument(f"IPAM.Config.{sorted(unknown)[0]}: not supported")
        try:
            net = ipaddress.ip_network(conf["Subnet"], strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {conf['Subnet']!r}") from None
        if net.prefixlen > 124:
            raise InvalidArgument(f"subnet {net}: too small (at most /124)")
        taken = [ipaddress.ip_network(n.bridge.subnet6) for n in self.bridges() if n.bridge is not None and n.bridge.subnet6]
        host = [ipaddress.ip_network(x, strict=False) for x in links.host_networks(6)]
        if any(net.overlaps(t) for t in taken + host):
            raise PermissionDenied("Pool overlaps with other one on this address space")
        out: dict[str, Any] = {"Subnet": str(net), **_ip_range(conf, net)}
        gw = conf.get("Gateway") or str(net.network_address + 1)
        for what, addr in [("gateway", gw), *(("auxiliary address " + k, v)
                                              for k, v in (conf.get("AuxiliaryAddresses") or {}).items())]:
            try:
                if ipaddress.ip_address(addr) not in net:
                    raise ValueError
            except ValueError:
                raise InvalidArgument(f"{what} {addr} is not an address of the subnet {net}") from None
        out["Gateway"] = gw
        if conf.get("AuxiliaryAddresses"):
            out["AuxiliaryAddresses"] = dict(conf["AuxiliaryAddresses"])
        return out

    def _pool4(self, conf: dict[str, Any]) -> dict[str, Any]:
        taken = [ipaddress.ip_network(n.bridge.subnet) for n in self.bridges() if n.bridge is not None]
        host = [ipaddress.ip_network(x, strict=False) for x in links.host_networks()]
        return ipv4_pool(conf, taken, (ipaddress.ip_network(p) for p in _POOLS), host,
                         "could not find an available, non-overlapping IPv4 address pool among the defaults "
                         "to assign to the network")

    # --- sandboxes ---------------------------------------------------------------------------------------
    def sandbox(self, cid: str) -> str:
        return str(self.ns_dir / cid)

    def make_sandbox(self, cid: str) -> str:
        """A fresh network namespace for the container (a crash's leftover is replaced)."""
        path = self.sandbox(cid)
        netns.remove(path)
        netns.create_in_thread(path)   # no `unshare` subprocess (2-4 ms)
        return path

    def drop_sandbox(self, cid: str) -> None:
        netns.remove(self.sandbox(cid))

    def drop_sandboxes_except(self, keep: set[str]) -> None:
        """Start-up: namespaces of containers that no longer run."""
        for name in netns.listed(str(self.ns_dir)):
            if name not in keep:
                netns.remove(self.sandbox(name))


def _flag(opts: dict[str, str], key: str) -> bool:
    return str(opts.get(_OPT + key, "true")).lower() in ("true", "1", "yes", "")


def _ip_range(conf: dict[str, Any], net: Any) -> dict[str, str]:
    """IPAM's IPRange of a pool, checked to lie within its subnet ({} when none is asked)."""
    if not conf.get("IPRange"):
        return {}
    try:
        rng = ipaddress.ip_network(conf["IPRange"], strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid ip-range {conf['IPRange']!r}") from None
    if rng.version != net.version or not rng.subnet_of(net):
        raise InvalidArgument(f"ip-range {rng} is not within the subnet {net}")
    return {"IPRange": str(rng)}


def ipv4_pool(conf: dict[str, Any], taken: list[Any], defaults: Any, avoid: list[Any], exhausted: str) -> dict[str, Any]:
    """IPAM's IPv4 pool of a new network (bridge or overlay): the asked subnet (not overlapping
    `taken`), or the first of `defaults` overlapping neither `taken` nor `avoid` (Conflict
    `exhausted` if none is free); its IP range, gateway and auxiliary addresses, checked."""
    unknown = set(conf) - {"Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"}
    if unknown:
        raise InvalidArgument(f"IPAM.Config.{sorted(unknown)[0]}: not supported")
    if conf.get("Subnet"):
        try:
            net = ipaddress.ip_network(conf["Subnet"], strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {conf['Subnet']!r}") from None
        if net.version != 4:
            raise InvalidArgument(f"subnet {net}: IPv6 networks are not supported yet")
        if net.prefixlen > 30:
            raise InvalidArgument(f"subnet {net}: too small (at most /30)")
        if any(net.overlaps(t) for t in taken):
            raise PermissionDenied("Pool overlaps with other one on this address space")
    else:
        if conf.get("Gateway") or conf.get("IPRange"):
            raise InvalidArgument("IPAM: a gateway or an IP range needs a subnet")
        free = next((d for d in defaults if not any(d.overlaps(t) for t in taken + avoid)), None)
        if free is None:
            raise Conflict(exhausted)
        net = free
    out: dict[str, Any] = {"Subnet": str(net), **_ip_range(conf, net)}
    gw = conf.get("Gateway") or str(next(net.hosts()))
    for what, addr in [("gateway", gw), *(("auxiliary address " + k, v)
                                          for k, v in (conf.get("AuxiliaryAddresses") or {}).items())]:
        try:
            a = ipaddress.ip_address(addr)
        except ValueError:
            raise InvalidArgument(f"invalid {what} {addr!r}") from None
        if a not in net or a in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"{what} {addr} is not a usable address of the subnet {net}")
    out["Gateway"] = gw
    if conf.get("AuxiliaryAddresses"):
        out["AuxiliaryAddresses"] = dict(conf["AuxiliaryAddresses"])
    return out
