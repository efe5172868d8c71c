"""Helpers of the network tests: what is on the host (links, rules, namespaces) and a small
HTTP client."""

from __future__ import annotations

import socket
import subprocess
import time


def remove_bridge(name: str) -> None:
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    for tool in ("iptables", "ip6tables"):
        _remove_rules(name, [tool, "-w"])


def _remove_rules(name: str, ipt: list[str]) -> None:
    subprocess.run([*ipt, "-D", "FORWARD", "-m", "comment", "--comment", "dockyard", "-j", f"DY-FWD-{name}"],
                   capture_output=True)
    for chain in ("PREROUTING", "OUTPUT"):
        subprocess.run([*ipt, "-t", "nat", "-D", chain, "-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment",
                        "--comment", "dockyard", "-j", f"DY-NAT-{name}"], capture_output=True)
    subprocess.run([*ipt, "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "dockyard", "-j",
                    f"DY-POST-{name}"], capture_output=True)
    for table, chain in (("filter", "DY-FWD"), ("nat", "DY-NAT"), ("nat", "DY-POST")):
        subprocess.run([*ipt, "-t", table, "-F", f"{chain}-{name}"], capture_output=True)
        subprocess.run([*ipt, "-t", table, "-X", f"{chain}-{name}"], capture_output=True)
    for chain, rule in (("DY-ISO1", ["-i", name, "!", "-o", name]), ("DY-ISO2", ["-o", name])):
        subprocess.run([*ipt, "-D", chain, *rule, "-m", "comment", "--comment", "dockyard", "-j",
                        "DY-ISO2" if chain == "DY-ISO1" else "DROP"], capture_output=True)


def links(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines() if ln.split(":")[1].strip().startswith(prefix)]


def on_bridge(bridge: str, settle: float = 2.0) -> list[str]:
    """The links on the bridge (a removed container's veth goes a moment later: waited for)."""
    deadline = time.time() + settle
    while True:
        out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
        names = [ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines()]
        if not names or time.time() > deadline:
            return names
        time.sleep(0.05)


def netns(d) -> list[str]:
    p = d.exec_root / "netns"
    return sorted(x.name for x in p.iterdir()) if p.exists() else []


def rules() -> str:
    """iptables' and ip6tables' filter and nat rules."""
    return "".join(subprocess.run([tool, "-w", "-t", t, "-S"], capture_output=True, text=True).stdout
                   for tool in ("iptables", "ip6tables") for t in ("filter", "nat"))


def get(port: int, host: str = "127.0.0.1") -> str:
    with socket.create_connection((host, port), 5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode().rsplit("\r\n\r\n", 1)[-1]


def wait_port(port: int) -> None:
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if get(port).startswith("hello-"):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"nothing answers on 127.0.0.1:{port}")
