"""Dockyard's own runtime, run in forks of the monitor (everything already imported: no
interpreter start-up on a container's start).

A fork of the monitor (~25 MB) takes ~2.5 ms before the child runs its first line, and its
set-up (signals, descriptors) ~1 ms more (measured in the monitor). So one runtime process is
kept forked and set up ahead of need — the spare — waiting on a socket for a command line and
its stdio; a command takes it, and the monitor forks the next one when it is idle again. When
there is no spare (or it died), the command is forked on the spot, as before.

Either way the child runs `dockyard-runtime ARGS` with stdin/stdout/stderr as given, and writes
its exit code to the `done` descriptor as its last act (the caller need not wait for the process's
teardown and SIGCHLD). Nothing of the monitor's lives on in it: no descriptor but its stdio and
`done`, no collector, SIGKILL when the monitor dies.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass
from typing import NoReturn

from ..linux import syscalls as sc

_MAX_ARGS = 1 << 16


@dataclass
class Spare:
    """A forked runtime process waiting for its command."""
    pid: int
    sock: socket.socket


def fork_command(args: list[str], stdin: int, stdout: int, stderr: int, done: int) -> int:
    """Fork now and run the command in the child; its pid."""
    monitor = os.getpid()
    pid = os.fork()
    if pid != 0:
        return pid
    try:
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.dup2(done, 3, inheritable=False)
        _detach_from(monitor)
        _run(args)
    except BaseException:  # noqa: BLE001 - never return into the monitor's loop in the child
        os._exit(1)


def fork_spare() -> Spare:
    """Fork a runtime process that waits (set up) for `hand`."""
    monitor = os.getpid()
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid != 0:
        theirs.close()
        return Spare(pid, mine)
    try:
        os.dup2(theirs.fileno(), 3, inheritable=False)   # 3: the received descriptors land above it
        _detach_from(monitor)
        with open("/proc/self/comm", "w") as f:   # what `ps` shows for it
            f.write("dy-runtime")
        ctl = socket.socket(fileno=3)
        msg, fds, _, _ = socket.recv_fds(ctl, _MAX_ARGS, 4)
        if not msg or len(fds) != 4:   # the monitor closed it unused: nothing to do
            os._exit(0)
        for i, fd in enumerate(fds):   # fd 3 (the socket) is replaced by `done`
            os.dup2(fd, i, inheritable=i < 3)
            os.close(fd)
        ctl.detach()
        _run(json.loads(msg))
    except BaseException:  # noqa: BLE001
        os._exit(1)


def hand(spare: Spare, args: list[str], stdin: int, stdout: int, stderr: int, done: int) -> bool:
    """Give the spare its command; False when it cannot take it (it died): fork instead."""
    try:
        socket.send_fds(spare.sock, [json.dumps(args).encode()], [stdin, stdout, stderr, done])
        return True
    except OSError:
        return False
    finally:
        spare.sock.close()


def _detach_from(monitor: int) -> None:
    """Drop what belongs to the monitor: its signal handling, every descriptor above 3 (a
    client connection held here would hide the monitor's death from the daemon; a created
    container's init can wait for `start` for as long as it likes), its collector (it could
    close a reused descriptor through an object of the monitor's). Die with the monitor."""
    signal.set_wakeup_fd(-1)
    for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(s, signal.SIG_DFL)
    import gc
    gc.disable()
    os.closerange(4, os.sysconf("SC_OPEN_MAX"))
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != monitor:
        os._exit(1)


def _run(args: list[str]) -> NoReturn:
    import sys

    from ..runtime import cli as runtime_cli
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    code = 0
    try:
        runtime_cli.main(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(3, str(code).encode())
    os._exit(code)
