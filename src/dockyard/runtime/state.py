"""Runtime state directory: `<root>/<id>/state.json` and `exec.fifo`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

ID_RE = re.compile(r"^[A-Za-z0-9_.+-]{1,1024}$")


class StateError(Exception):
    """A container is missing, or in the wrong state for a command."""


@dataclass
class State:
    """What `create` records for later commands."""

    id: str
    pid: int
    bundle: str
    rootfs: str
    created: str
    start_time: int
    cgroup_paths: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)


def container_dir(root: Path, cid: str) -> Path:
    """`<root>/<id>`, with the id checked."""
    if not ID_RE.match(cid) or cid in (".", ".."):
        raise StateError(f"invalid container id {cid!r}")
    return root / cid


def save(root: Path, st: State) -> None:
    """Atomically write state.json."""
    d = container_dir(root, st.id)
    tmp = d / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(st)))
    os.replace(tmp, d / "state.json")


def load(root: Path, cid: str) -> State:
    """Read state.json."""
    try:
        return State(**json.loads((container_dir(root, cid) / "state.json").read_text()))
    except FileNotFoundError:
        raise StateError(f"container {cid} does not exist") from None


def proc_start_time(pid: int) -> int:
    """Start time of a process (field 22 of /proc/pid/stat), 0 if it is gone."""
    try:
        data = open(f"/proc/{pid}/stat").read()
    except OSError:
        return 0
    rest = data.rsplit(")", 1)[1].split()
    if rest[0] == "Z":
        return 0
    return int(rest[19])


def status(root: Path, st: State) -> str:
    """created / running / stopped, as the OCI runtime spec defines them."""
    alive = st.pid > 0 and proc_start_time(st.pid) == st.start_time
    if not alive:
        return "stopped"
    if (container_dir(root, st.id) / "exec.fifo").exists():
        return "created"
    return "running"
