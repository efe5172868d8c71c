"""The daemon's container monitors, one per group of containers (`--monitors N`).

One monitor carries the output of all its containers on one core: with several, the output of
containers in different groups is written on different cores, and each monitor stays what it
was, one simple fault domain (a monitor that dies takes no other group's containers or output
with it; the daemon starts a new one, which adopts its group's running containers).

Group 0's monitor lives at the exec root (it also runs the managed plugins and the runtime
commands that concern no container); group N > 0's at `<exec-root>/monitors/N`. A container
joins a group when it is started (or attached to before its start: the attach must reach the
monitor that will run it) — the group with the fewest containers running or about to — and
its group is kept in its state, so a daemon that restarts finds it there again, whatever
`--monitors` says then. A group's monitor is started when its first container is placed in it:
a daemon that never runs two containers at once has one monitor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..monitor.client import MonitorClient


class MonitorGroups:
    """The clients of the monitors of one exec root, by group number."""

    def __init__(self, exec_root: Path, first: MonitorClient, count: int = 1) -> None:
        self.exec_root = exec_root
        self.count = max(1, count)   # groups new containers are placed in
        self._clients: dict[int, MonitorClient] = {0: first}

    def dir(self, group: int) -> Path:
        """Where a group's monitor keeps its socket and pid file."""
        return self.exec_root if group == 0 else self.exec_root / "monitors" / str(group)

    def client(self, group: int) -> MonitorClient:
        """The client of a group's monitor (its directory made on first use)."""
        m = self._clients.get(group)
        if m is None:
            self.dir(group).mkdir(parents=True, exist_ok=True)
            m = self._clients[group] = MonitorClient(str(self.dir(group)))
        return m

    def known(self) -> list[int]:
        """Groups with a client or a monitor directory (a monitor left by an earlier daemon)."""
        found = set(self._clients)
        try:
            found.update(int(n) for n in os.listdir(self.exec_root / "monitors") if n.isdigit() and int(n) > 0)
        except FileNotFoundError:
            pass
        return sorted(found)

    def choose(self, busy: Iterable[int]) -> int:
        """The group a starting container joins: of the first `count`, the one with the fewest
        containers in `busy` (their groups), the lowest number on a tie."""
        load = dict.fromkeys(range(self.count), 0)
        for g in busy:
            if g in load:
                load[g] += 1
        return min(load, key=lambda g: (load[g], g))

    def alive(self, group: int) -> bool:
        """Whether the monitor whose pid file is in the group's directory runs (a dead one this
        daemon started is reaped)."""
        try:
            pid = int((self.dir(group) / "monitor.pid").read_text())
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return True
        except (OSError, ValueError, IndexError):
            return False
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
