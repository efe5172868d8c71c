"""The fast path of `exec`: what `dockyard-nsexec` (nsexec/nsexec.c, built by
scripts/install.sh) needs to start a process in a running container, prepared here by the
monitor, which already holds everything imported.

The slow path — `dockyard-runtime exec` in a fork of the monitor (runtime/exec.py) — stays: it
runs when the helper is not built, when `DOCKYARD_NSEXEC=off` is in the daemon's environment,
and it is what the tests compare the helper with. Both read the same state and config and apply
the same process fields in the same order; the helper adds nothing the runtime does not do.

The container-wide part of a plan (namespaces, cgroups, seccomp program) is cached per
container and refreshed when its state.json or config.json changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import caps
from . import state as st_mod
from .exec import _NS_FILES
from .init import _NS_FLAGS, _RLIMITS
from .seccomp import Filter
from .spec import convert
from .state import StateError

HELPER = Path(__file__).resolve().parent / "nsexec" / "dockyard-nsexec"
# (type, /proc/PID/ns name, CLONE_NEW* flag) in the runtime's exec order
_NS = [(t, name, _NS_FLAGS[t]) for t, name in _NS_FILES]
_INFINITY = (1 << 64) - 1


def enabled() -> bool:
    """Whether the helper is built and not switched off."""
    return os.environ.get("DOCKYARD_NSEXEC", "") != "off" and os.access(HELPER, os.X_OK)


class _Container:
    """What every exec of one container shares."""

    def __init__(self, key: tuple[int, int], raw: dict[str, Any], records: list[str]) -> None:
        self.key, self.raw, self.records = key, raw, records


_cache: dict[str, _Container] = {}


def _container(root: Path, st: st_mod.State) -> _Container:
    config = Path(st.bundle) / "config.json"
    key = (os.stat(st_mod.container_dir(root, st.id) / "state.json").st_mtime_ns, os.stat(config).st_mtime_ns)
    c = _cache.get(st.id)
    if c is not None and c.key == key:
        return c
    raw = json.loads(config.read_text())
    spec = convert(raw, Path(st.bundle))
    own = {t for t, _ in spec.namespaces}
    recs = [f"ns={flag}:/proc/{st.pid}/ns/{name}" for t, name, flag in _NS if t in own]
    for name, path in st.cgroup_paths.items():
        recs.append(f"cg2={path}" if name == "" else f"cg1={path}")
    if spec.seccomp:
        f = Filter(spec.seccomp, str(root / ".seccomp"))
        recs.append(f"bpf={f.path}")
    c = _cache[st.id] = _Container(key, raw, recs)
    if len(_cache) > 4096:   # forget the oldest: containers come and go
        _cache.pop(next(iter(_cache)))
    return c


def forget(cid: str) -> None:
    """Drop a container's cached part (it is gone)."""
    _cache.pop(cid, None)


def build(root: Path, cid: str, process: dict[str, Any], console_socket: str | None) -> bytes:
    """The plan: NUL-terminated key=value records (see nsexec.c). Raises StateError when the
    container cannot take an exec, ValueError for a process the helper cannot express."""
    st = st_mod.load(root, cid)
    if st_mod.status(root, st) not in ("running", "created"):
        raise StateError(f"cannot exec in a stopped container {cid}")
    c = _container(root, st)
    p = convert({**c.raw, "process": process}, Path(st.bundle)).process
    if p.terminal != bool(console_socket):
        raise StateError("a terminal needs a console socket, and a console socket a terminal")
    recs = list(c.records)
    recs += [f"cwd={p.cwd}", *(f"arg={a}" for a in p.args), *(f"env={e}" for e in p.env),
             f"uid={p.uid}", f"gid={p.gid}", *(f"grp={g}" for g in p.additional_gids),
             f"lastcap={caps.last_cap()}", f"nnp={int(p.no_new_privileges)}"]
    for k in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        recs.append(f"cap.{k[0]}={caps.mask(p.caps.get(k, ()))}")
    for r in p.rlimits:
        res = _RLIMITS.get(r.type)
        if res is not None:   # as the runtime: a name this Python does not know is skipped
            recs.append(f"rlim={res}:{r.soft if r.soft >= 0 else _INFINITY}:{r.hard if r.hard >= 0 else _INFINITY}")
    if console_socket:
        recs.append(f"console={console_socket}")
    out = "\0".join(recs) + "\0"
    if out.count("\0") != len(recs):
        raise ValueError("the process's arguments or environment contain a NUL byte")
    return out.encode()
