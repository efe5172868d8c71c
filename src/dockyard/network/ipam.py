"""Addresses on a bridge's subnet: the gateway is the bridge's own, the rest handed out lowest
first and given back when a container stops. State is in memory, rebuilt at start-up from the
containers that still hold addresses."""

from __future__ import annotations

import ipaddress
import threading

from ..errors import Conflict


class Pool:
    """One subnet's addresses."""

    def __init__(self, subnet: str, gateway: str) -> None:
        self.net = ipaddress.ip_network(subnet, strict=False)
        self.gateway = ipaddress.ip_address(gateway)
        self.used: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
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
            for a in self.net.hosts():
                if a != self.gateway and a not in self.used:
                    self.used[a] = owner
                    return str(a)
        raise Conflict(f"no available IPv4 addresses on this network's address pools: bridge ({self.net})")

    def give_back(self, addr: str) -> None:
        with self.lock:
            self.used.pop(ipaddress.ip_address(addr), None)

    @property
    def prefix(self) -> int:
        return self.net.prefixlen
