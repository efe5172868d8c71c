"""Driving an OCI runtime binary (ours, runc or crun) through its command line."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from dataclasses import dataclass

from ..errors import InvalidArgument, NotFound, SystemError_


@dataclass(frozen=True)
class Runtime:
    """A configured runtime: name, argv prefix and state root."""

    name: str
    argv: tuple[str, ...]
    root: str

    @property
    def base(self) -> list[str]:
        """argv up to the subcommand."""
        return [*self.argv, "--root", self.root]

    async def _run(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(*self.base, *args, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def kill(self, cid: str, sig: int) -> None:
        """Signal the container's init."""
        rc, _, err = await self._run("kill", cid, str(sig))
        if rc != 0:
            raise SystemError_(f"runtime kill: {err.strip()}")

    async def delete(self, cid: str) -> None:
        """Forcefully delete the runtime's record (and cgroups) of a container."""
        await self._run("delete", "--force", cid)

    async def state(self, cid: str) -> dict | None:
        """The runtime's state of a container, None if it has none."""
        rc, out, _ = await self._run("state", cid)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            return None


def own_runtime_argv() -> tuple[str, ...]:
    """How to run `dockyard-runtime` from this installation."""
    exe = os.path.join(os.path.dirname(sys.executable), "dockyard-runtime")
    if os.path.exists(exe):
        return (exe,)
    return (sys.executable, "-m", "dockyard.runtime")


def build_runtimes(configured: dict[str, dict], exec_root: str) -> dict[str, Runtime]:
    """The daemon's runtimes: `dockyard` (ours), `runc`/`crun` if installed, plus daemon.json's."""
    out = {"dockyard": Runtime("dockyard", own_runtime_argv(), os.path.join(exec_root, "runtime", "dockyard"))}
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


def pick(runtimes: dict[str, Runtime], name: str) -> Runtime:
    """The runtime called `name`."""
    if name not in runtimes:
        raise NotFound(f"unknown or invalid runtime name: {name}")
    return runtimes[name]
