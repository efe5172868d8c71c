"""The registry's aiohttp application: routing of `/v2/...` (repository names hold slashes),
errors in the spec's JSON, `Docker-Distribution-API-Version`, access logs, metrics, health,
read-only mode, and the background jobs (upload purging, scheduled garbage collection)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from . import digests
from .access import Authorizer, Identity, Scope
from .blobs import BlobHandlers
from .config import Config
from .content import ContentHandlers
from .errors import RegistryError
from .metrics import Metrics
from .storage.base import Driver
from .store import Store

log = logging.getLogger("dockyard.registry")
access_log = logging.getLogger("dockyard.registry.access")
T = TypeVar("T")
_NAME = r"(?P<name>[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*)"
ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("base", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("tags", re.compile(rf"^/v2/{_NAME}/tags/list$")),
    ("manifest", re.compile(rf"^/v2/{_NAME}/manifests/(?P<ref>[^/]+)$")),
    ("uploads", re.compile(rf"^/v2/{_NAME}/blobs/uploads/?$")),
    ("upload", re.compile(rf"^/v2/{_NAME}/blobs/uploads/(?P<uid>[^/]+)$")),
    ("blob", re.compile(rf"^/v2/{_NAME}/blobs/(?P<digest>[^/]+)$")),
    ("referrers", re.compile(rf"^/v2/{_NAME}/referrers/(?P<digest>[^/]+)$")),
]
# what each route needs: method → action on the repository
NEEDS = {"GET": "pull", "HEAD": "pull", "POST": "push", "PATCH": "push", "PUT": "push", "DELETE": "delete"}


class RegistryApp:
    """One registry: configuration, storage, authorization, and the HTTP application."""

    def __init__(self, config: Config, driver: Driver, authorizer: Authorizer | None = None) -> None:
        self.config = config
        self.store = Store(driver, descriptor_cache=config.get("storage.cache.blobdescriptor") == "inmemory")
        self.auth = authorizer or Authorizer()
        self.metrics = Metrics()
        self.pool = ThreadPoolExecutor(max_threads(config), thread_name_prefix="registry-io")
        self.blobs = BlobHandlers(self)
        self.content = ContentHandlers(self)
        self.notifier: Any = None
        self.proxy: Any = None
        self.collector: Any = None
        self.quotas: Any = None
        self.web: Any = None
        self.last_gc: Any = None
        self.jobs: list[tuple[float, Callable[[], Any]]] = []
        self.tasks: list[asyncio.Future[Any]] = []
        self.extra_routes: list[tuple[str, str, Callable[..., Any]]] = []
        self.auto_mount = True
        self.readonly = config.readonly
        self.started = time.time()
        self.health_failures = 0
        self.fields = dict(config.get("log.fields") or {})
        self.headers = {k: (", ".join(v) if isinstance(v, list) else str(v))
                        for k, v in (config.get("http.headers") or {}).items()}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking work (storage, hashing) in the registry's worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    # ---- helpers for handlers
    def url(self, request: web.Request, path: str) -> str:
        if self.config.get("http.relativeurls"):
            return path
        host = self.config.get("http.host")
        if host:
            return host.rstrip("/") + path
        proto = request.headers.get("X-Forwarded-Proto") or request.scheme
        return f"{proto}://{request.headers.get('X-Forwarded-Host') or request.host}{path}"

    def writable(self) -> None:
        if self.readonly:
            raise RegistryError("UNSUPPORTED", "the registry is in read-only mode (storage.maintenance.readonly)")

    async def may(self, request: web.Request, repo: str, action: str, quiet: bool = False) -> bool:
        ident: Identity = request["identity"]
        if ident.may("repository", repo, action):
            return True
        return await self.auth.extra_grant(request, ident, repo, action)

    async def quota_check(self, repo: str, adding: int, final: bool = False) -> None:
        if self.quotas is not None:
            await self.quotas.check(repo, adding, final)

    async def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        if self.proxy is not None and self.proxy.covers(repo):
            return await self.proxy.manifest(repo, ref)
        return await self.run(self.store.get_manifest, repo, ref)

    def on_manifest_pushed(self, repo: str) -> None:
        """The repository holds more now (a blob or a manifest): its quota usage is counted again."""
        if self.quotas is not None:
            self.quotas.forget(repo)

    def notify(self, action: str, request: web.Request, repo: str, **target: Any) -> None:
        if self.notifier is not None:
            self.notifier.emit(action, request, repo, target)

    # ---- dispatch
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        route, m = next(((name, mm) for name, rx in ROUTES if (mm := rx.match(path))), ("", None))
        if m is None:
            if path.startswith("/v2/"):
                if re.match(r"^/v2/.+/(manifests|blobs|tags|referrers)/", path):
                    raise RegistryError("NAME_INVALID", "invalid repository name", {"path": path})
                raise RegistryError("NAME_UNKNOWN", "repository name not known to registry", status=404)
            raise web.HTTPNotFound()
        request["route"] = route
        g = m.groupdict()
        repo = g.get("name")
        if repo:
            digests.check_name(repo)
        if route == "base":
            if method not in ("GET", "HEAD"):
                raise web.HTTPMethodNotAllowed(method, ["GET", "HEAD"])
            request["identity"] = await self.auth.challenge_base(request)
            return web.json_response({}, headers={"Content-Length": "2"})
        if route == "catalog":
            request["identity"] = await self.auth.identify(request, [Scope("registry", "catalog", ("*",))])
            return await self.content.catalog(request)
        action = NEEDS.get(method)
        if action is None or (route in ("tags", "referrers") and method not in ("GET", "HEAD")):
            raise web.HTTPMethodNotAllowed(method, [])
        if route == "uploads" and method != "POST" or route == "upload" and method not in ("GET", "PATCH", "PUT", "DELETE"):
            raise web.HTTPMethodNotAllowed(method, [])
        if route in ("manifest", "blob") and method in ("POST", "PATCH"):
            raise web.HTTPMethodNotAllowed(method, [])
        if route == "upload":
            action = "push"    # an upload's status and cancel are part of pushing
        # a mount's source is not needed: without pull on it, the blob is uploaded instead (blobs._mount)
        needed = [Scope("repository", repo or "", (action,) if action == "pull" else ("pull", action))]
        request["identity"] = await self.auth.identify(request, needed)
        assert repo is not None
        if self.proxy is not None and action != "pull" and route in ("manifest", "uploads", "upload", "blob"):
            self.proxy.refuse_push(repo)
        if route == "tags":
            return await self.content.tags(request, repo)
        if route == "referrers":
            return await self.content.referrers(request, repo, g["digest"])
        if route == "manifest":
            ref = g["ref"]
            if method in ("GET", "HEAD"):
                return await self.content.get_manifest(request, repo, ref)
            if method == "PUT":
                return await self.content.put_manifest(request, repo, ref)
            return await self.content.delete_manifest(request, repo, ref)
        if route == "uploads":
            return await self.blobs.start(request, repo)
        if route == "upload":
            uid = g["uid"]
            return await {"GET": self.blobs.status, "PATCH": self.blobs.patch, "PUT": self.blobs.put,
                          "DELETE": self.blobs.cancel}[method](request, repo, uid)
        if method in ("GET", "HEAD"):
            if self.proxy is not None and self.proxy.covers(repo):
                return await self.proxy.blob(request, repo, g["digest"])
            return await self.blobs.head_or_get(request, repo, g["digest"])
        if method == "DELETE":
            return await self.blobs.delete(request, repo, g["digest"])
        raise web.HTTPMethodNotAllowed(method, [])

    # ---- middleware and app
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        t0 = time.monotonic()
        request["id"] = str(uuid.uuid4())
        resp: web.StreamResponse
        try:
            resp = await handler(request)
        except RegistryError as e:
            resp = web.Response(status=e.status, body=json.dumps(e.body()).encode(), content_type="application/json",
                                headers=e.headers)
        except web.HTTPException as e:
            if e.status in (404, 405) and request.path.startswith("/v2"):
                code = "UNSUPPORTED" if e.status == 405 else "NAME_UNKNOWN"
                msg = "the operation is unsupported" if e.status == 405 else "not found"
                resp = web.Response(status=e.status, body=json.dumps({"errors": [{"code": code, "message": msg}]}).encode(),
                                    content_type="application/json")
            else:
                raise
        except (ConnectionError, asyncio.CancelledError):
            log.info("client went away during %s %s", request.method, request.path)
            raise
        except Exception:  # noqa: BLE001 - a registry answers 500, never dies
            log.exception("internal error on %s %s", request.method, request.path)
            resp = web.Response(status=500, content_type="application/json",
                                body=json.dumps({"errors": [{"code": "UNKNOWN", "message": "internal error"}]}).encode())
        self._log(request, resp, time.monotonic() - t0)
        return resp

    def _log(self, request: web.Request, resp: web.StreamResponse, took: float) -> None:
        route = request.get("route", "other")
        self.metrics.requests.labels(request.method, route, str(resp.status)).inc()
        self.metrics.latency.labels(request.method, route).observe(took)
        if self.config.get("log.accesslog.disabled"):
            return
        ident = request.get("identity")
        access_log.info(json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": request["id"],
            "remote": request.remote, "method": request.method, "path": request.path, "status": resp.status,
            "duration_ms": round(took * 1000, 2), "user": ident.name if ident else "",
            "useragent": request.headers.get("User-Agent", ""), **self.fields}))

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
        for k, v in self.headers.items():
            response.headers.setdefault(k, v)

    def _probe(self) -> None:
        """The storage answers: a file under the root can be stat'ed (written first when writable)."""
        if not self.readonly:
            self.store.d.put("docker/registry/v2/.health", b"ok")
        self.store.d.stat("docker/registry/v2/.health")

    async def check_storage(self) -> None:
        try:
            await self.run(self._probe)
            self.health_failures = 0
        except (OSError, ValueError) as e:
            self.health_failures += 1
            log.warning("storage health check failed (%d in a row): %s", self.health_failures, e)

    async def healthz(self, request: web.Request) -> web.Response:
        request["route"] = "health"
        threshold = int(self.config.get("health.storagedriver.threshold", 3) or 3)
        if not self.config.get("health.storagedriver.enabled"):
            await self.check_storage()      # no periodic check: probe now, one failure is enough
            threshold = 1
        ok = self.health_failures < threshold
        return web.json_response({"status": "ok" if ok else "storage unavailable",
                                  "storage": self.store.d.name, "readonly": self.readonly},
                                 status=200 if ok else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    def make(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 40)
        app.on_response_prepare.append(self._headers)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/debug/health", self.healthz)
        if self.config.get("http.debug.prometheus.enabled", True) and not self.config.get("http.debug.addr"):
            app.router.add_get(self.config.get("http.debug.prometheus.path", "/metrics"), self.metrics_page)
        for method, path, handler in self.extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/v2/{tail:.*}", self.dispatch)
        app.router.add_route("*", "/v2", self.dispatch)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, app: web.Application) -> None:
        self.pool.shutdown(wait=False)

    # ---- background jobs
    def every(self, seconds: float, job: Callable[[], Any]) -> None:
        """Run `job` (a coroutine function) every `seconds` while serving."""
        self.jobs.append((seconds, job))

    async def start_background(self) -> None:
        async def loop(seconds: float, job: Callable[[], Any]) -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except Exception:  # noqa: BLE001 - a failed job is logged and tried again next time
                    log.exception("background job %s failed", getattr(job, "__name__", job))
        self.tasks = [asyncio.ensure_future(loop(s, j)) for s, j in self.jobs]

    async def stop_background(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.notifier is not None:
            await self.notifier.close()


def max_threads(config: Config) -> int:
    """distribution's storage.filesystem.maxthreads (default 100) bounds the worker threads."""
    return max(4, min(int(config.get("storage.filesystem.maxthreads", 100) or 100), 256))

