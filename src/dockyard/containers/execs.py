"""`docker exec`: more processes in a running container, with a pty and stdin if asked.

An exec is created (its config checked and kept), then started: the process spec is the
container's own (`config.json`: capabilities, rlimits, seccomp comes with the bundle) with the
exec's command, environment, user and working directory; the monitor runs it through the
runtime's `exec` and streams its output; the exit code is kept for `GET /exec/{id}/json`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import detachkeys
from ..errors import Conflict, InvalidArgument, NotFound, SystemError_
from ..monitor.client import Channel
from . import security, terminal, users

if TYPE_CHECKING:
    from .model import Container
    from .service import ContainerService

log = logging.getLogger(__name__)
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
    tty: bool = False
    attach_stdin: bool = False
    detach_keys: str = ""
    console_size: list[int] | None = None
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    launched: asyncio.Event = field(default_factory=asyncio.Event)   # its process exists (or failed to)

    def inspect(self) -> dict[str, Any]:
        """`GET /exec/{id}/json`."""
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0], "arguments": self.cmd[1:],
                                  "privileged": self.privileged, "user": self.user},
                "OpenStdin": self.attach_stdin, "OpenStderr": self.attach_stderr, "OpenStdout": self.attach_stdout,
                "CanRemove": False, "ContainerID": self.container_id, "DetachKeys": self.detach_keys,
                "Pid": self.pid}


class ExecService:
    """Exec instances of one daemon."""

    def __init__(self, containers: "ContainerService") -> None:
        self.containers = containers
        self.by_id: dict[str, Exec] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def create(self, ref: str, body: dict[str, Any]) -> Exec:
        """`POST /containers/{id}/exec`."""
        c = self.containers.lookup(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.status.value == "paused":
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not isinstance(body, dict):
            raise InvalidArgument("exec config must be a JSON object")
        body = _canonical(body)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidArgument("No exec command specified")
        keys = str(body.get("DetachKeys") or "")
        if keys:
            detachkeys.parse_keys(keys)
        size = body.get("ConsoleSize")
        if size is not None:
            if not (isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) for x in size)):
                raise InvalidArgument("ConsoleSize must be [height, width]")
            terminal.check_size(size[0], size[1])
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise InvalidArgument("Env must be a list of strings")
        e = Exec(id=secrets.token_hex(32), container_id=c.id, cmd=list(cmd), env=list(env),
                 user=str(body.get("User") or ""), workdir=str(body.get("WorkingDir") or ""),
                 privileged=bool(body.get("Privileged")), attach_stdout=bool(body.get("AttachStdout", True)),
                 attach_stderr=bool(body.get("AttachStderr", True)), tty=bool(body.get("Tty")),
                 attach_stdin=bool(body.get("AttachStdin")), detach_keys=keys, console_size=size)
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
        if e.tty and not any(x.startswith("TERM=") for x in env):
            env.append("TERM=xterm")
        if e.privileged:   # as dockerd: every capability the host has; seccomp stays the container's
            allcaps = security.host_caps()
            proc["capabilities"] = {k: list(allcaps) for k in ("bounding", "effective", "permitted")}
        proc.update({"terminal": e.tty, "args": e.cmd, "env": env,
                     "cwd": e.workdir or c.cfg.config.get("WorkingDir") or "/",
                     "user": {"uid": u.uid, "gid": u.gid, "additionalGids": list(dict.fromkeys(
                         u.additional_gids + users.group_ids(str(svc.paths.rootfs(c.id)),
                                                             list(c.cfg.host_config.get("GroupAdd") or []))))}})
        return proc

    def startable(self, eid: str, console_size: list[int] | None = None) -> tuple[Exec, "Container"]:
        """The exec and its container if it can start now; 404/409/400 otherwise."""
        e = self.get(eid)
        if e.started:
            raise Conflict(f"Error: Exec command {eid} has already run")
        c = self.containers.lookup(e.container_id)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if console_size is not None:
            terminal.check_size(console_size[0], console_size[1])
        return e, c

    async def start(self, eid: str, detach: bool = False, console_size: list[int] | None = None
                    ) -> tuple["ExecInput", AsyncIterator[tuple[int, bytes]]]:
        """`POST /exec/{id}/start`: the process's stdin and its output frames until it exits
        (none with `detach`)."""
        e, c = self.startable(eid, console_size)
        e.started = e.running = True
        svc = self.containers
        rt = svc.runtimes[c.cfg.runtime]
        try:
            ch = await svc.monitor_of(c).exec({"id": c.id, "exec_id": e.id, "bundle": str(svc.paths.bundle(c.id)),
                                         "runtime": rt.describe(), "process": self._process(c, e),
                                         "stdin": e.attach_stdin, "console_size": console_size or e.console_size})
        except BaseException:
            e.running = False
            e.exit_code = 126   # it never started
            e.launched.set()
            raise
        e.pid = ch.pid
        e.launched.set()
        svc.on_event("exec_start", c, {"execID": e.id})
        return ExecInput(ch), self._run(c, e, ch, attached=not detach)

    async def resize(self, eid: str, h: int, w: int) -> None:
        """`POST /exec/{id}/resize`."""
        e = self.get(eid)
        terminal.check_size(h, w)
        if not e.tty:
            raise Conflict(f"exec {eid} has no terminal (it was created without Tty)")
        if e.started and not e.launched.is_set():
            # as dockerd: a resize right after the start waits (10 s) for the process to exist
            try:
                await asyncio.wait_for(e.launched.wait(), 10)
            except TimeoutError:
                raise Conflict("timeout waiting for exec session ready") from None
        if not e.running:
            raise Conflict(f"exec {eid} is not running")
        try:
            c = self.containers.by_id.get(e.container_id)
            if c is None:
                raise Conflict(f"exec {eid} is not running")
            await self.containers.monitor_of(c).resize(e.container_id, h, w, exec_id=e.id)
        except SystemError_ as err:
            raise Conflict(f"cannot resize exec {eid}: {err.message}") from None

    def _run(self, c: "Container", e: Exec, ch: Channel, attached: bool) -> AsyncIterator[tuple[int, bytes]]:
        """Read the process's channel in a task of its own until it exits (its exit code is
        recorded even when no client is attached any more); the returned iterator gives its
        output for as long as a client reads it."""
        q: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=16)
        still = [attached]

        async def pump() -> None:
            try:
                async for stream, data in ch.frames():
                    if stream == 3:
                        e.exit_code = int(data)
                    elif still[0] and ((stream == 1 and e.attach_stdout) or (stream == 2 and e.attach_stderr)):
                        await q.put((stream, data))
            except (ConnectionError, OSError) as err:
                log.warning("exec %s: the monitor's stream broke: %s", e.id[:12], err)
            finally:
                e.running = False
                ch.close()
                if e.exit_code is not None:
                    self.containers.on_event("exec_die", c, {"execID": e.id, "exitCode": str(e.exit_code)})
                if still[0]:
                    await q.put(None)

        t = asyncio.get_running_loop().create_task(pump())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

        async def frames() -> AsyncIterator[tuple[int, bytes]]:
            try:
                while (item := await q.get()) is not None:
                    yield item
            finally:
                still[0] = False
                while not q.empty():
                    q.get_nowait()
        return frames()


class ExecInput:
    """An exec's stdin for a client: hanging up leaves the process (and its channel) running."""

    def __init__(self, ch: Channel) -> None:
        self.ch = ch

    async def send(self, data: bytes) -> None:
        """Stdin bytes."""
        await self.ch.send(data)

    async def close_stdin(self) -> None:
        """The client's input ended."""
        await self.ch.close_stdin()

    def close(self) -> None:
        """A detach: nothing to do (the process's own task closes the channel when it exits)."""


# ExecConfig (v1.47); JSON keys match case-insensitively, as Go decodes them (docker-py sends
# "detachKeys"). "Container" and "Detach" are old clients' fields that dockerd ignores on create
# too (docker-py and the 20.10 CLI send them): the path names the container, the start detaches.
_EXEC_KEYS = {k.lower(): k for k in ("AttachStdin", "AttachStdout", "AttachStderr", "ConsoleSize", "DetachKeys",
                                     "Tty", "Env", "Cmd", "Privileged", "User", "WorkingDir", "Container",
                                     "Detach")}


def _canonical(body: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in body.items():
        name = _EXEC_KEYS.get(k.lower())
        if name is None:
            raise InvalidArgument(f"exec config: unknown field {k!r}")
        out[name] = v
    return out


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    out = {x.split("=", 1)[0]: x for x in base}
    for x in extra:
        if "=" in x:
            out[x.split("=", 1)[0]] = x
        else:
            out.pop(x, None)
    return list(out.values())
