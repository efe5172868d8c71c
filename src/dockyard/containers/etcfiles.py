"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets (bind-mounted)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument

_LOCAL_NS = re.compile(r"^\s*nameserver\s+(127\.\S+|::1)\s*$")


@dataclass(frozen=True)
class DnsConfig:
    """--dns, --dns-search, --dns-option and --add-host (host-gateway already resolved)."""

    servers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)   # (name, address)


def check(hc: dict[str, Any]) -> None:
    """Create-time checks with dockerd's messages."""
    for ip in hc.get("Dns") or []:
        try:
            ipaddress.ip_address(str(ip))
        except ValueError:
            raise InvalidArgument(f"IP address is not correctly formatted: {ip}") from None
    for item in hc.get("ExtraHosts") or []:
        extra_host(str(item), "0.0.0.0")


def extra_host(item: str, gateway: str) -> tuple[str, str]:
    """`name:ip` (or `name=ip`; `host-gateway` is the bridge's address) → (name, ip)."""
    name, sep, ip = item.partition(":") if ":" in item.split("=", 1)[0] else item.partition("=")
    if not sep or not name or not ip:
        raise InvalidArgument(f"invalid argument \"{item}\" for \"--add-host\" flag: bad format for add-host")
    if ip == "host-gateway":
        if not gateway:
            raise InvalidArgument("--add-host host-gateway needs the default bridge (this daemon runs with "
                                  "--bridge=none)")
        ip = gateway
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise InvalidArgument(f"invalid IP address in add-host: \"{ip}\"") from None
    return name, ip.strip("[]")


def _resolv(host: str, dns: DnsConfig) -> str:
    """resolv.conf as dockerd writes it when --dns/--dns-search/--dns-option are given: what is
    given replaces the host's (loopback resolvers already left out)."""
    servers = [ln.split()[1] for ln in host.splitlines() if ln.strip().startswith("nameserver") and len(ln.split()) > 1]
    search = next((ln.split()[1:] for ln in host.splitlines() if ln.strip().startswith("search")), [])
    options = next((ln.split()[1:] for ln in host.splitlines() if ln.strip().startswith("options")), [])
    out = "".join(f"nameserver {s}\n" for s in (dns.servers or servers))
    if dns.search or search:
        out += "search " + " ".join(dns.search or search) + "\n"
    if dns.options or options:
        out += "options " + " ".join(dns.options or options) + "\n"
    return out


def upstream_servers(dns_servers: list[str]) -> list[str]:
    """Where the embedded DNS forwards a container's queries: its --dns, else the host's
    resolvers (loopback ones too: the forwarder runs in the host's namespace)."""
    if dns_servers:
        return list(dns_servers)
    return [ln.split()[1] for ln in _read("/etc/resolv.conf").splitlines()
            if ln.strip().startswith("nameserver") and len(ln.split()) > 1]


def write(dirpath: str, hostname: str, domainname: str, network_mode: str,
          dns: DnsConfig = DnsConfig(), embedded: str = "") -> dict[str, str]:
    """Write the files into the container's directory; return {container path: host path}.
    `embedded`: the embedded DNS server's address (user-defined networks), the only nameserver
    in resolv.conf, with `ndots:0` as dockerd writes it; the container's --dns servers become
    its upstreams."""
    files = {}
    if network_mode == "host":
        hostname = socket.gethostname()
        hosts = _read("/etc/hosts") or "127.0.0.1\tlocalhost\n"
    else:
        fq = f"{hostname}.{domainname}" if domainname else hostname
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                 "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
                 f"127.0.1.1\t{fq} {hostname}\n" if domainname else
                 "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                 "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    resolv = _read("/etc/resolv.conf")
    if network_mode != "host":
        resolv = "".join(line + "\n" for line in resolv.splitlines() if not _LOCAL_NS.match(line))
    if embedded:
        resolv = _resolv(resolv, DnsConfig([embedded], dns.search, dns.options or ["ndots:0"]))
    elif dns.servers or dns.search or dns.options:
        resolv = _resolv(resolv, dns)
    if dns.extra_hosts:
        hosts += "".join(f"{ip}\t{name}\n" for name, ip in dns.extra_hosts)
    for name, content in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
        p = os.path.join(dirpath, name)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            f.write(content)
        os.replace(tmp, p)
        files[f"/etc/{name}"] = p
    return files


def add_host(hosts_path: str, ip: str, hostname: str, domainname: str) -> None:
    """The container's own address line, as Docker writes it (`IP\thostname`)."""
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    with open(hosts_path, "a") as f:
        f.write(f"{ip}\t{names}\n")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def make_workdir(rootfs: str, cwd: str) -> None:
    """Create a missing working directory inside the rootfs (root-owned, 0755, as dockerd), never
    following a symlink out of it."""
    from ..runtime.rootfs import mkdir_in_root
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(mkdir_in_root(rootfd, cwd, False))
    finally:
        os.close(rootfd)
