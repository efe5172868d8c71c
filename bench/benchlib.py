"""What the benchmarks share: where the engines keep their data, waiting for a daemon, and
leaving the host's cgroup tree as it was found."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def bench_dir() -> str:
    """Where both engines keep their data during a benchmark: under /var/lib, as in real use
    (here, block allocation under /tmp was measured 15x slower than under /var/lib on one disk)."""
    d = os.environ.get("DOCKYARD_BENCH_DIR", "/var/lib/dockyard-bench")
    os.makedirs(d, exist_ok=True)
    return d


def wait_up(cli: list[str], env: dict[str, str], what: str, timeout: float = 60) -> None:
    """Until `cli version` answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(cli + ["version"], env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up")


class CgroupParents:
    """The engines' parent cgroups (`docker`, `dockyard`) that did not exist before the benchmark
    are removed after it, once empty (the daemons leave them behind when they stop)."""

    NAMES = ("docker", "dockyard")

    def __init__(self) -> None:
        self.before = set(self._present())

    def _present(self) -> list[Path]:
        if not CGROUP.is_dir():
            return []
        return [h / n for h in CGROUP.iterdir() for n in self.NAMES if (h / n).is_dir()]

    def cleanup(self) -> None:
        """rmdir the new ones; a parent that still has children stays (and is reported)."""
        for p in self._present():
            if p not in self.before:
                try:
                    p.rmdir()
                except OSError as e:
                    print(f"note: cgroup {p} left in place: {e.strerror}")
