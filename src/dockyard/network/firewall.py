"""The bridge's iptables rules, in chains of its own (`DY-FWD-<bridge>`, `DY-NAT-<bridge>`,
`DY-POST-<bridge>`) jumped to from the built-in chains, every rule commented `dockyard`:

* filter FORWARD → DY-FWD: accept what leaves the bridge, replies coming back, published ports
  (DNAT'd) and container-to-container traffic (`icc`) — inserted first, so a FORWARD policy of
  DROP (dockerd sets one) does not drop our traffic;
* nat PREROUTING and OUTPUT (to local addresses) → DY-NAT: a DNAT per published port, so the
  kernel forwards it (no userland proxy), from outside and from the host's loopback alike;
* nat POSTROUTING → DY-POST: MASQUERADE for traffic leaving the subnet, for connections from the
  host's own addresses (127.0.0.1 too: the bridge gets route_localnet) and hairpin connections;
* filter FORWARD → DY-ISO1 (first) → DY-ISO2: traffic from one of our bridges to another is
  dropped (networks are isolated), as dockerd's DOCKER-ISOLATION-STAGE-1/2. An internal network's
  DY-FWD drops whatever leaves or enters the bridge, and it has no MASQUERADE.

A bridge with IPv6 has the same rules in ip6tables (`Rules(..., tool="ip6tables")`).

Blocking (subprocesses): run in worker threads."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

from ..errors import SystemError_

COMMENT = ["-m", "comment", "--comment", "dockyard"]
_lock = threading.Lock()   # iptables -w serializes with other programs; this with ourselves


def _ipt(*args: str, check: bool = True, tool: str = "iptables") -> bool:
    p = subprocess.run([tool, "-w", "5", *args], capture_output=True, text=True)
    if p.returncode != 0 and check:
        raise SystemError_(f"{tool} {' '.join(args)}: {p.stderr.strip()}")
    return p.returncode == 0


@dataclass(frozen=True)
class Port:
    """One published port: host address ('' for all), host port, protocol, container port."""

    host_ip: str
    host_port: int
    proto: str
    container_port: int


ISO1, ISO2 = "DY-ISO1", "DY-ISO2"   # shared by every bridge of ours: traffic between two of them is dropped


class Rules:
    """The rules of one bridge. `internal`: nothing leaves the bridge or comes in from outside
    it; `masquerade`: traffic leaving the subnet is masqueraded."""

    def __init__(self, bridge: str, subnet: str, icc: bool = True, internal: bool = False,
                 masquerade: bool = True, tool: str = "iptables") -> None:
        self.bridge, self.subnet, self.icc, self.tool = bridge, subnet, icc, tool
        self.internal, self.masquerade = internal, masquerade
        self.fwd, self.nat, self.post = f"DY-FWD-{bridge}", f"DY-NAT-{bridge}", f"DY-POST-{bridge}"

    def _t(self, *args: str, check: bool = True) -> bool:
        return _ipt(*args, check=check, tool=self.tool)

    def _jumps(self) -> list[tuple[str, str, list[str]]]:
        """(table, chain, rule) of each jump to our chains; the rule's target comes last."""
        local = ["-m", "addrtype", "--dst-type", "LOCAL"]
        return [("filter", "FORWARD", ["-j", self.fwd]), ("nat", "PREROUTING", [*local, "-j", self.nat]),
                ("nat", "OUTPUT", [*local, "-j", self.nat]), ("nat", "POSTROUTING", ["-j", self.post])]

    def _isolation(self) -> list[tuple[str, list[str]]]:
        """(chain, rule): what leaves this bridge for another goes to ISO2, where a rule per
        bridge drops what enters it — so no two of our networks reach each other."""
        br = self.bridge
        return [(ISO1, ["-i", br, "!", "-o", br, "-j", ISO2]), (ISO2, ["-o", br, "-j", "DROP"])]

    def _forward(self) -> list[list[str]]:
        br = self.bridge
        icc = ["-i", br, "-o", br, "-j", "ACCEPT" if self.icc else "DROP"]
        if self.internal:
            return [icc, ["-i", br, "!", "-o", br, "-j", "DROP"], ["!", "-i", br, "-o", br, "-j", "DROP"]]
        return [["-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
                ["-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"],
                icc, ["-i", br, "!", "-o", br, "-j", "ACCEPT"]]

    def _postrouting(self) -> list[list[str]]:
        br = self.bridge
        if self.internal:
            return []
        out = [["-s", self.subnet, "!", "-o", br, "-j", "MASQUERADE"]] if self.masquerade else []
        return out + [["-o", br, "-m", "addrtype", "--src-type", "LOCAL", "-j", "MASQUERADE"],
                      ["-s", self.subnet, "-o", br, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE"]]

    @staticmethod
    def _listed(chain: str, rule: list[str]) -> str:
        """A rule as `iptables -S` prints it: matches, then our comment, then the target."""
        return " ".join(["-A", chain, *rule[:-2], *COMMENT, *rule[-2:]])

    def install(self) -> None:
        """Chains, their fixed rules and the jumps to them (idempotent; the port rules are kept)."""
        with _lock:
            for table, chain in (("filter", self.fwd), ("nat", self.nat), ("nat", self.post)):
                self._t("-t", table, "-N", chain, check=False)
            for table, chain in (("filter", self.fwd), ("nat", self.post)):
                self._t("-t", table, "-F", chain)
            for rule in self._forward():
                self._t("-t", "filter", "-A", self.fwd, *rule, *COMMENT)
            for rule in self._postrouting():
                self._t("-t", "nat", "-A", self.post, *rule, *COMMENT)
            for table, chain, rule in self._jumps():
                if not self._t("-t", table, "-C", chain, *rule, *COMMENT, check=False):
                    self._t("-t", table, "-I", chain, "1", *rule, *COMMENT)
            for chain in (ISO1, ISO2):
                self._t("-N", chain, check=False)
            for chain, rule in self._isolation():
                if not self._t("-C", chain, *rule, *COMMENT, check=False):
                    self._t("-I", chain, "1", *rule, *COMMENT)
            _first_in_forward(self.tool)

    def intact(self, ports: int) -> bool:
        """Whether every jump and rule of ours is still there (`iptables -F`, `nft flush ruleset`
        or a firewalld reload remove them); `ports`: how many DNAT rules there should be."""
        with _lock:
            filt = subprocess.run([self.tool, "-w", "5", "-S"], capture_output=True, text=True).stdout
            nat = subprocess.run([self.tool, "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        text = filt + nat
        wanted = [self._listed(chain, rule) for _, chain, rule in self._jumps()]
        wanted += [self._listed(chain, rule) for chain, rule in self._isolation()]
        forward = [ln for ln in filt.splitlines() if ln.startswith("-A FORWARD ")]
        return (all(w in text for w in wanted) and forward[:1] == [self._listed("FORWARD", ["-j", ISO1])]
                and filt.count(f"-A {self.fwd} ") == len(self._forward())
                and nat.count(f"-A {self.post} ") == len(self._postrouting()) and nat.count(f"-A {self.nat} ") == ports)

    def remove(self) -> None:
        """Jumps, then chains (with their rules); the isolation chains when no bridge uses them."""
        with _lock:
            for table, chain, rule in self._jumps():
                while self._t("-t", table, "-D", chain, *rule, *COMMENT, check=False):
                    pass
            for table, chain in (("filter", self.fwd), ("nat", self.nat), ("nat", self.post)):
                self._t("-t", table, "-F", chain, check=False)
                self._t("-t", table, "-X", chain, check=False)
            for chain, rule in self._isolation():
                while self._t("-D", chain, *rule, *COMMENT, check=False):
                    pass
            listed = subprocess.run([self.tool, "-w", "5", "-S", ISO1], capture_output=True, text=True).stdout
            if "-A " not in listed:
                while self._t("-D", "FORWARD", "-j", ISO1, *COMMENT, check=False):
                    pass
                for chain in (ISO1, ISO2):
                    self._t("-F", chain, check=False)
                    self._t("-X", chain, check=False)

    def _port_rule(self, cid: str, ip: str, p: Port) -> list[str]:
        rule = ["-p", p.proto]
        if p.host_ip and p.host_ip not in ("0.0.0.0", "::"):
            rule += ["-d", p.host_ip]
        to = f"[{ip}]:{p.container_port}" if ":" in ip else f"{ip}:{p.container_port}"
        return [*rule, "--dport", str(p.host_port), "-j", "DNAT", "--to-destination", to,
                "-m", "comment", "--comment", f"dockyard:{cid[:12]}"]

    def publish(self, cid: str, ip: str, ports: list[Port]) -> None:
        """DNAT rules for a container's published ports (all or none)."""
        done: list[Port] = []
        try:
            with _lock:
                for p in ports:
                    self._t("-t", "nat", "-A", self.nat, *self._port_rule(cid, ip, p))
                    done.append(p)
        except BaseException:
            self.unpublish(cid, ip, done)
            raise

    def unpublish(self, cid: str, ip: str, ports: list[Port]) -> None:
        with _lock:
            for p in ports:
                self._t("-t", "nat", "-D", self.nat, *self._port_rule(cid, ip, p), check=False)

    def flush_ports(self) -> None:
        """Drop every port rule (start-up: they are made again for the running containers)."""
        with _lock:
            self._t("-t", "nat", "-F", self.nat, check=False)


def _first_in_forward(tool: str = "iptables") -> None:
    """The jump to the isolation chain is FORWARD's first rule (before any accept of ours)."""
    first = subprocess.run([tool, "-w", "5", "-S", "FORWARD", "1"], capture_output=True, text=True).stdout
    if first.strip() != Rules._listed("FORWARD", ["-j", ISO1]):
        while _ipt("-D", "FORWARD", "-j", ISO1, *COMMENT, check=False, tool=tool):
            pass
        _ipt("-I", "FORWARD", "1", "-j", ISO1, *COMMENT, tool=tool)


def set_sysctl(name: str, value: str) -> None:
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise SystemError_(f"sysctl {name}={value}: {e}") from None
