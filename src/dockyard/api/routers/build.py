"""`POST /build` (the classic builder's protocol: a tar context in, dockerd's JSON message
stream out) and `POST /build/cancel`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any, BinaryIO, cast

from aiohttp import web

from ...builder.context import Context
from ...builder.engine import Builder, BuildError, Options
from ...builder.parser import parse
from ...builder.stages import plan
from ...errors import EngineError, InvalidArgument, NotImplemented_, describe
from .. import params
from ..server import Routes
from ..streams import BodyReader, json_line

log = logging.getLogger(__name__)

# query parameters a build applies to its RUN containers, as HostConfig fields
_LIMITS = {"memory": ("Memory", int), "memswap": ("MemorySwap", int), "cpushares": ("CpuShares", int),
           "cpusetcpus": ("CpusetCpus", str), "cpusetmems": ("CpusetMems", str), "cpuperiod": ("CpuPeriod", int),
           "cpuquota": ("CpuQuota", int), "shmsize": ("ShmSize", int), "cgroupparent": ("CgroupParent", str)}
_KNOWN = {"dockerfile", "t", "extrahosts", "remote", "q", "nocache", "cachefrom", "pull", "rm", "forcerm",
          "buildargs", "labels", "networkmode", "platform", "target", "squash", "ulimits", "version", "outputs",
          "session", "buildid", "isolation", "dyctx", "dyctxbase", *_LIMITS}
_KEY = re.compile(r"^[0-9a-f]{16,64}$")


class BuildRouter:
    def __init__(self, builder: Builder) -> None:
        self.b = builder

    def routes(self, r: Routes) -> None:
        r.add("POST", "/build", self.build)

    def options(self, req: web.Request) -> Options:
        q = req.query
        for k in q:
            if k not in _KNOWN:
                raise InvalidArgument(f"unknown build parameter {k!r}: Dockyard does not know it, and would not apply it")
        if q.get("version", "1") not in ("", "1"):
            raise NotImplemented_("BuildKit (builder version 2) is not supported by this daemon: use the classic "
                                  "builder (DOCKER_BUILDKIT=0); RUN --mount works through it")
        for k in ("outputs", "session", "buildid"):
            if q.get(k):
                raise InvalidArgument(f"{k}: a BuildKit parameter; this daemon's builder is the classic one")
        if q.get("isolation") not in (None, "", "default"):
            raise InvalidArgument(f"isolation {q['isolation']!r} is not supported on Linux")
        o = Options()
        o.tags = [t for t in q.getall("t", []) if t]
        from ...oci import reference
        for t in o.tags:
            reference.parse_tagged(t)
        o.dockerfile = q.get("dockerfile") or "Dockerfile"
        o.build_args = _json_map(q.get("buildargs"), "buildargs")
        o.labels = {k: str(v) for k, v in _json_map(q.get("labels"), "labels").items()}
        o.target = q.get("target", "")
        o.nocache = params.qbool(req, "nocache")
        o.pull = params.qbool(req, "pull")
        o.rm = params.qbool(req, "rm") if "rm" in q else True
        o.forcerm = params.qbool(req, "forcerm")
        o.squash = params.qbool(req, "squash")
        o.quiet = params.qbool(req, "q")
        o.platform = q.get("platform", "")
        if o.platform:
            from ...registry.pull import host_platform, parse_platform
            if parse_platform(o.platform)[:2] != host_platform()[:2]:
                raise InvalidArgument(f"platform {o.platform!r}: this daemon builds for {'/'.join(host_platform()[:2])} only")
        net = q.get("networkmode", "") or "default"
        o.network = net
        hosts = q.getall("extrahosts", [])
        o.extra_hosts = [h for v in hosts for h in (json.loads(v) if v.startswith("[") else v.split(",")) if h]
        cf = q.get("cachefrom")
        o.cache_from = json.loads(cf) if cf else []
        if not isinstance(o.cache_from, list):
            raise InvalidArgument("cachefrom must be a JSON array")
        hc: dict[str, Any] = {}
        for k, (field, typ) in _LIMITS.items():
            v = q.get(k)
            if v in (None, "", "0") and typ is int or v in (None, ""):
                continue
            try:
                hc[field] = typ(v)
            except ValueError:
                raise InvalidArgument(f"invalid {k} value {v!r}") from None
        if q.get("ulimits"):
            ul = json.loads(q["ulimits"])
            if ul:
                hc["Ulimits"] = ul
        o.host_config = hc
        return o

    async def build(self, req: web.Request) -> web.StreamResponse:
        o = self.options(req)
        root = self.b.root / f"ctx-{uuid.uuid4().hex[:16]}"
        loop = asyncio.get_running_loop()
        remote = req.query.get("remote", "")
        if remote:
            ctx = await self._remote(remote, root)
        else:
            key, base = req.query.get("dyctx", ""), req.query.get("dyctxbase", "")
            if key and not _KEY.match(key) or base and not re.match(r"^[0-9a-f]{16}$", base):
                raise InvalidArgument("dyctx must be 16 to 64 hex digits, dyctxbase 16")
            with BodyReader(req, loop) as reader:
                try:
                    ctx = await asyncio.to_thread(Context.receive, cast(BinaryIO, reader), root,
                                                  self.b.images._space_for_layers(), self.b.contexts, key, base)
                except BaseException:
                    await reader.discard_rest()   # the client reads the answer, not a reset
                    raise
        gen = None
        try:
            df = await asyncio.to_thread(ctx.read_dockerfile, o.dockerfile)
            plan(parse(df), o.build_args, o.target)   # a bad Dockerfile is the request's 400
            await asyncio.to_thread(ctx.apply_ignore)
            resp = web.StreamResponse()
            resp.content_type = "application/json"
            await resp.prepare(req)

            async def emit(m: dict[str, Any]) -> None:
                await json_line(resp, m)
            if not remote and req.query.get("dyctx"):   # kept as the client's next base
                gen = await asyncio.to_thread(self.b.contexts.keep, req.query["dyctx"], ctx)
                if gen:
                    await emit({"aux": {"DockyardContext": {"ID": gen, "Files": ctx.sync_stats[0],
                                                            "Sent": ctx.sync_stats[1]}}})
            try:
                img = await _unless_gone(req, self.b.build(ctx, df, o, emit))
                for t in o.tags:
                    self.b.images.tag(img.id, _familiar(t))
                await emit({"aux": {"ID": img.id}})
                if o.quiet:
                    await emit({"stream": img.id + "\n"})
                else:
                    await emit({"stream": f"Successfully built {img.id.split(':')[-1][:12]}\n"})
                    for t in o.tags:
                        await emit({"stream": f"Successfully tagged {_familiar(t)}\n"})
            except BuildError as e:
                await emit({"errorDetail": {"code": e.code, "message": e.message} if e.code else
                            {"message": e.message}, "error": e.message})
            except EngineError as e:
                await emit({"errorDetail": {"message": e.message}, "error": e.message})
            except (ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception as e:  # noqa: BLE001 - reported in the stream, as dockerd does
                log.exception("build")
                await emit({"errorDetail": {"message": describe(e)}, "error": describe(e)})
            await resp.write_eof()
            return resp
        finally:
            if gen is None:
                await asyncio.to_thread(ctx.close)

    async def _remote(self, url: str, root: Path) -> Context:
        """`remote=`: a URL serving a tar context or a plain Dockerfile (git is not fetched)."""
        if url.startswith(("git://", "git@", "github.com/")) or url.endswith(".git") or "#" in url:
            raise InvalidArgument(f"remote {url!r}: git contexts are not supported by this daemon")
        if not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"remote {url!r}: not an http(s) URL")
        import os
        if os.environ.get("DOCKYARD_LOOPBACK_ONLY"):
            from urllib.parse import urlsplit
            host = urlsplit(url).hostname or ""
            if not (host.startswith("127.") or host in ("localhost", "::1")):
                from ...errors import PermissionDenied
                raise PermissionDenied(f"{url} is not on loopback (DOCKYARD_LOOPBACK_ONLY)")
        import aiohttp
        loop = asyncio.get_running_loop()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as s, \
                    s.get(url) as r:
                if r.status != 200:
                    raise InvalidArgument(f"fetching {url}: HTTP {r.status}")
                head = await r.content.read(512)
                if _looks_like_archive(head):
                    class _Prefixed:
                        def __init__(self) -> None:
                            self.content = _Chain(head, r.content)
                    with BodyReader(_Prefixed(), loop) as reader:
                        return await asyncio.to_thread(Context.receive, cast(BinaryIO, reader), root,
                                                       self.b.images._space_for_layers())
                rest = await r.content.read(10 << 20)
                return await asyncio.to_thread(Context.from_dockerfile, head + rest, root)
        except aiohttp.ClientError as e:
            raise InvalidArgument(f"fetching {url}: {e}") from None


async def _unless_gone(req: web.Request, coro: Any) -> Any:
    """Run a build; cancel it when its client goes away (a RUN that prints nothing would not
    notice otherwise): the build then removes its containers."""
    job = asyncio.ensure_future(coro)
    try:
        while not job.done():
            await asyncio.wait({job}, timeout=0.25)
            if not job.done() and (req.transport is None or req.transport.is_closing()):
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
                raise ConnectionResetError("the client went away during the build")
        return job.result()
    finally:
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job


class _Chain:
    """`readany()` over bytes already read, then a stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.head, self.rest = head, rest

    async def readany(self) -> bytes:
        if self.head:
            h, self.head = self.head, b""
            return h
        return cast(bytes, await self.rest.readany())


def _looks_like_archive(head: bytes) -> bool:
    from ...archive.tarread import looks_like_archive
    return looks_like_archive(head)


def _json_map(v: str | None, what: str) -> dict[str, Any]:
    if not v:
        return {}
    try:
        m = json.loads(v)
    except ValueError:
        raise InvalidArgument(f"{what} must be a JSON object") from None
    if not isinstance(m, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return m


def _familiar(t: str) -> str:
    from ...oci import reference
    return reference.parse_tagged(t).with_default_tag().familiar()
