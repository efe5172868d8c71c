"""`dockyardd`: start the engine, serve the API on unix sockets, shut down cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import signal
import socket
import ssl
import sys

from aiohttp import web

from ..api.streams import hang_up_all
from ..errors import EngineError
from . import config as config_mod
from .app import build_services

log = logging.getLogger("dockyard.daemon")


def _socket_in_use(path: str) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _tls_context(cfg: config_mod.Config) -> ssl.SSLContext:
    """Server TLS that requires a client certificate signed by --tlscacert (as --tlsverify)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.tlscacert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
    except (OSError, ssl.SSLError) as e:
        raise EngineError(f"could not load the TLS certificate {cfg.tlscert} / key {cfg.tlskey}: {e}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def _unix_site(runner: web.AppRunner, path: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    # as Go's listeners (dockerd): the kernel's somaxconn, not asyncio's 100 — 200 clients
    # connecting at once otherwise get EAGAIN
    await web.UnixSite(runner, path, backlog=_somaxconn()).start()
    os.chmod(path, mode)


def _somaxconn() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(128, int(f.read()))
    except (OSError, ValueError):
        return 4096


async def serve(cfg: config_mod.Config) -> None:
    """Run until SIGTERM/SIGINT."""
    paths = [h[len("unix://"):] for h in cfg.hosts if h.startswith("unix://")]
    tcps = [h[len("tcp://"):] for h in cfg.hosts if h.startswith("tcp://")]
    for p in paths:
        if _socket_in_use(p):
            raise EngineError(f"another daemon is already listening on {p}")
    svc = build_services(cfg)
    svc.events.bind(asyncio.get_running_loop())
    overlay = svc.containers.networks.nets.overlay if svc.containers.networks is not None else None
    if overlay is not None:   # the cluster's networks are known before the containers on them are restored
        await overlay.cluster.start()
        overlay.start()
        if overlay.cluster.synced.is_set():
            await asyncio.to_thread(overlay.adopt_all)
    await svc.containers.load_and_reconcile()
    await svc.plugins.start_enabled()
    svc.health.resume()
    access = logging.getLogger("dockyard.access") if cfg.log_level == "debug" else None
    runner = web.AppRunner(svc.app, handle_signals=False, access_log=access)
    await runner.setup()
    for p in paths:
        await _unix_site(runner, p, 0o660)
        try:
            os.chown(p, 0, grp.getgrnam(cfg.group).gr_gid)
        except (KeyError, PermissionError):
            pass
    proxies = []
    if tcps and cfg.tlsverify:
        backend = os.path.join(cfg.exec_root, "tls-backend.sock")
        await _unix_site(runner, backend, 0o600)
    for addr in tcps:
        host, _, port = addr.rpartition(":")
        host = host.strip("[]")
        if cfg.tlsverify:
            from .tlsproxy import TLSProxy
            try:
                proxy = TLSProxy(host, int(port), _tls_context(cfg), backend)
            except OSError as e:
                raise EngineError(f"cannot listen on tcp://{addr}: {e.strerror}") from None
            proxy.start()
            proxies.append(proxy)
        else:
            log.warning("API is accessible on http://%s without encryption and without authentication: "
                        "anyone who can reach it has root on this host", addr)
            await web.TCPSite(runner, host, int(port), backlog=_somaxconn()).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    for s in (signal.SIGUSR1, signal.SIGUSR2):   # as dockerd's SIGUSR1: every stack to the log
        loop.add_signal_handler(s, _dump_stacks)
    log.info("API listening on %s", ", ".join(paths + tcps))
    cri = None
    if cfg.cri_socket:
        from ..cri.setup import start_cri
        cri = await start_cri(cfg, svc)
    await stop.wait()
    log.info("shutting down")
    if cri is not None:
        await cri.stop()
    for proxy in proxies:
        proxy.close()
    hang_up_all()
    await runner.shutdown()
    svc.health.stop_all()
    if not cfg.live_restore:
        await svc.plugins.shutdown()
    await svc.containers.shutdown(cfg.live_restore)
    if overlay is not None:   # leaving: this host's node and endpoints go now, not when the lease runs out
        await overlay.stop()
        await overlay.cluster.stop(leave=not cfg.live_restore)
    if cri is not None and not cfg.live_restore:
        await cri.release_networks()
    await runner.cleanup()
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    svc.meta.close()


def _dump_stacks() -> None:
    """Every thread's and every pending asyncio task's stack, to the log (what a stuck operation
    waits on). Read from the event loop with sys._current_frames, not with faulthandler's dump
    from the signal handler: that walked frames of running threads and crashed the interpreter."""
    import io
    import threading
    import traceback
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        log.warning("thread %s:\n%s", names.get(ident, ident), "".join(traceback.format_stack(frame)))
    for t in asyncio.all_tasks():
        buf = io.StringIO()
        t.print_stack(file=buf)
        log.warning("task %s:\n%s", t.get_name(), buf.getvalue())


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    try:
        cfg = config_mod.load(argv)
    except EngineError as e:
        print(f"dockyardd: {e.message}", file=sys.stderr)
        sys.exit(1)
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(level=level, format="time=%(asctime)s level=%(levelname)s msg=%(message)s")
    if os.geteuid() != 0:
        print("dockyardd: must run as root", file=sys.stderr)
        sys.exit(1)
    if cfg.pidfile:
        with open(cfg.pidfile, "w") as f:
            f.write(str(os.getpid()))
    try:
        asyncio.run(serve(cfg))
    except EngineError as e:
        print(f"dockyardd: {e.message}", file=sys.stderr)
        sys.exit(1)
    finally:
        if cfg.pidfile:
            try:
                os.unlink(cfg.pidfile)
            except FileNotFoundError:
                pass
