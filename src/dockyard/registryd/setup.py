"""Wire a RegistryApp from its configuration: authentication, notifications, pull-through
caches, quotas, garbage collection, upload purging, search and web pages."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import RegistryApp


log = logging.getLogger("dockyard.registry")


def configure(app: RegistryApp) -> None:
    """Everything beyond the core API that the configuration turns on."""
    c = app.config
    if c.get("auth.htpasswd"):
        from .auth_basic import Htpasswd
        app.auth = Htpasswd(c.get("auth.htpasswd.realm", "registry"), c.get("auth.htpasswd.path"))
    elif c.get("auth.token"):
        from .tokens import ExternalTokens
        app.auth = ExternalTokens(c)
    elif c.get("dockyard.accounts"):
        from .accounts import install
        install(app)
    if not app.auth.checks_nothing:
        app.auto_mount = False      # with auth, a mount needs `from` (a repository the user may pull)
    purge = c.get("storage.maintenance.uploadpurging") or {}
    if purge.get("enabled", True) and not app.readonly:
        age = c.seconds("storage.maintenance.uploadpurging.age", 168 * 3600)
        dry = bool(purge.get("dryrun", False))

        async def purge_uploads() -> None:
            def job() -> None:
                now = time.time()
                for up in app.store.uploads():
                    if now - up.started > age:
                        log.info("upload purging: %s upload %s of %s (started %.0f s ago)",
                                 "would remove" if dry else "removing", up.id, up.repo, now - up.started)
                        if not dry:
                            app.store.cancel_upload(up)
            await app.run(job)
        app.every(c.seconds("storage.maintenance.uploadpurging.interval", 24 * 3600), purge_uploads)
    if c.get("health.storagedriver.enabled"):
        app.every(c.seconds("health.storagedriver.interval", 10), app.check_storage)
    if c.get("notifications.endpoints"):
        from .notify import Notifier
        app.notifier = Notifier(c)
    if c.get("proxy.remoteurl") or c.get("dockyard.mirrors"):
        from .proxy import Proxy
        app.proxy = Proxy(app)
    if c.get("dockyard.quotas"):
        from .quotas import Quotas
        app.quotas = Quotas(app)
    if c.get("dockyard.gc.interval"):
        from .gc import schedule
        schedule(app)
    from .search import install as search
    search(app)
    if c.get("dockyard.web.enabled", True) and _has_web():
        from .web import install as web
        web(app)


def _has_web() -> bool:
    import importlib.util
    return importlib.util.find_spec("dockyard.registryd.web") is not None
