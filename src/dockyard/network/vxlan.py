"""The devices of an overlay network on one host, over netlink, in a network namespace of the
network's own (bound at `<exec-root>/overlay/ov-<id12>`, as Docker's overlay driver does): a
bridge with no address (the network's layer 2 on this host) and a `vxlan` device on it (the
tunnel to the other hosts). The vxlan device is made in the host's namespace, so its UDP socket
listens on the host's address, and then moved into the network's. Learning is off and ARP is
answered by the device itself (`proxy`) from neighbour entries the daemon writes — with the
forwarding entries (MAC → the owning host's address) — from the cluster store: nothing is learnt
from traffic and no miss reaches the daemon. The host's firewall never sees the network's frames.
Blocking: worker threads."""

from __future__ import annotations

import os
import socket

from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ndmsg import NUD_PERMANENT

from ..errors import SystemError_
from . import netns
from .links import _in_netlink_thread, index, ipr

NTF_SELF = 0x02


@_in_netlink_thread
def address_of(iface: str) -> str:
    """The first IPv4 address of a host link ('' if it has none or there is no such link)."""
    with ipr() as r:
        idx = index(r, iface)
        if idx is None:
            return ""
        for a in r.get_addr(index=idx, family=socket.AF_INET):
            return str(a.get_attr("IFA_ADDRESS"))
    return ""


@_in_netlink_thread
def underlay_mtu(local: str) -> int:
    """The MTU of the host link that holds the address (1500 if none is found)."""
    with ipr() as r:
        for a in r.get_addr(family=socket.AF_INET):
            if a.get_attr("IFA_ADDRESS") == local:
                link = r.get_links(a["index"])[0]
                return int(link.get_attr("IFLA_MTU") or 1500)
    return 1500


@_in_netlink_thread
def ensure(ns: str, bridge: str, vxlan: str, vni: int, local: str, port: int, mtu: int) -> None:
    """The namespace and both devices in it, up (made where missing; existing ones are kept)."""
    try:
        if not netns.bound(ns):
            netns.remove(ns)
            netns.create(ns)
        with ipr(ns) as r:
            if index(r, bridge) is None:
                r.link("add", ifname=bridge, kind="bridge")
            have_vx = index(r, vxlan) is not None
        if not have_vx:
            with ipr() as h:
                stale = index(h, vxlan)
                if stale is not None:   # a move that failed half-way
                    h.link("del", index=stale)
                h.link("add", ifname=vxlan, kind="vxlan", vxlan_id=vni, vxlan_local=local, vxlan_port=port,
                       vxlan_learning=0, vxlan_proxy=1, vxlan_ttl=64)
                vx = index(h, vxlan)
                assert vx is not None
                fd = os.open(ns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    h.link("set", index=vx, net_ns_fd=fd)
                except NetlinkError:
                    h.link("del", index=vx)
                    raise
                finally:
                    os.close(fd)
        with ipr(ns) as r:
            br, vx = index(r, bridge), index(r, vxlan)
            assert br is not None and vx is not None
            r.link("set", index=vx, mtu=mtu)
            r.link("set", index=br, mtu=mtu)
            r.link("set", index=vx, master=br, state="up")
            r.link("set", index=br, state="up")
    except NetlinkError as e:
        raise SystemError_(f"overlay devices {bridge}/{vxlan} (VNI {vni}): {e}") from None


@_in_netlink_thread
def intact(ns: str, bridge: str, vxlan: str) -> bool:
    if not netns.bound(ns):
        return False
    with ipr(ns) as r:
        return index(r, bridge) is not None and index(r, vxlan) is not None


@_in_netlink_thread
def remove(ns: str) -> None:
    """The namespace, and with it every device in it (the host ends of the veths too). The vxlan
    device is deleted first, at once: a namespace goes away on the kernel's own time, and until
    then its VNI stays taken on the host's VXLAN socket (a network made meanwhile with that VNI
    would fail with EEXIST)."""
    if netns.bound(ns):
        with ipr(ns) as r:
            for link in r.get_links():
                if link.get_attr("IFLA_INFO_KIND") == "vxlan" or \
                        (link.get_attr("IFLA_LINKINFO") and link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "vxlan"):
                    try:
                        r.link("del", index=link["index"])
                    except NetlinkError:
                        pass
    netns.remove(ns)


def remove_except(directory: str, keep: set[str]) -> list[str]:
    """The namespaces under `directory` of networks not in `keep` (their names): removed."""
    gone = []
    for name in netns.listed(directory):
        if name not in keep:
            remove(os.path.join(directory, name))
            gone.append(name)
    return gone


@_in_netlink_thread
def program(ns: str, vxlan: str, entries: list[tuple[bool, str, str, str]]) -> None:
    """(add?, ip, mac, remote host) for each endpoint on another host: its forwarding entry and
    its neighbour entry on the vxlan device (added or replaced; or removed)."""
    if not netns.bound(ns):
        return
    with ipr(ns) as r:
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
