"""`dockyard-registry`: serve a registry from a distribution-style configuration file, collect
garbage, manage accounts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from typing import Any

from .config import Config, load_file
from .errors import ConfigError


def make_driver(config: Config) -> Any:
    """The storage driver the configuration names."""
    kind, params = config.storage_driver
    if kind == "filesystem":
        from .storage.filesystem import Filesystem
        return Filesystem(params.get("rootdirectory") or "/var/lib/registry")
    if kind == "s3":
        from .storage.s3 import S3
        return S3(params)
    raise ConfigError(f"storage.{kind}: not supported by dockyard-registry")


def make_app(config: Config) -> Any:
    """The RegistryApp with everything the configuration asks for."""
    from .server import RegistryApp
    from .setup import configure
    app = RegistryApp(config, make_driver(config))
    configure(app)
    return app


def ssl_context(config: Config) -> ssl.SSLContext | None:
    cert, key = config.get("http.tls.certificate"), config.get("http.tls.key")
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    minimum = config.get("http.tls.minimumtls")
    if minimum:
        versions = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
        if minimum not in versions:
            raise ConfigError(f"http.tls.minimumtls: {minimum!r} is not tls1.2 or tls1.3")
        ctx.minimum_version = versions[minimum]
    cas = config.get("http.tls.clientcas") or []
    if cas:
        for ca in cas:
            ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _JsonLines(logging.Formatter):
    """`log.formatter: json`: one JSON object a line, with `log.fields`; an access-log line (already
    a JSON object) keeps its keys."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        import json
        msg = record.getMessage()
        try:
            doc = json.loads(msg) if msg.startswith("{") else None
        except ValueError:
            doc = None
        out: dict[str, Any] = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                               **self.fields}
        out.update(doc if isinstance(doc, dict) else {"msg": msg})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _logging(config: Config) -> None:
    level = str(config.get("log.level", "info")).upper()
    level = {"WARN": "WARNING", "PANIC": "CRITICAL", "FATAL": "CRITICAL"}.get(level, level)
    fields = dict(config.get("log.fields") or {})
    handler = logging.StreamHandler(sys.stderr)
    if config.get("log.formatter") in ("json", "logstash"):
        handler.setFormatter(_JsonLines(fields))
    else:
        suffix = "".join(f" {k}={v}" for k, v in fields.items()).replace("%", "%%")
        handler.setFormatter(logging.Formatter("time=%(asctime)s level=%(levelname)s msg=%(message)s" + suffix))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(config: Config) -> None:
    from aiohttp import web
    app = make_app(config)
    web_app = app.make()
    runner = web.AppRunner(web_app, access_log=None,
                           shutdown_timeout=config.seconds("http.draintimeout", 0) or 1.0)
    await runner.setup()
    addr = str(config.get("http.addr", ":5000"))
    ctx = ssl_context(config)
    if config.get("http.net") == "unix":
        site: Any = web.UnixSite(runner, addr, ssl_context=ctx)
    else:
        host, _, port = addr.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]") or None, int(port), ssl_context=ctx, reuse_address=True)
    await site.start()
    logging.getLogger("dockyard.registry").info("listening on %s (storage %s)", addr, app.store.d.name)
    debug = config.get("http.debug.addr")
    if debug:
        dbg = web.Application()
        dbg.router.add_get(config.get("http.debug.prometheus.path", "/metrics"), app.metrics_page)
        dbg.router.add_get("/debug/health", app.healthz)
        drunner = web.AppRunner(dbg, access_log=None)
        await drunner.setup()
        dh, _, dp = debug.rpartition(":")
        await web.TCPSite(drunner, dh or None, int(dp)).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start_background()
    await stop.wait()
    await app.stop_background()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dockyard-registry", description="A Distribution v2 / OCI registry server")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the registry")
    s.add_argument("config")
    g = sub.add_parser("garbage-collect", aliases=["gc"], help="collect garbage (safe while the registry serves)")
    g.add_argument("config")
    g.add_argument("--dry-run", "-d", action="store_true")
    g.add_argument("--delete-untagged", "-m", action="store_true")
    g.add_argument("--grace", help="keep blobs touched this recently (Go duration; default from the config, 1h)")
    g.add_argument("--keep-tags", type=int, help="keep only the N most recently pushed tags of each repository")
    g.add_argument("--untagged-older-than", help="with --delete-untagged: only manifests untagged for longer")
    u = sub.add_parser("user", help="manage accounts (dockyard.accounts)")
    u.add_argument("config")
    u.add_argument("action", choices=["add", "passwd", "delete", "list", "grant", "revoke", "join"])
    u.add_argument("name", nargs="?")
    u.add_argument("--password-stdin", action="store_true")
    u.add_argument("--admin", action="store_true")
    u.add_argument("--robot", action="store_true")
    u.add_argument("--repository", help="grant/revoke: a repository or namespace pattern (`team/*`)")
    u.add_argument("--actions", default="pull", help="grant: pull,push,delete,admin")
    u.add_argument("--team", help="grant/revoke: NAME is this team's (NAME ignored); join: the team NAME joins")
    sub.add_parser("version")
    a = p.parse_args(argv)
    if a.cmd == "version":
        from .. import __version__
        print(f"dockyard-registry {__version__}")
        return 0
    try:
        config = load_file(a.config)
        _logging(config)
        if a.cmd == "serve":
            asyncio.run(serve(config))
            return 0
        if a.cmd in ("gc", "garbage-collect"):
            from .gc import run_cli
            return run_cli(config, make_driver(config), a)
        from .accounts import run_cli as accounts_cli
        return accounts_cli(config, a)
    except ConfigError as e:
        print(f"dockyard-registry: configuration error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"dockyard-registry: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
