"""Monitor server: JSON-line requests over `<exec-root>/monitor.sock`.

Requests (one JSON object per line; replies likewise):
  {"op": "start", "id", "bundle", "runtime": [argv...], "log", "exit_file", "cgroup"}
        ("log": the writer spec of logconfig.writer_spec: driver, path, max_size, max_files,
         compress, attrs)
        → {"pid": N} | {"error": msg}      runtime create + start, stdio captured
  {"op": "attach", "id", "stdin", "running"}  → {} then a binary stream of frames [stream u8][3 zero bytes]
        [len u32be][data] until exit; with "stdin", input frames the other way (stdio.py)
  {"op": "resize", "id", "exec_id"?, "h", "w"} → {} | {"error"}: the window of a pty
  {"op": "exec", "id", "exec_id", "bundle", "runtime", "process"}
        → {"pid": N} | {"error": msg}, then frames of its stdout (1) and stderr (2) and a last
          frame on stream 3 holding {"exit_code": N} when it has exited and its output is drained;
          with "stdin", input frames the other way; process.terminal gives it a pty
  {"op": "events"}        → JSON lines {"id", "exit_code", "finished_at", "oom_killed"} forever
  {"op": "list"}          → {"containers": [{"id", "pid", "running"}]}
  {"op": "adopt", "id", "pid", "bundle", "log", "exit_file", "cgroup", "runtime"}
        → {} : watch a container whose monitor was lost (its output from the named pipes
          into its log; not our child: its exit is seen through a pidfd, its code recorded as 255)
  {"op": "reopen_log", "id"} → {} | {"error"}: write the log to a new file at its path (after a rotation)
  {"op": "forget", "id"}  → {} (drop a container's record; exited ones are dropped by themselves)
  {"op": "shutdown"}      → {} and the monitor exits

When a container exits the monitor deletes the runtime's state, writes `exit.json`, then emits
the event and forgets the container. The monitor is a child subreaper: a container's init is re-parented to it when the runtime's
`create` exits, so it reaps every container's exit status itself (one SIGCHLD handler,
waitpid(-1)), never through asyncio's child watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime import cli as runtime_cli
from ..runtime import execplan
from ..runtime import state as st_mod
from ..runtime.seccomp import SeccompError
from ..runtime.spec import SpecError
from ..runtime.state import StateError
from . import runtimefork
from .client import FIFOS
from .logfile import LogWriter, now_rfc3339, open_writer
from .stdio import HIGH_WATER, ConsoleSocket, Stdin, feed, read_output, resize, stdin_pipe

STDOUT, STDERR = 1, 2


@dataclass
class Ctr:
    """One container under watch."""

    id: str
    pid: int = 0
    log: LogWriter | None = None
    exit_file: str = ""
    cgroup: str = ""
    subscribers: list[asyncio.StreamWriter] = field(default_factory=list)
    pipes: dict[int, int] = field(default_factory=dict)   # output fds being read → their stream
    status: int | None = None
    runtime: dict[str, Any] | None = None
    finishing: bool = False
    adopted: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stdin: Stdin = field(default_factory=Stdin)
    tty: int = -1                        # the pty master, held until the container is gone
    feeders: set[asyncio.Task[None]] = field(default_factory=set)


class Monitor:
    """State and request handlers."""

    def __init__(self, sock_path: str) -> None:
        self.sock_path = sock_path
        self.ctrs: dict[str, Ctr] = {}
        self.waiters: dict[int, asyncio.Future[int]] = {}
        self.orphan_status: dict[int, int] = {}
        self.event_subs: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.exec_ttys: dict[str, int] = {}
        self.spare: runtimefork.Spare | None = None

    # --- child reaping -------------------------------------------------------------
    def reap(self) -> None:
        """SIGCHLD: collect every exited child and route its status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fut = self.waiters.pop(pid, None)
            if fut is not None and not fut.done():
                fut.set_result(status)
                continue
            for c in self.ctrs.values():
                if c.pid == pid and c.status is None:
                    self._exited(c, status)
                    break
            else:
                self.orphan_status[pid] = status

    def _wait_pid(self, pid: int) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if pid in self.orphan_status:
            fut.set_result(self.orphan_status.pop(pid))
        else:
            self.waiters[pid] = fut
        return fut

    async def _run(self, rt: dict[str, Any], args: list[str], stdout: int, stderr: int, stdin: int = -1) -> int:
        """Run a runtime command with the given stdio (stdin /dev/null unless given); return its
        exit code."""
        argv = list(rt["argv"]) + args
        devnull = os.open(os.devnull, os.O_RDWR)
        stdin = devnull if stdin < 0 else stdin
        done_r = done_w = -1
        try:
            if rt.get("builtin"):
                done_r, done_w = os.pipe2(os.O_CLOEXEC)
                pid = self._fork_runtime(argv[1:], stdin, stdout, stderr, done_w)
            else:
                pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
                    (os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                    (os.POSIX_SPAWN_DUP2, stderr, 2)])
        except BaseException:
            if done_r >= 0:
                os.close(done_r)
            raise
        finally:
            os.close(devnull)
            if done_w >= 0:
                os.close(done_w)
        exited = self._wait_pid(pid)
        if done_r >= 0:
            try:
                code = await _exit_code_from(done_r, exited)
            finally:
                os.close(done_r)
            if code is not None:
                return code
        return os.waitstatus_to_exitcode(await exited)

    def _fork_runtime(self, args: list[str], stdin: int, stdout: int, stderr: int, done: int) -> int:
        """Dockyard's runtime CLI with these arguments in a fork of this process: the spare
        one when there is one (runtimefork.py), else forked now."""
        spare, self.spare = self.spare, None
        if spare is not None and runtimefork.hand(spare, args, stdin, stdout, stderr, done):
            return spare.pid
        return runtimefork.fork_command(args, stdin, stdout, stderr, done)

    def refill(self) -> None:
        """Fork the next spare runtime process, if there is none (called when idle)."""
        if self.spare is None and not self.stop.is_set():
            with contextlib.suppress(OSError):   # no process to spare now (EAGAIN): forked when needed
                self.spare = runtimefork.fork_spare()

    def drop_spare(self) -> None:
        """The spare exits (it reads the end of its socket)."""
        if self.spare is not None:
            self.spare.sock.close()
            self.spare = None

    async def run_captured(self, rt: dict[str, Any], args: list[str]) -> dict[str, Any]:
        """The `runtime` op: run and capture small outputs."""
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            rc = await self._run(rt, args, out_w, err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            return {"rc": rc, "out": _drain(out_r), "err": _drain(err_r)}
        finally:
            os.close(out_r)
            os.close(err_r)

    # --- container lifecycle -------------------------------------------------------
    async def start(self, req: dict[str, Any]) -> dict[str, Any]:
        """runtime create + start with the container's stdio on our pipes."""
        cid = req["id"]
        old = self.ctrs.get(cid)
        if old is not None and old.status is None and old.pid:
            return {"error": f"container {cid} is already running"}
        if old is not None and old.pid == 0:
            c = old  # clients attached before start
        else:
            c = self.ctrs[cid] = Ctr(cid)
        c.exit_file, c.cgroup, c.runtime = req["exit_file"], req.get("cgroup", ""), req["runtime"]
        rt = req["runtime"]
        rlog = os.path.join(req["bundle"], "runtime.log")
        pidfile = os.path.join(req["bundle"], "init.pid")
        for p in (rlog, pidfile):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        terminal = bool(req.get("terminal"))
        con = ConsoleSocket(req["bundle"]) if terminal else None
        stdin_r, stdin_w = stdin_pipe() if req.get("stdin") and not terminal else (-1, -1)
        master: int | None = None
        if terminal:   # all output comes from the pty master; the runtime's own goes to its log
            pipes = [os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)]
        else:
            # named pipes in the bundle, not anonymous ones: the daemon holds a spare read end of
            # each, so a writer does not die of SIGPIPE when this monitor does, and a new monitor
            # reopens them by path and drains what was written meanwhile
            pipes = [_fifo(os.path.join(req["bundle"], n)) for n in FIFOS]
        try:
            rt_log = _with_log(rt, rlog)
            con_args = ["--console-socket", con.path] if con is not None else []
            rc = await self._run(rt_log, ["create", "--bundle", req["bundle"], "--pid-file", pidfile, *con_args, cid],
                                 pipes[0][1], pipes[1][1], stdin_r)
            if rc != 0:
                raise _StartFailed(_runtime_error(rlog) or f"runtime create exited with {rc}")
            pid = int(open(pidfile).read())
            if con is not None:
                master = con.master()
                if master is None:
                    os.kill(pid, signal.SIGKILL)
                    raise _StartFailed("the runtime sent no terminal on its console socket")
        except BaseException as e:
            for fd in (pipes[0][0], pipes[1][0], stdin_w):
                if fd >= 0:
                    os.close(fd)
            if isinstance(e, _StartFailed):
                return {"error": str(e)}
            raise
        finally:
            for fd in (pipes[0][1], pipes[1][1], stdin_r):
                if fd >= 0:
                    os.close(fd)
            if con is not None:
                con.close()
        if master is not None:
            for fd in (pipes[0][0], pipes[1][0]):
                os.close(fd)
            size = req.get("console_size")
            if size and size[0] and size[1]:
                _set_size(master, int(size[0]), int(size[1]))
            c.tty = master
        c.stdin.fd, c.stdin.is_tty, c.stdin.once = (master if master is not None else stdin_w,
                                                   terminal, bool(req.get("stdin_once")))
        if not req.get("stdin") and not terminal:
            c.stdin.fd = -1
        c.stdin.ready.set()
        c.pid = pid
        c.log = open_writer(req["log"])
        loop = asyncio.get_running_loop()
        outputs = [(STDOUT, master)] if master is not None else [(STDOUT, pipes[0][0]), (STDERR, pipes[1][0])]
        for stream, r in outputs:
            os.set_blocking(r, False)
            c.pipes[r] = stream
            loop.add_reader(r, self._on_output, c, stream, r)
        if pid in self.orphan_status:
            self._exited(c, self.orphan_status.pop(pid))
        if rt.get("builtin") and rt.get("root"):
            err = await self._open_gate(c, Path(rt["root"]), cid)
        else:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                rc = await self._run(rt_log, ["start", cid], devnull, devnull)
            finally:
                os.close(devnull)
            err = (_runtime_error(rlog) or f"runtime start exited with {rc}") if rc != 0 else ""
        if err:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return {"error": err}
        asyncio.get_running_loop().call_later(0.02, self.refill)   # once the answer is out
        return {"pid": pid}

    async def _open_gate(self, c: Ctr, root: Path, cid: str) -> str:
        """`start` of Dockyard's own runtime, done here instead of in a forked runtime (one fork
        and ~4 ms less per container start): open the exec fifo the created init waits on, read its
        byte, remove it. "" or why the start failed."""
        try:
            st = st_mod.load(root, cid)
        except StateError as e:
            return str(e)
        if (s := st_mod.status(root, st)) != "created":
            return f"cannot start a container that has {'stopped' if s == 'stopped' else 'already started'}"
        fifo = st_mod.container_dir(root, cid) / "exec.fifo"
        # non-blocking: the open returns at once (and lets the init's blocking open for writing
        # return); epoll reports the fifo only once the init has written, or closed it unwritten
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        loop = asyncio.get_running_loop()
        try:
            while True:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _resolve, ready)
                try:
                    await asyncio.wait([ready], timeout=0.1)
                finally:
                    loop.remove_reader(fd)
                try:
                    data = os.read(fd, 1)
                except BlockingIOError:
                    data = None
                if data == b"0":
                    break
                if (data is not None and ready.done()) or c.status is not None:
                    return "the container's init exited before it was started"
        finally:
            os.close(fd)
        fifo.unlink(missing_ok=True)
        return ""

    def _on_output(self, c: Ctr, stream: int, fd: int) -> None:
        try:
            data = read_output(fd, more=True)
        except BlockingIOError:
            return
        loop = asyncio.get_running_loop()
        if not data:
            loop.remove_reader(fd)
            if fd != c.tty:   # the master is closed when the container is gone (stdin may use it)
                os.close(fd)
            del c.pipes[fd]
            self._maybe_finish(c)
            return
        if c.log:
            c.log.feed("stdout" if stream == STDOUT else "stderr", data)
        frame = struct.pack(">BxxxI", stream, len(data)) + data
        slow = []
        for w in list(c.subscribers):
            if w.is_closing():
                c.subscribers.remove(w)
            else:
                w.write(frame)
                if w.transport.get_write_buffer_size() > HIGH_WATER:
                    slow.append(w)
        if slow:   # an attached client that reads slowly slows the container, as with dockerd
            loop.remove_reader(fd)
            self._spawn(self._resume_output(c, stream, fd, slow))

    async def _resume_output(self, c: Ctr, stream: int, fd: int, slow: list[asyncio.StreamWriter]) -> None:
        for w in slow:
            try:
                await w.drain()
            except (ConnectionError, RuntimeError):
                pass
        if fd in c.pipes:
            asyncio.get_running_loop().add_reader(fd, self._on_output, c, stream, fd)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def _exited(self, c: Ctr, status: int) -> None:
        c.status = status
        if c.pipes and c.cgroup:
            # processes that outlive the container's first one keep its output open: with a PID namespace
            # of its own the kernel has killed them already; in a shared one (`--pid container:`/`host`,
            # a pod's containers) they are killed here, as containerd's shim does
            _kill_leftovers(c.cgroup)
        self._maybe_finish(c)

    def _maybe_finish(self, c: Ctr) -> None:
        if c.status is None or c.pipes or c.finishing:
            return
        c.finishing = True
        t = asyncio.get_running_loop().create_task(self._finish(c))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _finish(self, c: Ctr) -> None:
        """The container is gone and its output drained: delete the runtime's state, record the
        exit (exit.json survives a daemon crash), tell subscribers, forget it."""
        status = c.status or 0
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        ev = {"id": c.id, "exit_code": code, "finished_at": now_rfc3339(), "oom_killed": _oom_killed(c.cgroup)}
        if c.adopted:
            ev["lost"] = True   # not our child: its real exit code is unknowable
        if c.log:
            c.log.close()
        for t in list(c.feeders):
            t.cancel()
        await asyncio.gather(*c.feeders, return_exceptions=True)
        c.stdin.close()
        if c.tty >= 0:
            os.close(c.tty)
            c.tty = -1
        # Dockyard's own runtime: its `delete` done here (no fork on the way from the exit to its
        # event) unless it would have to wait
        if c.runtime and not (c.runtime.get("builtin") and c.runtime.get("root")
                              and runtime_cli.delete(Path(c.runtime["root"]), c.id, wait=False)):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                await self._run(c.runtime, ["delete", "--force", c.id], devnull, devnull)
            except OSError:
                pass  # the daemon deletes it on its side if this failed
            finally:
                os.close(devnull)
        tmp = c.exit_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(ev, f)
        os.replace(tmp, c.exit_file)
        c.done.set()
        for w in c.subscribers:
            _half_close(w)   # the end of output; each attach connection closes once its input is read out
        c.subscribers.clear()
        if self.ctrs.get(c.id) is c:
            del self.ctrs[c.id]
            execplan.forget(c.id)
        line = (json.dumps(ev) + "\n").encode()
        for w in list(self.event_subs):
            if w.is_closing():
                self.event_subs.remove(w)
            else:
                w.write(line)
        # not at once: the daemon is removing the container now, on a machine with few CPUs
        asyncio.get_running_loop().call_later(0.01, self.refill)

    def resize(self, req: dict[str, Any]) -> dict[str, Any]:
        """Set the window size of a container's or an exec's pty."""
        if req.get("exec_id"):
            fd = self.exec_ttys.get(req["exec_id"], -1)
        else:
            c = self.ctrs.get(req["id"])
            fd = c.tty if c is not None else -1
        if fd < 0:
            return {"error": "no terminal"}
        try:
            resize(fd, int(req["h"]), int(req["w"]))
        except (OSError, ValueError, OverflowError) as e:
            return {"error": f"resize: {e}"}
        return {}

    def adopt(self, req: dict[str, Any]) -> dict[str, Any]:
        """Watch a running container that another (lost) monitor started: its output goes on
        into its log from the named pipes; its exit is seen through a pidfd (it is not our
        child, so its exit code is unknowable and recorded as 255)."""
        if req["id"] in self.ctrs:
            return {}
        c = Ctr(req["id"], pid=int(req["pid"]), exit_file=req["exit_file"], cgroup=req.get("cgroup", ""),
                runtime=req.get("runtime"), adopted=True)
        self.ctrs[c.id] = c
        c.log = open_writer(req["log"])
        loop = asyncio.get_running_loop()
        for stream, name in ((STDOUT, FIFOS[0]), (STDERR, FIFOS[1])):
            try:
                r = os.open(os.path.join(req["bundle"], name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                continue
            c.pipes[r] = stream
            loop.add_reader(r, self._on_output, c, stream, r)
        try:
            pfd = os.pidfd_open(c.pid)
        except ProcessLookupError:
            self._drain_adopted(c)
            self._exited(c, 255 << 8)
            return {}

        def gone() -> None:
            loop.remove_reader(pfd)
            os.close(pfd)
            self._drain_adopted(c)
            self._exited(c, 255 << 8)
        loop.add_reader(pfd, gone)
        return {}

    def _drain_adopted(self, c: Ctr) -> None:
        """The adopted init is gone: take what its pipes still hold and close them (a pipe opened
        after its last writer left never reports the end to poll)."""
        for fd, stream in list(c.pipes.items()):
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                if c.log:
                    c.log.feed("stdout" if stream == STDOUT else "stderr", data)
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
            del c.pipes[fd]

    # --- exec -----------------------------------------------------------------------
    async def _exec_process(self, req: dict[str, Any], base: str, con: ConsoleSocket | None,
                            stdout: int, stderr: int, stdin: int) -> tuple[int | None, str]:
        """Start an exec's process: (its pid, "") or (None, why not). Dockyard's own runtime
        goes through dockyard-nsexec when it is built (no fork of this process, no interpreter:
        runtime/execplan.py), any other runtime (and ours without the helper) through its `exec -d`."""
        rt, cid = req["runtime"], req["id"]
        if rt.get("builtin") and rt.get("root") and execplan.enabled():
            plan_file = base + ".plan"
            try:
                plan = execplan.build(Path(rt["root"]), cid, req["process"], con.path if con is not None else None)
                with open(plan_file, "wb") as pf:
                    pf.write(plan)
            except (StateError, SpecError, SeccompError, ValueError, OSError) as e:
                return None, str(e)
            st_r, st_w = os.pipe2(os.O_CLOEXEC)
            devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) if stdin < 0 else -1
            try:
                helper = os.posix_spawn(str(execplan.HELPER), [str(execplan.HELPER), plan_file], {}, file_actions=[
                    (os.POSIX_SPAWN_DUP2, stdin if stdin >= 0 else devnull, 0), (os.POSIX_SPAWN_DUP2, stdout, 1),
                    (os.POSIX_SPAWN_DUP2, stderr, 2), (os.POSIX_SPAWN_DUP2, st_w, 3)])
            finally:
                os.close(st_w)
                if devnull >= 0:
                    os.close(devnull)
            try:
                rc = os.waitstatus_to_exitcode(await self._wait_pid(helper))
                status = _drain(st_r).strip()
            finally:
                os.close(st_r)
                with contextlib.suppress(OSError):
                    os.unlink(plan_file)
            if rc == 0 and status.startswith("pid "):
                return int(status[4:]), ""
            return None, status[6:] if status.startswith("error ") else f"dockyard-nsexec exited with {rc}"
        proc_file, pidfile, rlog = base + ".json", base + ".pid", base + ".log"
        with open(proc_file, "w") as f:
            json.dump(req["process"], f)
        con_args = ["--console-socket", con.path] if con is not None else []
        rc = await self._run(_with_log(rt, rlog), ["exec", "--process", proc_file, "--pid-file", pidfile, *con_args,
                                                  "-d", cid], stdout, stderr, stdin)
        try:
            if rc != 0:
                return None, _runtime_error(rlog) or f"runtime exec exited with {rc}"
            return int(open(pidfile).read()), ""
        finally:
            for path in (proc_file, pidfile, rlog):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    async def exec_(self, req: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Another process in a running container (`runtime exec -d`), its output streamed to
        this connection (a client that leaves does not stop it: its output is then read and
        dropped until it exits); it is re-parented to us, so its exit status comes through `reap`."""
        cid, eid = req["id"], req["exec_id"]
        c = self.ctrs.get(cid)
        if c is None or c.status is not None or not c.pid:
            writer.write((json.dumps({"error": f"container {cid} is not running"}) + "\n").encode())
            return
        base = os.path.join(req["bundle"], f"exec-{eid}")
        terminal = bool(req["process"].get("terminal"))
        con = ConsoleSocket(req["bundle"]) if terminal else None
        pipes = [os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)]
        stdin_r, stdin_w = stdin_pipe() if req.get("stdin") and not terminal else (-1, -1)
        stdin = Stdin()
        feeder: asyncio.Task[None] | None = None
        master: int | None = None
        try:
            pid, err = None, ""
            try:
                pid, err = await self._exec_process(req, base, con, pipes[0][1], pipes[1][1], stdin_r)
            finally:
                for fd in (pipes[0][1], pipes[1][1], stdin_r):
                    if fd >= 0:
                        os.close(fd)
                master = con.master() if con is not None else None
                if con is not None:
                    con.close()
            if pid is None:
                if master is not None:
                    os.close(master)
                writer.write((json.dumps({"error": err}) + "\n").encode())
                return
            exited = self._wait_pid(pid)
            if terminal and master is None:
                os.kill(pid, signal.SIGKILL)
                writer.write(b'{"error": "the runtime sent no terminal on its console socket"}\n')
                return
            if master is not None:
                self.exec_ttys[eid] = master
                size = req.get("console_size")
                if size and size[0] and size[1]:
                    _set_size(master, int(size[0]), int(size[1]))
            stdin.fd = master if master is not None else stdin_w
            stdin.is_tty = master is not None
            stdin.ready.set()
            writer.write((json.dumps({"pid": pid}) + "\n").encode())
            if req.get("stdin"):
                feeder = asyncio.get_running_loop().create_task(feed(reader, stdin, exec_=True))
            outs = [(STDOUT, master)] if master is not None else [(STDOUT, pipes[0][0]), (STDERR, pipes[1][0])]
            await asyncio.gather(*(self._pump(r, stream, writer) for stream, r in outs))
            code = os.waitstatus_to_exitcode(await exited)
            code = 128 - code if code < 0 else code
            payload = json.dumps({"exit_code": code}).encode()
            if not writer.is_closing():
                writer.write(struct.pack(">BxxxI", 3, len(payload)) + payload)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
                feeder = None
            await _hang_up(reader, writer)
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
            stdin.close()
            self.exec_ttys.pop(eid, None)
            for fd in (pipes[0][0], pipes[1][0], master if master is not None else -1):
                if fd < 0:
                    continue
                try:
                    os.close(fd)
                except OSError:
                    pass

    async def _pump(self, fd: int, stream: int, writer: asyncio.StreamWriter) -> None:
        """Frames from a pipe until its end (every holder of the write side has closed it)."""
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        while True:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            try:
                data = read_output(fd)
            except BlockingIOError:
                continue
            if not data:
                return
            if not writer.is_closing():
                writer.write(struct.pack(">BxxxI", stream, len(data)) + data)
                try:
                    await writer.drain()
                except ConnectionError:
                    pass   # the client left; the process runs on, its output dropped

    # --- connections ----------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection."""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                req = json.loads(line)
                op = req.get("op")
                if op == "attach":
                    c = self.ctrs.get(req["id"])
                    if (c is None or c.finishing) and req.get("running"):
                        # the daemon saw it running, and it has exited since: nothing to wait for
                        # (a pending entry here would wait for a start that never comes)
                        writer.write(b"{}\n")
                        await writer.drain()
                        return
                    if c is None or c.finishing:
                        c = self.ctrs[req["id"]] = Ctr(req["id"])
                    c.subscribers.append(writer)
                    writer.write(b"{}\n")
                    if req.get("stdin"):
                        t = asyncio.get_running_loop().create_task(feed(reader, c.stdin, exec_=False))
                        c.feeders.add(t)
                        t.add_done_callback(c.feeders.discard)
                        done = asyncio.get_running_loop().create_task(c.done.wait())
                        # until the container is gone, or the daemon hangs up (a detach: stdin
                        # closes are frames, so the input ends only with the connection)
                        await asyncio.wait([t, done], return_when=asyncio.FIRST_COMPLETED)
                        done.cancel()
                        if writer in c.subscribers:
                            c.subscribers.remove(writer)
                        if not t.done():   # the container is gone: read the daemon's last input out
                            t.cancel()
                            await asyncio.gather(t, return_exceptions=True)
                            await _hang_up(reader, writer)
                    else:
                        await c.done.wait()
                    return
                if op == "exec":
                    await self.exec_(req, reader, writer)
                    return
                if op == "resize":
                    writer.write((json.dumps(self.resize(req)) + "\n").encode())
                    await writer.drain()
                    continue
                if op == "events":
                    self.event_subs.append(writer)
                    writer.write(b"{}\n")
                    await reader.read()  # until the daemon hangs up
                    return
                if op == "start":
                    rep = await self.start(req)
                elif op == "runtime":
                    rep = await self.run_captured(req["runtime"], list(req["args"]))
                elif op == "adopt":
                    rep = self.adopt(req)
                elif op == "list":
                    rep = {"containers": [{"id": c.id, "pid": c.pid, "running": c.status is None and c.pid > 0}
                                          for c in self.ctrs.values() if c.pid]}
                elif op == "forget":
                    c = self.ctrs.get(req["id"])
                    if c is not None and (c.done.is_set() or not c.pid):
                        del self.ctrs[req["id"]]
                        c.done.set()   # clients attached to a container that never started
                        for w in c.subscribers:
                            w.close()
                    rep = {}
                elif op == "reopen_log":
                    c = self.ctrs.get(req["id"])
                    if c is None or c.log is None:
                        rep = {"error": f"no log is written for {req['id']}"}
                    else:
                        try:
                            c.log.reopen()
                            rep = {}
                        except OSError as e:
                            rep = {"error": f"reopening the log: {e}"}
                elif op == "shutdown":
                    self.stop.set()
                    rep = {}
                else:
                    rep = {"error": f"unknown op {op!r}"}
                writer.write((json.dumps(rep) + "\n").encode())
                await writer.drain()
        except (ConnectionError, json.JSONDecodeError, KeyError):
            pass
        finally:
            if writer in self.event_subs:
                self.event_subs.remove(writer)
            writer.close()


def _half_close(writer: asyncio.StreamWriter) -> None:
    """End what we send (the peer reads all of it, then EOF)."""
    if not writer.is_closing() and writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float = 10) -> None:
    """End a channel without losing what is still on its way to the daemon: half-close, read
    out what the daemon still sends (stdin written after the process ended) until it closes
    its side. Closing with unread input would make the kernel reset the daemon's end
    (ECONNRESET), and asyncio then drops the frames it had received but not yet handed on."""
    _half_close(writer)
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError):
        pass


class _StartFailed(Exception):
    """The runtime could not create the container."""


def _set_size(fd: int, rows: int, cols: int) -> None:
    try:
        resize(fd, rows, cols)
    except OSError:
        pass


def _fifo(path: str) -> tuple[int, int]:
    """A new named pipe at `path`: (read end, non-blocking; write end)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.mkfifo(path, 0o600)
    r = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return r, os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except BaseException:
        os.close(r)
        raise


def _with_log(rt: dict[str, Any], rlog: str) -> dict[str, Any]:
    """The runtime invocation with runc's global `--log FILE --log-format json` (errors land there)."""
    return {**rt, "argv": rt["argv"][:1] + ["--log", rlog, "--log-format", "json"] + rt["argv"][1:]}


async def _exit_code_from(fd: int, exited: asyncio.Future[int]) -> int | None:
    """The exit code a forked runtime command writes to `fd` as its last act, as soon as it is
    written: its process's teardown and the SIGCHLD that follows cost ~2 ms more (measured).
    None when the command died without writing it (its exit status then tells)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _resolve, ready)
    try:
        either: list[asyncio.Future[Any]] = [ready, exited]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(fd)
    try:
        data = os.read(fd, 16)   # once it exited, what it wrote is still there
    except BlockingIOError:
        return None
    return int(data) if data.strip().lstrip(b"-").isdigit() else None


def _drain(fd: int) -> str:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def _runtime_error(path: str) -> str:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return line
        if rec.get("level") in ("error", "fatal"):
            return str(rec.get("msg", ""))
    return ""


def _kill_leftovers(cgroup: str) -> None:
    for p in (f"/sys/fs/cgroup/pids{cgroup}/cgroup.procs", f"/sys/fs/cgroup/memory{cgroup}/cgroup.procs",
              f"/sys/fs/cgroup{cgroup}/cgroup.procs"):
        try:
            with open(p) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return


def _oom_killed(cgroup: str) -> bool:
    if not cgroup:
        return False
    for p, key in ((f"/sys/fs/cgroup/memory{cgroup}/memory.oom_control", "oom_kill"),
                   (f"/sys/fs/cgroup{cgroup}/memory.events", "oom_kill")):
        try:
            for line in open(p):
                k, _, v = line.partition(" ")
                if k == key and int(v) > 0:
                    return True
        except OSError:
            continue
    return False


def _resolve(f: asyncio.Future[None]) -> None:
    if not f.done():
        f.set_result(None)
