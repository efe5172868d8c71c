"""Links over netlink (pyroute2): the bridge, and a veth pair per container whose inside end
becomes the container's `eth0`. Blocking calls: run them in worker threads.

The inside of a namespace is configured through a netlink socket opened there: the calling
thread enters the namespace (setns affects only that thread), opens the socket and returns."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import Conflict, SystemError_
from .netns import made_in

IFA_F_NODAD = 0x02

# every netlink call runs in this one thread: pyroute2 keeps an event loop per thread, and its
# objects made in one pool thread and freed in another crashed the interpreter (segfaults seen in CI)
_NETLINK = ThreadPoolExecutor(1, thread_name_prefix="netlink")
_T = TypeVar("_T")


def _in_netlink_thread(fn: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(fn)
    def run(*args: Any, **kw: Any) -> _T:
        if threading.current_thread().name.startswith("netlink"):
            return fn(*args, **kw)
        return _NETLINK.submit(fn, *args, **kw).result()
    return run


@contextlib.contextmanager
def ipr(netns: str | None = None) -> Iterator[Any]:
    """An IPRoute socket in the host's namespace, or in the namespace bound at `netns`."""
    if netns is None:
        with IPRoute() as r:
            yield r
        return
    r = made_in(netns, IPRoute)
    try:
        yield r
    finally:
        r.close()


def index(r: Any, name: str) -> int | None:
    found = r.link_lookup(ifname=name)
    return int(found[0]) if found else None


@_in_netlink_thread
def ensure_bridge(name: str, address: str, prefix: int, mtu: int) -> None:
    """The bridge, up, with the gateway address (made if missing; an existing one is used as it
    is if it holds the address)."""
    with ipr() as r:
        idx = index(r, name)
        if idx is None:
            try:
                r.link("add", ifname=name, kind="bridge")
            except NetlinkError as e:
                raise SystemError_(f"creating bridge {name}: {e}") from None
            idx = index(r, name)
            assert idx is not None
        if mtu:
            r.link("set", index=idx, mtu=mtu)
        have = {a.get_attr("IFA_ADDRESS") for a in r.get_addr(index=idx, family=2)}
        if address not in have:
            try:
                r.addr("add", index=idx, address=address, prefixlen=prefix)
            except NetlinkError as e:
                raise Conflict(f"bridge {name}: cannot add {address}/{prefix}: {e}") from None
        r.link("set", index=idx, state="up")


@_in_netlink_thread
def add_address(name: str, address: str, prefix: int) -> None:
    """An (IPv6) address on a host link, without duplicate address detection; kept if there."""
    with ipr() as r:
        idx = index(r, name)
        if idx is None:
            raise SystemError_(f"link {name} is missing")
        have = {a.get_attr("IFA_ADDRESS") for a in r.get_addr(index=idx, family=socket.AF_INET6)}
        if address not in have:
            try:
                r.addr("add", index=idx, address=address, prefixlen=prefix, flags=IFA_F_NODAD)
            except NetlinkError as e:
                raise Conflict(f"{name}: cannot add {address}/{prefix}: {e}") from None


@_in_netlink_thread
def index_of(name: str) -> int | None:
    """A host link's index, None if there is none."""
    with ipr() as r:
        return index(r, name)


@_in_netlink_thread
def delete_link(name: str, ns: str | None = None) -> bool:
    """Delete a host link (or one in the namespace bound at `ns`; a veth's other end goes with
    it); False if there was none."""
    with ipr(ns) as r:
        idx = index(r, name)
        if idx is None:
            return False
        try:
            r.link("del", index=idx)
        except NetlinkError:
            return False
        return True


@_in_netlink_thread
def enslaved_to(bridge: str, ns: str | None = None) -> list[str]:
    """Names of the links on a bridge (of the host, or of the namespace bound at `ns`)."""
    with ipr(ns) as r:
        br = index(r, bridge)
        if br is None:
            return []
        return sorted(str(link.get_attr("IFLA_IFNAME")) for link in r.get_links()
                      if link.get_attr("IFLA_MASTER") == br)


@_in_netlink_thread
def plug(netns: str, bridge: str, host_name: str, ifname: str, address: str, prefix: int, gateway: str, mac: str,
         mtu: int, link_local: tuple[str, ...] = (), v6: tuple[str, int, str] | None = None,
         bridge_ns: str | None = None) -> None:
    """A veth pair: `host_name` on the bridge (a host's, or one in the namespace bound at
    `bridge_ns`), the other end moved into the namespace as `ifname` with the address (and
    link-local ones, /16), MAC and a default route via the gateway (none when it is ''); `lo` up."""
    # the peer is made in the container's namespace under its final name: moving a device
    # between namespaces waits for an RCU grace period (measured here: 17-34 ms a container)
    with ipr(bridge_ns) as r:
        br = index(r, bridge)
        if br is None:
            raise SystemError_(f"bridge {bridge} is missing")
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": fd}
            if mtu:
                peer["mtu"] = mtu
            r.link("add", ifname=host_name, kind="veth", peer=peer, **({"mtu": mtu} if mtu else {}))
        except NetlinkError as e:
            raise SystemError_(f"creating veth {host_name}: {e}") from None
        finally:
            os.close(fd)
        try:
            h = index(r, host_name)
            assert h is not None
            r.link("set", index=h, master=br, state="up")
        except BaseException:
            delete_link(host_name, bridge_ns)
            raise
    try:
        with ipr(netns) as r:
            lo = index(r, "lo")
            if lo is not None:
                r.link("set", index=lo, state="up")
            p = index(r, ifname)
            assert p is not None
            r.link("set", index=p, address=mac)
            r.addr("add", index=p, address=address, prefixlen=prefix)
            for extra in link_local:
                r.addr("add", index=p, address=extra, prefixlen=16)
            if v6 is not None:   # no duplicate address detection: the address is usable at once
                r.addr("add", index=p, address=v6[0], prefixlen=v6[1], flags=IFA_F_NODAD)
            r.link("set", index=p, state="up")
            if gateway:
                r.route("add", dst="0.0.0.0/0", gateway=gateway)
            if v6 is not None and v6[2]:
                r.route("add", dst="::/0", gateway=v6[2], family=socket.AF_INET6)
    except BaseException:
        delete_link(host_name, bridge_ns)
        raise


@_in_netlink_thread
def host_networks(version: int = 4) -> list[str]:
    """The networks (IPv4, or IPv6 but link-local ones) the host routes to or has addresses in:
    a new network must not overlap them."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    out = set()
    with ipr() as r:
        for rt in r.get_routes(family=family, table=254):
            dst, plen = rt.get_attr("RTA_DST"), rt["dst_len"]
            if dst and plen and not str(dst).startswith("fe80"):
                out.add(f"{dst}/{plen}")
        for a in r.get_addr(family=family):
            addr = str(a.get_attr("IFA_ADDRESS"))
            if not addr.startswith("fe80") and addr != "::1":
                out.add(f"{addr}/{a['prefixlen']}")
    return sorted(out)


@_in_netlink_thread
def set_default_route(netns: str, gateway: str, gateway6: str = "") -> None:
    """The namespace's default routes via `gateway` and `gateway6` (replacing them; none when '')."""
    with ipr(netns) as r:
        for dst, gw, family in (("0.0.0.0/0", gateway, socket.AF_INET), ("::/0", gateway6, socket.AF_INET6)):
            try:
                r.route("del", dst=dst, family=family)
            except NetlinkError:
                pass
            if gw:
                r.route("add", dst=dst, gateway=gw, family=family)
