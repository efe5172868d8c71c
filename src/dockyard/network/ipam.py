"""Addresses on a bridge's subnet: the gateway is the bridge's own, the rest handed out lowest
first and given back when a container stops. State is in memory, rebuilt at start-up from the
containers that still hold addresses."""

from __future__ import annotations

import ipaddress
import threading

from ..errors import Conflict


class Pool:
    """One subnet's addresses."""

    def __init__(self, subnet: str, gateway: str, ip_range: str = "", reserved: tuple[str, ...] = ()) -> None:
        self.net = ipaddress.ip_network(subnet, strict=False)
        self.gateway = ipaddress.ip_address(gateway)
        self.range = ipaddress.ip_network(ip_range, strict=False) if ip_range else self.net   # dynamic addresses
        self.used: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
        for a in reserved:   # IPAM's auxiliary addresses: never handed out
            self.used[ipaddress.ip_address(a)] = ""
        self.lock = threading.Lock()

    def take(self, owner: str, want: str = "") -> str:
        """An address for `owner` (`want` if free), as text."""
        with self.lock:
            if want:
                a = ipaddress.ip_address(want)
                if a not in self.net or a == self.gateway or a in (self.net.network_address, self.net.broadcast_address):
                    raise Conflict(f"Address {want} is not a usable address of {self.net}")
                if self.used.get(a, owner) != owner:
                    raise Conflict(f"Address already in use: {want}")
                self.used[a] = owner
                return str(a)
            ends = (self.gateway, self.net.network_address, self.net.broadcast_address)
            for a in self.range:   # an IP range's first address is handed out too, as dockerd does
                if a not in ends and a not in self.used:
                    self.used[a] = owner
                    return str(a)
        raise Conflict(f"no available IPv4 addresses on this network's address pools: {self.net}")

    def give_back(self, addr: str) -> None:
        with self.lock:
            a = ipaddress.ip_address(addr)
            if self.used.get(a):
                del self.used[a]

    @property
    def prefix(self) -> int:
        return self.net.prefixlen
