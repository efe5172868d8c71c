"""How each registry is reached, as dockerd decides it: which are insecure (`insecure-registries`:
host[:port] names or CIDRs; 127.0.0.0/8 and ::1 always, unless `--insecure-loopback=false`), the TLS
settings from `/etc/docker/certs.d/<host[:port]>/` (`*.crt` CAs added to the system's, `*.cert` +
`*.key` client certificates), and the mirrors tried before a registry when pulling
(`registry-mirrors` for Docker Hub, as dockerd; `registry-mirrors-for` {host: [mirror URLs]} for any
other registry, which dockerd cannot do, moby #18818).

An insecure registry is spoken to over HTTPS without verifying its certificate, then over plain
HTTP if TLS cannot be spoken, as dockerd does."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidArgument

CERTS_D = "/etc/docker/certs.d"
HUB_HOSTS = ("docker.io", "registry-1.docker.io", "index.docker.io")


@dataclass
class RegistryHosts:
    """The daemon's registry settings."""

    insecure: list[str] = field(default_factory=list)   # host[:port] or CIDR
    mirrors: list[str] = field(default_factory=list)     # for Docker Hub
    mirrors_for: dict[str, list[str]] = field(default_factory=dict)
    certs_dir: str = CERTS_D
    insecure_loopback: bool = True
    downloads: int = 3   # max-concurrent-downloads, as dockerd
    uploads: int = 5     # max-concurrent-uploads

    def __post_init__(self) -> None:
        self._nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._names: set[str] = set()
        for item in self.insecure:
            if not isinstance(item, str) or not item or "://" in item:
                raise InvalidArgument(f"insecure-registries: {item!r} is not a host[:port] or a CIDR")
            try:
                self._nets.append(ipaddress.ip_network(item, strict=False) if "/" in item else
                                  ipaddress.ip_network(item))
            except ValueError:
                self._names.add(item.lower())
        if self.insecure_loopback:
            self._nets += [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
        for url in [*self.mirrors, *(u for v in self.mirrors_for.values() for u in v)]:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise InvalidArgument(f"invalid mirror: {url!r}: want an http(s) URL with no path")

    def is_insecure(self, domain: str) -> bool:
        """dockerd's rule: the host[:port] or bare host listed, or an address of the host (resolved
        if it is a name) in a listed CIDR."""
        host = host_of(domain)
        if domain.lower() in self._names or host.lower() in self._names:
            return True
        if not self._nets:
            return False
        try:
            addrs = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addrs = [ipaddress.ip_address(str(a[4][0])) for a in socket.getaddrinfo(host, None)]
            except (OSError, UnicodeError, ValueError):
                return False
        return any(a in n for a in addrs for n in self._nets if a.version == n.version)

    def tls_files(self, domain: str) -> tuple[list[str], list[tuple[str, str]]]:
        """certs.d's CA files and (certificate, key) pairs for a registry."""
        cas: list[str] = []
        pairs: list[tuple[str, str]] = []
        d = Path(self.certs_dir) / domain
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.suffix == ".crt":
                    cas.append(str(f))
                elif f.suffix == ".cert":
                    key = f.with_suffix(".key")
                    if not key.exists():
                        raise InvalidArgument(f"missing key {key.name} for client certificate {f.name} in {d}")
                    pairs.append((str(f), str(key)))
                elif f.suffix == ".key" and not f.with_suffix(".cert").exists():
                    raise InvalidArgument(f"missing client certificate {f.stem}.cert for key {f.name} in {d}")
        return cas, pairs

    def tls_context(self, domain: str, verify: bool) -> ssl.SSLContext:
        """System CAs plus certs.d's `*.crt`, and its client certificate pairs."""
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        cas, pairs = self.tls_files(domain)
        for ca in cas:
            ctx.load_verify_locations(cafile=ca)
        for cert, key in pairs:
            ctx.load_cert_chain(cert, key)
        return ctx

    def mirrors_of(self, domain: str) -> list[str]:
        """Mirror endpoints (scheme://host[:port]) to try first when pulling from `domain`."""
        urls = self.mirrors if domain in HUB_HOSTS else self.mirrors_for.get(domain, [])
        return [u.rstrip("/") for u in urls]

    def info(self) -> dict[str, object]:
        """`RegistryConfig` of `GET /info`."""
        cidrs = [str(n) for n in self._nets]
        return {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": cidrs,
                "IndexConfigs": {n: {"Name": n, "Mirrors": [], "Secure": False, "Official": False}
                                 for n in sorted(self._names)} | {
                    "docker.io": {"Name": "docker.io", "Mirrors": [m.rstrip("/") + "/" for m in self.mirrors],
                                  "Secure": True, "Official": True}},
                "Mirrors": [m.rstrip("/") + "/" for m in self.mirrors]}


def host_of(domain: str) -> str:
    """The host of host[:port] (brackets of an IPv6 address removed)."""
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_loopback(domain: str) -> bool:
    """localhost or a loopback address (the test suite's guard)."""
    host = host_of(domain)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


current = RegistryHosts()   # the daemon's settings (configure() at start-up)


def configure(hosts: RegistryHosts) -> None:
    """Set the daemon's registry settings."""
    global current
    current = hosts


def loopback_only() -> bool:
    """The test suite's guard: nothing it does may reach an address outside this machine."""
    return bool(os.environ.get("DOCKYARD_LOOPBACK_ONLY"))
