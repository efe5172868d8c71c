"""`docker exec`: more processes in a running container (without a TTY or stdin for now).

An exec is created (its config checked and kept), then started: the process spec is the
container's own (`config.json`: capabilities, rlimits, seccomp comes with the bundle) with the
exec's command, environment, user and working directory; the monitor runs it through the
runtime's `exec` and streams its output; the exit code is kept for `GET /exec/{id}/json`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument, NotFound
from . import users

if TYPE_CHECKING:
    from .model import Container
    from .service import ContainerService

KEEP = 256   # finished execs remembered per daemon, newest kept


@dataclass
class Exec:
    """One exec instance."""

    id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    user: str
    workdir: str
    privileged: bool
    attach_stdout: bool
    attach_stderr: bool
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def inspect(self) -> dict[str, Any]:
        """`GET /exec/{id}/json`."""
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": False, "entrypoint": self.cmd[0], "arguments": self.cmd[1:],
                                  "privileged": self.privileged, "user": self.user},
                "OpenStdin": False, "OpenStderr": self.attach_stderr, "OpenStdout": self.attach_stdout,
                "CanRemove": False, "ContainerID": self.container_id, "DetachKeys": "", "Pid": self.pid}


class ExecService:
    """Exec instances of one daemon."""

    def __init__(self, containers: "ContainerService") -> None:
        self.containers = containers
        self.by_id: dict[str, Exec] = {}

    def create(self, ref: str, body: dict[str, Any]) -> Exec:
        """`POST /containers/{id}/exec`."""
        c = self.containers.lookup(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.status.value == "paused":
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not isinstance(body, dict):
            raise InvalidArgument("exec config must be a JSON object")
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument("No exec command specified")
        if body.get("Tty") or body.get("AttachStdin"):
            raise InvalidArgument("exec with a TTY or stdin (-i/-t) is not supported yet")
        if body.get("Privileged"):
            raise InvalidArgument("privileged exec is not supported yet")
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise InvalidArgument("Env must be a list of strings")
        e = Exec(id=secrets.token_hex(32), container_id=c.id, cmd=list(cmd), env=list(env),
                 user=str(body.get("User") or ""), workdir=str(body.get("WorkingDir") or ""), privileged=False,
                 attach_stdout=bool(body.get("AttachStdout", True)), attach_stderr=bool(body.get("AttachStderr", True)))
        self.by_id[e.id] = e
        self._trim()
        self.containers.on_event("exec_create", c, {"execID": e.id})
        return e

    def get(self, eid: str) -> Exec:
        """An exec by ID."""
        e = self.by_id.get(eid)
        if e is None:
            raise NotFound(f"No such exec instance: {eid}")
        return e

    def _trim(self) -> None:
        done = [e for e in self.by_id.values() if e.exit_code is not None]
        for e in done[:max(0, len(done) - KEEP)]:
            self.by_id.pop(e.id, None)

    def _process(self, c: "Container", e: Exec) -> dict[str, Any]:
        svc = self.containers
        spec = json.loads((svc.paths.bundle(c.id) / "config.json").read_text())
        proc = spec["process"]
        u = users.resolve(str(svc.paths.rootfs(c.id)), e.user or c.cfg.config.get("User") or "")
        env = _merge_env(proc.get("env") or [], e.env)
        proc.update({"terminal": False, "args": e.cmd, "env": env,
                     "cwd": e.workdir or c.cfg.config.get("WorkingDir") or "/",
                     "user": {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids}})
        return proc

    async def start(self, eid: str) -> AsyncIterator[tuple[int, bytes]]:
        """`POST /exec/{id}/start`: yields (stream, data) of its output until it exits."""
        e = self.get(eid)
        if e.started:
            raise Conflict(f"Error: Exec command {eid} has already run")
        c = self.containers.lookup(e.container_id)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        e.started = e.running = True
        svc = self.containers
        rt = svc.runtimes[c.cfg.runtime]
        gen = svc.monitor.exec({"id": c.id, "exec_id": e.id, "bundle": str(svc.paths.bundle(c.id)),
                                "runtime": rt.describe(), "process": self._process(c, e)})
        svc.on_event("exec_start", c, {"execID": e.id})
        return self._run(c, e, gen)

    async def _run(self, c: "Container", e: Exec, gen: AsyncGenerator[tuple[int, bytes], None]
                   ) -> AsyncIterator[tuple[int, bytes]]:
        try:
            async for stream, data in gen:
                if stream == 0:
                    e.pid = int(data)
                elif stream == 3:
                    e.exit_code = int(data)
                elif (stream == 1 and e.attach_stdout) or (stream == 2 and e.attach_stderr):
                    yield stream, data
        except BaseException:
            if e.exit_code is None and e.pid == 0:
                e.exit_code = 126   # it never started
            raise
        finally:
            e.running = False
            await gen.aclose()
            if e.exit_code is not None:
                self.containers.on_event("exec_die", c, {"execID": e.id, "exitCode": str(e.exit_code)})


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    out = {x.split("=", 1)[0]: x for x in base}
    for x in extra:
        if "=" in x:
            out[x.split("=", 1)[0]] = x
        else:
            out.pop(x, None)
    return list(out.values())
