"""Pseudo-terminals: open a pair in the current mount namespace, pass the master over a unix
socket (runc's `--console-socket` protocol: one SCM_RIGHTS message), make the slave a
process's controlling terminal, set a window size."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430

# the largest window a client may ask for (rows, columns); the kernel stores u16s
MAX_SIZE = 65535


def open_pair() -> tuple[int, int]:
    """(master, slave) from /dev/ptmx of the current root (the container's own devpts)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def send_master(sock: socket.socket, master: int) -> None:
    """Hand the master to whoever listens on the console socket."""
    socket.send_fds(sock, [b"/dev/ptmx"], [master])


def recv_master(sock: socket.socket) -> int | None:
    """The master sent by a runtime (None if it sent none)."""
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    return fds[0] if fds else None


def become_session(slave: int) -> None:
    """New session with the slave as controlling terminal and as stdin, stdout and stderr."""
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    if slave > 2:
        os.close(slave)


def set_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ (the foreground process group gets SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_size(fd: int) -> tuple[int, int]:
    """(rows, columns) of a terminal."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, cols
