"""An attached container or exec, as the docker CLI drives one: stdin to the daemon (in raw
mode when both ends are terminals, watching for the detach keys), output to the terminal (raw
with a TTY, demultiplexed otherwise), the window size sent at start and on SIGWINCH, and the
terminal restored however it ends."""

from __future__ import annotations

import _signal  # the C modules: `signal`, `socket` and `threading` import enum, selectors… (~5 ms a run)
import _socket
import _thread
import os
import sys

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
        old_winch = _signal.signal(_signal.SIGWINCH, on_winch)
        on_winch(0, None)
    detached: list[bool] = []   # set by the stdin thread when the detach keys were typed
    if stdin:   # a bare thread: nothing waits for it at exit (the daemon= of threading.Thread)
        _thread.start_new_thread(_pump_stdin, (resp.sock, infd, keys if tty else None, detached))
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
        if not detached:
            raise
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(infd, termios.TCSADRAIN, saved)
        if old_winch is not None:
            _signal.signal(_signal.SIGWINCH, old_winch)
    return DETACHED if detached else ENDED


def _pump_stdin(sock: Any, infd: int, keys: bytes | None, detached: list[bool]) -> None:
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
                sock.shutdown(_socket.SHUT_WR)   # stdin ended: the daemon closes the container's
                return
            done = False
            if filt is not None:
                data, done = filt.feed(data)
            if data:
                sock.sendall(data)
            if done:
                detached.append(True)
                sock.shutdown(_socket.SHUT_RDWR)
                return
    except OSError:
        return
