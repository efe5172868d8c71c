"""An attached container or exec, as the docker CLI drives one: stdin to the daemon (in raw
mode when both ends are terminals, watching for the detach keys), output to the terminal (raw
with a TTY, demultiplexed otherwise), the window size sent at start and on SIGWINCH, and the
terminal restored however it ends."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

ENDED, DETACHED = "ended", "detached"


def window(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of a terminal fd, or None."""
    if not os.isatty(fd):
        return None
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def stream(resp: Any, *, tty: bool, stdin: bool, keys: bytes | None,
           resize: Callable[[int, int], None] | None) -> str:
    """Pump until the output ends (ENDED) or the detach keys were typed (DETACHED)."""
    infd, outfd = sys.stdin.fileno(), sys.stdout.fileno()
    saved = None
    if tty and stdin and os.isatty(infd):
        import termios
        import tty as tty_mod
        saved = termios.tcgetattr(infd)
        tty_mod.setraw(infd, termios.TCSANOW)   # keystrokes typed before we were ready are kept
    old_winch = None
    if tty and resize is not None and window(outfd):

        def on_winch(_s: int, _f: Any) -> None:
            size = window(outfd)
            if size:
                try:
                    resize(*size)
                except Exception:  # noqa: BLE001 - a failed resize never ends the session
                    pass
        old_winch = signal.signal(signal.SIGWINCH, on_winch)
        on_winch(0, None)
    detached = threading.Event()
    if stdin:
        t = threading.Thread(target=_pump_stdin, args=(resp.sock, infd, keys if tty else None, detached),
                             daemon=True)
        t.start()
    try:
        out = sys.stdout.buffer
        if tty:
            while data := resp.read1():
                out.write(data)
                out.flush()
        else:
            from ..client.api import demux
            err = sys.stderr.buffer
            for s, data in demux(resp):
                w = err if s == 2 else out
                w.write(data)
                w.flush()
    except OSError:
        if not detached.is_set():
            raise
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(infd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
    return DETACHED if detached.is_set() else ENDED


def _pump_stdin(sock: socket.socket, infd: int, keys: bytes | None, detached: threading.Event) -> None:
    filt = None
    if keys:
        from ..detachkeys import EscapeFilter
        filt = EscapeFilter(keys)
    try:
        while True:
            data = os.read(infd, 65536)
            if not data:
                if filt is not None and (held := filt.flush()):
                    sock.sendall(held)
                sock.shutdown(socket.SHUT_WR)   # stdin ended: the daemon closes the container's
                return
            done = False
            if filt is not None:
                data, done = filt.feed(data)
            if data:
                sock.sendall(data)
            if done:
                detached.set()
                sock.shutdown(socket.SHUT_RDWR)
                return
    except OSError:
        return
