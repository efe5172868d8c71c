"""Signal names as Docker and runc accept them. Pure; shared by the engine and the runtime."""

from __future__ import annotations

import signal


def parse_signal(s: str | int) -> int:
    """`SIGTERM`, `TERM` or `15` → 15; ValueError for anything else."""
    v = str(s).strip()
    if v.isdigit():
        n = int(v)
        if 0 < n < 65:
            return n
    elif v:
        name = v.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise ValueError(f"invalid signal {s}")
