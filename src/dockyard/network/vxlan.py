"""The devices of an overlay network on one host, over netlink: a bridge with no address (the
network's layer 2 on this host) and a `vxlan` device on it (the tunnel to the other hosts), with
learning off and ARP answered by the device itself (`proxy`) from neighbour entries the daemon
writes — with the forwarding entries (MAC → the owning host's address) — from the cluster store.
Nothing is learnt from traffic and no miss reaches the daemon. Blocking: worker threads."""

from __future__ import annotations

import socket

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ndmsg import NUD_PERMANENT

from ..errors import SystemError_
from .links import _in_netlink_thread, index, ipr

NTF_SELF = 0x02


@_in_netlink_thread
def address_of(iface: str) -> str:
    """The first IPv4 address of a link ('' if it has none or there is no such link)."""
    with ipr() as r:
        idx = index(r, iface)
        if idx is None:
            return ""
        for a in r.get_addr(index=idx, family=socket.AF_INET):
            return str(a.get_attr("IFA_ADDRESS"))
    return ""


@_in_netlink_thread
def underlay_mtu(local: str) -> int:
    """The MTU of the link that holds the address (1500 if none is found)."""
    with ipr() as r:
        for a in r.get_addr(family=socket.AF_INET):
            if a.get_attr("IFA_ADDRESS") == local:
                link = r.get_links(a["index"])[0]
                return int(link.get_attr("IFLA_MTU") or 1500)
    return 1500


@_in_netlink_thread
def ensure(bridge: str, vxlan: str, vni: int, local: str, port: int, mtu: int) -> None:
    """Both devices, up (made where missing; an existing one is kept)."""
    with ipr() as r:
        try:
            br = index(r, bridge)
            if br is None:
                r.link("add", ifname=bridge, kind="bridge")
                br = index(r, bridge)
            vx = index(r, vxlan)
            if vx is None:
                r.link("add", ifname=vxlan, kind="vxlan", vxlan_id=vni, vxlan_local=local, vxlan_port=port,
                       vxlan_learning=0, vxlan_proxy=1, vxlan_ttl=64)
                vx = index(r, vxlan)
            assert br is not None and vx is not None
            r.link("set", index=vx, mtu=mtu)
            r.link("set", index=br, mtu=mtu)
            r.link("set", index=vx, master=br, state="up")
            r.link("set", index=br, state="up")
        except NetlinkError as e:
            raise SystemError_(f"overlay devices {bridge}/{vxlan} (VNI {vni}): {e}") from None


@_in_netlink_thread
def intact(bridge: str, vxlan: str) -> bool:
    with ipr() as r:
        return index(r, bridge) is not None and index(r, vxlan) is not None


@_in_netlink_thread
def remove(bridge: str, vxlan: str) -> None:
    with ipr() as r:
        for name in (vxlan, bridge):
            idx = index(r, name)
            if idx is not None:
                try:
                    r.link("del", index=idx)
                except NetlinkError:
                    pass


@_in_netlink_thread
def program(vxlan: str, entries: list[tuple[bool, str, str, str]]) -> None:
    """(add?, ip, mac, remote host) for each endpoint on another host: its forwarding entry and
    its neighbour entry on the vxlan device (added or replaced; or removed)."""
    with ipr() as r:
        vx = index(r, vxlan)
        if vx is None:
            return
        for add, ip, mac, dst in entries:
            try:
                if add:
                    r.neigh("replace", ifindex=vx, dst=ip, lladdr=mac, state=NUD_PERMANENT)
                    r.fdb("replace", ifindex=vx, lladdr=mac, dst=dst, flags=NTF_SELF, state=NUD_PERMANENT)
                else:
                    for what, kw in (("neigh", {"dst": ip}), ("fdb", {"lladdr": mac, "dst": dst, "flags": NTF_SELF})):
                        try:
                            getattr(r, what)("del", ifindex=vx, **kw)
                        except NetlinkError:
                            pass
            except NetlinkError as e:
                raise SystemError_(f"{vxlan}: programming {ip} ({mac}) at {dst}: {e}") from None


@_in_netlink_thread
def remove_except(keep: set[str]) -> list[str]:
    """Overlay devices (`ov-<id>`, `vx-<id>`) of networks not in `keep` (short IDs): removed; their names."""
    gone = []
    with ipr() as r:
        for link in r.get_links():
            name = str(link.get_attr("IFLA_IFNAME"))
            if name[:3] in ("ov-", "vx-") and len(name) == 15 and name[3:] not in keep:
                try:
                    r.link("del", index=link["index"])
                    gone.append(name)
                except NetlinkError:
                    pass
    return gone
