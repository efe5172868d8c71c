"""`dockyard-monitor --exec-root DIR`: the long-lived subreaper of a daemon's containers."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal

from ..linux import syscalls as sc

# pre-imported for the forks that run the runtime: each import here is one a container start
# does not pay (init, seccomp and rootfs were ~15% of the monitor's time per start, measured)
from ..runtime import cli as _runtime_cli  # noqa: F401
from ..runtime import exec as _runtime_exec  # noqa: F401
from ..runtime import init as _runtime_init  # noqa: F401
from .server import Monitor


async def _serve(exec_root: str) -> None:
    sock = os.path.join(exec_root, "monitor.sock")
    m = Monitor(sock)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGCHLD, m.reap)
    loop.add_signal_handler(signal.SIGTERM, m.stop.set)
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    server = await asyncio.start_unix_server(m.handle, path=sock)
    os.chmod(sock, 0o600)
    m.reap()
    m.refill()
    await m.stop.wait()
    m.drop_spare()
    server.close()
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass


def main() -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="dockyard-monitor")
    ap.add_argument("--exec-root", required=True)
    args = ap.parse_args()
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with open(os.path.join(args.exec_root, "monitor.pid"), "w") as f:
        f.write(str(os.getpid()))
    # what is imported lives as long as the monitor: out of the collector's reach, a full
    # collection no longer writes to (and so copies) the pages the spare runtime process shares
    # with the monitor (~0.4 MiB, measured)
    gc.freeze()
    asyncio.run(_serve(args.exec_root))
