"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets (bind-mounted)."""

from __future__ import annotations

import os
import re
import socket

_LOCAL_NS = re.compile(r"^\s*nameserver\s+(127\.\S+|::1)\s*$")


def write(dirpath: str, hostname: str, domainname: str, network_mode: str) -> dict[str, str]:
    """Write the files into the container's directory; return {container path: host path}."""
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
