"""Image routes: import (create?fromSrc), list, inspect, history, tag, delete, prune."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, BinaryIO, cast

from aiohttp import web

from ...errors import EngineError, InvalidArgument, PermissionDenied, describe
from ...images import archive
from ...images import filters as image_filters
from ...images.service import ImageService
from .. import params, views
from ..server import Routes
from ..streams import BodyReader, json_line, pipe_to_response, progress_bar

log = logging.getLogger(__name__)


class ImagesRouter:
    """Route table for image endpoints."""

    def __init__(self, images: ImageService) -> None:
        self.images = images
        self._pulls: dict[tuple[str, str, str], SharedJob] = {}   # pulls in flight

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("POST", "/images/create", self.create)
        r.add("GET", "/images/json", self.list)
        r.add("GET", "/images/search", self.search)
        r.add("POST", "/images/prune", self.prune)
        r.add("POST", "/build/prune", self.build_prune)
        r.add("GET", "/images/get", self.save)
        r.add("POST", "/images/load", self.load)
        r.add("GET", "/images/{name:.+}/get", self.save)
        r.add("GET", "/images/{name:.+}/json", self.inspect)
        r.add("GET", "/images/{name:.+}/history", self.history)
        r.add("POST", "/images/{name:.+}/tag", self.tag)
        r.add("POST", "/images/{name:.+}/push", self.push)
        r.add("DELETE", "/images/{name:.+}", self.delete)

    async def create(self, req: web.Request) -> web.StreamResponse:
        """`POST /images/create`: only `fromSrc=-` (import from the body) for now."""
        src = req.query.get("fromSrc")
        if req.query.get("fromImage"):
            return await self._pull(req)
        if not src:
            raise InvalidArgument("fromSrc or fromImage is required")
        if src != "-" and not src.startswith(("http://", "https://")):
            raise InvalidArgument(f"fromSrc must be '-' (the request body) or an http(s) URL: {src}")
        if src != "-":
            import os
            from urllib.parse import urlsplit

            from ...registry.hosts import is_loopback
            if os.environ.get("DOCKYARD_LOOPBACK_ONLY") and not is_loopback(urlsplit(src).netloc or "?"):
                raise PermissionDenied(f"{src} is not on loopback (DOCKYARD_LOOPBACK_ONLY)")
        changes = req.query.getall("changes", [])
        repo, tag, message = req.query.get("repo", ""), req.query.get("tag", ""), req.query.get("message", "")
        if repo:
            from ...oci import reference
            reference.parse_tagged(f"{repo}:{tag}" if tag else repo)  # fail before reading the body
        loop = asyncio.get_running_loop()
        if src == "-":
            with BodyReader(req, loop) as reader:
                img = await asyncio.to_thread(self.images.import_tar, cast(BinaryIO, reader), repo, tag, changes, message)
        else:
            import aiohttp
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as s, \
                        s.get(src) as r:
                    if r.status != 200:
                        raise InvalidArgument(f"fetching {src}: HTTP {r.status}")
                    with BodyReader(r, loop) as reader:
                        img = await asyncio.to_thread(self.images.import_tar, cast(BinaryIO, reader), repo, tag, changes,
                                                                    message, src)
            except aiohttp.ClientError as e:
                raise InvalidArgument(f"fetching {src}: {e}") from None
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(req)
        await json_line(resp, {"status": img.id})
        await resp.write_eof()
        return resp

    async def _pull(self, req: web.Request) -> web.StreamResponse:
        """`POST /images/create?fromImage=&tag=&platform=`: dockerd's JSON progress stream. An
        error before the first message (bad reference, unknown tag, registry unreachable) is
        the request's status; after it, the stream's last message."""
        from ...oci import reference
        from ...registry import auth, pull
        creds = auth.decode_header(req.headers.get("X-Registry-Auth", ""))
        image, tag = req.query["fromImage"], req.query.get("tag") or ""
        if tag and "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            image = f"{image}{'@' if tag.startswith('sha256:') else ':'}{tag}"
        ref = reference.parse(image)
        all_tags = not ref.tag and not ref.digest   # the API's rule: no tag pulls every tag
        plat = req.query.get("platform") or ""
        pull.parse_platform(plat)
        before = self.images.meta.tag(ref.familiar()) if ref.tag else None
        # two pulls of the same image share one: the second follows the first's progress
        key = (ref.familiar(), plat, (creds or {}).get("username", ""))
        shared = self._pulls.get(key)
        if shared is None:
            loop = asyncio.get_running_loop()
            shared = self._pulls[key] = SharedJob()

            def emit(m: dict[str, Any]) -> None:   # from the worker thread
                loop.call_soon_threadsafe(shared.publish, m)
            shared.job = asyncio.ensure_future(asyncio.to_thread(
                pull.pull_all_tags if all_tags else pull.pull, self.images, ref.familiar(), plat, emit, creds))
            shared.job.add_done_callback(lambda _: self._pulls.pop(key, None))
        return await stream_job(req, shared.job, shared.subscribe(), lambda iid: {
            "status": f"Status: {'Image is up to date for' if before == iid else 'Downloaded newer image for'} "
                      f"{ref.familiar()}"}, f"pulling {image}")

    async def push(self, req: web.Request) -> web.StreamResponse:
        """`POST /images/{name}/push?tag=`: the tag, or every tag of the repository if none."""
        from ...registry import auth, push
        creds = auth.decode_header(req.headers.get("X-Registry-Auth", ""))
        name, tag = req.match_info["name"], req.query.get("tag") or ""
        loop = asyncio.get_running_loop()
        shared = SharedJob()

        def emit(m: dict[str, Any]) -> None:   # from the worker thread
            loop.call_soon_threadsafe(shared.publish, m)
        out = shared.subscribe()
        shared.job = asyncio.ensure_future(asyncio.to_thread(push.push, self.images, name, tag, emit, creds))
        return await stream_job(req, shared.job, out, lambda _: None, f"pushing {name}")

    async def search(self, req: web.Request) -> web.Response:
        """`GET /images/search?term=&limit=&filters=`: filters `is-official`, `is-automated`,
        `stars` (a v2 registry's catalog has no stars nor official images)."""
        from ...registry import auth, search
        creds = auth.decode_header(req.headers.get("X-Registry-Auth", ""))
        try:
            limit = int(req.query.get("limit") or 25)
        except ValueError:
            raise InvalidArgument(f"invalid limit {req.query.get('limit')!r}") from None
        f = params.filters(req)
        for k in f:
            if k not in ("is-official", "is-automated", "stars"):
                raise InvalidArgument(f"invalid filter '{k}'")
        try:
            stars = max((int(v) for v in f.get("stars", [])), default=0)
        except ValueError:
            raise InvalidArgument(f"invalid filter 'stars={f['stars'][0]}'") from None
        flags = {}
        for k in ("is-official", "is-automated"):
            for v in f.get(k, []):
                if v not in ("true", "false"):
                    raise InvalidArgument(f"invalid filter '{k}={v}'")
                flags[k.replace("-", "_")] = v == "true"
        results = await asyncio.to_thread(search.search, req.query.get("term", ""), limit, creds)
        results = [r for r in results if r["star_count"] >= stars
                   and all(r[k] == want for k, want in flags.items())]
        return web.json_response(results)

    async def save(self, req: web.Request) -> web.StreamResponse:
        """`GET /images/get?names=…` and `GET /images/{name}/get`: a tar stream."""
        names = [req.match_info["name"]] if "name" in req.match_info else req.query.getall("names", [])
        if not names:
            raise InvalidArgument("no image names given")
        wanted = await asyncio.to_thread(archive.selection, self.images, names)   # 404 before the stream starts

        async def produce(w: Any) -> None:
            await asyncio.to_thread(archive.write, self.images, wanted, w)

        return await pipe_to_response(req, produce, "application/x-tar")

    async def load(self, req: web.Request) -> web.StreamResponse:
        """`POST /images/load`: read an archive from the body. As dockerd: the answer is always a
        200 JSON stream (`quiet` defaults to true); without `quiet` it carries "Loading layer"
        progress while the archive streams in; a failure is the stream's last message."""
        quiet = params.qbool(req, "quiet", True)
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def emit(obj: dict[str, Any]) -> None:   # from the worker thread
            loop.call_soon_threadsafe(out.put_nowait, obj)

        def layer_progress(ident: str, current: int, total: int) -> None:
            emit({"status": "Loading layer", "progressDetail": {"current": current, "total": total},
                  "progress": progress_bar(current, total), "id": ident})

        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(req)
        with BodyReader(req, loop) as reader:
            job = asyncio.ensure_future(asyncio.to_thread(
                archive.load, self.images, cast(BinaryIO, reader), lambda m: emit({"stream": m}),
                None if quiet else layer_progress))
            try:
                await _relay(resp, job, out)
            except BaseException:
                job.add_done_callback(lambda f: f.cancelled() or f.exception())   # the client left
                raise
            try:
                job.result()
            except EngineError as e:
                await reader.discard_rest()
                await json_line(resp, {"errorDetail": {"message": e.message}, "error": e.message})
            except Exception as e:  # noqa: BLE001 - reported in the stream, as dockerd does
                log.exception("loading an image archive")
                await reader.discard_rest()
                msg = describe(e)
                await json_line(resp, {"errorDetail": {"message": msg}, "error": msg})
        await resp.write_eof()
        return resp

    async def list(self, req: web.Request) -> web.Response:
        """`GET /images/json`."""
        f = params.filters(req)
        imgs = image_filters.apply(self.images, self.images.list(), f)
        if not params.qbool(req, "all"):
            imgs = [i for i in imgs if i.tags or not self.images.meta.children_of_image(i.id)]
        return web.json_response([views.image_summary(i, len(self.images.containers.using(i.id))) for i in imgs])

    async def inspect(self, req: web.Request) -> web.Response:
        """`GET /images/{name}/json`."""
        img = self.images.resolve(req.match_info["name"])
        dirs = self.images.layer_dirs(img)
        graph = {"MergedDir": "", "UpperDir": dirs[0] if dirs else "", "WorkDir": "",
                 "LowerDir": ":".join(dirs[1:])} if dirs else {}
        graph = {k: v for k, v in graph.items() if v}
        return web.json_response(views.image_inspect(img, graph))

    async def history(self, req: web.Request) -> web.Response:
        """`GET /images/{name}/history`."""
        img = self.images.resolve(req.match_info["name"])
        from ...oci.digest import chain_ids
        sizes = [(self.images.meta.snapshot(c) or {"size": 0})["size"] for c in chain_ids(img.config["rootfs"]["diff_ids"])]
        return web.json_response(views.image_history(img, sizes))

    async def tag(self, req: web.Request) -> web.Response:
        """`POST /images/{name}/tag?repo=&tag=`."""
        repo = req.query.get("repo", "")
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        self.images.tag_ref(req.match_info["name"], repo, req.query.get("tag", ""))
        return web.Response(status=201)

    async def delete(self, req: web.Request) -> web.Response:
        """`DELETE /images/{name}`."""
        out = self.images.delete(req.match_info["name"], force=params.qbool(req, "force"),
                                 prune=not params.qbool(req, "noprune"))
        return web.json_response(out)

    async def prune(self, req: web.Request) -> web.Response:
        """`POST /images/prune`."""
        f = params.filters(req)
        dangling = f.get("dangling", ["true"])[-1].lower() in ("true", "1")
        deleted, space = self.images.prune(dangling_only=dangling, filters=f)
        return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": space})


    async def build_prune(self, req: web.Request) -> web.Response:
        """`POST /build/prune` (`docker system prune`, `docker builder prune`): there is no build
        cache yet; what it sweeps is the partial downloads kept for resuming pulls (all of them
        that no pull is writing)."""
        from ...registry.pull import busy_blobs
        f = params.filters(req)
        if any(f.values()):
            raise InvalidArgument(f"build prune: filters are not supported: {', '.join(sorted(f))}")
        keep = req.query.get("keep-storage", "0")
        if keep not in ("", "0"):
            raise InvalidArgument("build prune: keep-storage is not supported")
        params.qbool(req, "all")   # all or not: partial downloads are all unused once no pull writes them
        content = self.images.content
        before = {p.name for p in (content.root / "partial").iterdir()}
        space = await asyncio.to_thread(content.sweep_partials, None, busy_blobs())
        gone = before - {p.name for p in (content.root / "partial").iterdir()}
        return web.json_response({"CachesDeleted": sorted(f"sha256:{g}" for g in gone) or None,
                                  "SpaceReclaimed": space})


class SharedJob:
    """A worker's job and everyone following its progress messages."""

    def __init__(self) -> None:
        self.job: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.subscribers: list[asyncio.Queue[dict[str, Any]]] = []

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.subscribers.append(q)
        return q

    def publish(self, m: dict[str, Any]) -> None:
        detail = m.get("progressDetail") or {}
        if detail.get("total") and "progress" not in m:   # dockerd's text too, for clients that print it
            m = {**m, "progress": progress_bar(int(detail.get("current") or 0), int(detail["total"]))}
        for q in self.subscribers:
            q.put_nowait(m)


async def stream_job(req: web.Request, job: asyncio.Future[Any], out: asyncio.Queue[dict[str, Any]],
                     final: Any, what: str, headers: dict[str, str] | None = None) -> web.StreamResponse:
    """dockerd's JSON progress stream of a worker's job: an error before its first message is
    the request's status (a bad reference, an unknown tag, an unreachable registry); after it,
    the stream's last message. `final(result)` may add a closing message."""
    first = asyncio.ensure_future(out.get())
    await asyncio.wait({job, first}, return_when=asyncio.FIRST_COMPLETED)
    if not first.done():
        first.cancel()
        job.result()   # raises: the request's status
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "application/json"
    await resp.prepare(req)
    if first.done():
        await json_line(resp, first.result())
    try:
        await _relay(resp, job, out)
        last = final(job.result())
        if last:
            await json_line(resp, last)
    except EngineError as e:
        await json_line(resp, {"errorDetail": {"message": e.message}, "error": e.message})
    except Exception as e:  # noqa: BLE001 - reported in the stream, as dockerd does
        log.exception(what)
        await json_line(resp, {"errorDetail": {"message": describe(e)}, "error": describe(e)})
    await resp.write_eof()
    return resp


async def _relay(resp: web.StreamResponse, job: asyncio.Future[Any], out: asyncio.Queue[dict[str, Any]]) -> None:
    """Write the progress messages a worker thread queues until it is done and all are out."""
    while not job.done() or not out.empty():
        getter = asyncio.ensure_future(out.get())
        await asyncio.wait({job, getter}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            await json_line(resp, getter.result())
        else:
            getter.cancel()
            while not out.empty():
                await json_line(resp, out.get_nowait())
