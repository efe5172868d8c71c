"""Driving an OCI runtime binary (ours, runc or crun) through its command line."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from ..errors import InvalidArgument


@dataclass(frozen=True)
class Runtime:
    """A configured runtime: name, argv prefix and state root. `builtin` marks Dockyard's own,
    which the monitor runs by forking its pre-imported copy instead of exec'ing a new Python."""

    name: str
    argv: tuple[str, ...]
    root: str
    builtin: bool = False

    @property
    def base(self) -> list[str]:
        """argv up to the subcommand."""
        return [*self.argv, "--root", self.root]

    def describe(self) -> dict:
        """How the monitor runs it."""
        return {"argv": self.base, "builtin": self.builtin, "root": self.root}

    def has_state(self, cid: str) -> bool:
        """Whether the runtime keeps a record of the container (runc, crun and ours use <root>/<id>)."""
        return os.path.isdir(os.path.join(self.root, cid))


def own_runtime_argv() -> tuple[str, ...]:
    """How to run `dockyard-runtime` from this installation."""
    exe = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    if os.path.exists(exe):
        return (exe,)
    return (sys.executable, "-m", "dockyard.runtime")


def build_runtimes(configured: dict[str, dict], exec_root: str) -> dict[str, Runtime]:
    """The daemon's runtimes: `dockyard` (ours), `runc`/`crun` if installed, plus daemon.json's."""
    out = {"dockyard": Runtime("dockyard", own_runtime_argv(), os.path.join(exec_root, "runtime", "dockyard"), True)}
    for name in ("runc", "crun"):
        p = shutil.which(name)
        if p:
            out[name] = Runtime(name, (p,), os.path.join(exec_root, "runtime", name))
    for name, spec in configured.items():
        path = spec.get("path") or spec.get("runtimeType") or ""
        p = shutil.which(path) if path and not os.path.isabs(path) else path
        if not p or not os.path.exists(p):
            raise InvalidArgument(f"runtime {name}: executable {path!r} not found")
        out[name] = Runtime(name, (p, *spec.get("runtimeArgs", [])), os.path.join(exec_root, "runtime", name))
    return out

