"""Spare read ends of the containers' output pipes, held by the daemon.

The monitor reads each running container's stdout and stderr from named pipes in its bundle
(`stdout.fifo`, `stderr.fifo`). The daemon holds a second read end of each, never read: should
the monitor die, the container's writes do not fail with SIGPIPE but wait in the pipe (64 KiB,
then the writer blocks) until a new monitor reopens the pipes and drains them into the log.
Only a loss of the monitor and the daemon at once leaves a pipe without a reader.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..monitor.client import FIFOS


class StdioKeeper:
    """cid → the open spare read ends of its pipes."""

    def __init__(self) -> None:
        self.fds: dict[str, list[int]] = {}

    def hold(self, cid: str, bundle: Path) -> None:
        """Open (again) the spare read ends of a running container's pipes."""
        self.release(cid)
        fds = []
        for name in FIFOS:
            try:
                fds.append(os.open(bundle / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            except OSError:
                continue   # a container started before the pipes were named
        self.fds[cid] = fds

    def release(self, cid: str) -> None:
        """The container is gone: close its spare read ends."""
        for fd in self.fds.pop(cid, []):
            os.close(fd)
