"""Container routes: create, list, inspect, start/stop/restart/kill, wait, remove, rename,
logs, attach, prune."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Awaitable, Callable
from typing import BinaryIO, cast

from aiohttp import WSMsgType, web

from ... import detachkeys
from ...containers import filters as ctr_filters
from ...containers import logs as logs_mod
from ...containers.filesystem import ContainerFS, PathStat
from ...containers.model import Container, Status
from ...containers.service import ContainerService
from ...errors import InvalidArgument, NotFound
from .. import params, views
from ..server import Routes
from ..splice import DETACHED, splice
from ..streams import RAW_STREAM, BodyReader, Hijacked, frame, open_stream, pipe_to_response

_STREAM = {"stdout": 1, "stderr": 2}
_HEADER = struct.Struct(">BxxxI").pack


class ContainersRouter:
    """Route table for container endpoints."""

    def __init__(self, containers: ContainerService, fs: ContainerFS) -> None:
        self.c = containers
        self.fs = fs

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("POST", "/containers/create", self.create)
        r.add("GET", "/containers/json", self.list)
        r.add("POST", "/containers/prune", self.prune)
        r.add("GET", "/containers/{id}/json", self.inspect)
        r.add("POST", "/containers/{id}/start", self.start)
        r.add("POST", "/containers/{id}/stop", self.stop)
        r.add("POST", "/containers/{id}/restart", self.restart)
        r.add("POST", "/containers/{id}/kill", self.kill)
        r.add("POST", "/containers/{id}/pause", self.pause)
        r.add("GET", "/containers/{id}/top", self.top)
        r.add("GET", "/containers/{id}/stats", self.stats)
        r.add("POST", "/containers/{id}/unpause", self.unpause)
        r.add("POST", "/containers/{id}/wait", self.wait)
        r.add("POST", "/containers/{id}/rename", self.rename)
        r.add("POST", "/containers/{id}/update", self.update)
        r.add("POST", "/containers/{id}/attach", self.attach)
        r.add("GET", "/containers/{id}/attach/ws", self.attach_ws)
        r.add("POST", "/containers/{id}/resize", self.resize)
        r.add("GET", "/containers/{id}/logs", self.logs)
        r.add("DELETE", "/containers/{id:.+}", self.delete)   # `parent/alias` with link=1
        r.add("GET", "/containers/{id}/export", self.export)
        r.add("GET", "/containers/{id}/changes", self.changes)
        r.add("HEAD", "/containers/{id}/archive", self.archive_head)
        r.add("GET", "/containers/{id}/archive", self.archive_get)
        r.add("PUT", "/containers/{id}/archive", self.archive_put)
        r.add("POST", "/commit", self.commit)

    def _size(self, c: Container) -> tuple[int, int]:
        rw = self.c.rw_size(c)
        try:
            base = self.c.images.get(c.cfg.image_id).size
        except NotFound:
            base = 0
        return rw, rw + base

    def _paths(self, c: Container) -> dict[str, str]:
        d = self.c.paths.data(c.id)
        return {"resolv": str(d / "resolv.conf"), "hostname": str(d / "hostname"), "hosts": str(d / "hosts"),
                "log": "" if self.c.log_driver_of(c) == "none" else str(self.c.paths.log(c.id, self.c.log_driver_of(c)))}

    def _graph(self, c: Container) -> dict[str, str]:
        try:
            m = self.c.snapshots.mounts(c.id)[0]
        except NotFound:
            return {}
        opts = dict(o.split("=", 1) for o in m.options if "=" in o)
        return {"LowerDir": opts.get("lowerdir", ""), "MergedDir": str(self.c.paths.rootfs(c.id)),
                "UpperDir": opts.get("upperdir", ""), "WorkDir": opts.get("workdir", "")}

    async def create(self, req: web.Request) -> web.Response:
        """`POST /containers/create?name=`."""
        body = await params.json_body(req)
        warnings: list[str] = []
        ctr = await self.c.create(req.query.get("name"), body, req.query.get("platform"), warnings)
        return web.json_response({"Id": ctr.id, "Warnings": warnings}, status=201)

    async def list(self, req: web.Request) -> web.Response:
        """`GET /containers/json`."""
        f = params.filters(req)
        pred = ctr_filters.build(f, self.c.lookup, self.c.images)
        items = [c for c in self.c.list() if pred(c)]
        limit = params.qint(req, "limit", -1) or -1
        if not params.qbool(req, "all") and limit <= 0 and not f.get("status") and not f.get("exited"):
            items = [c for c in items if c.state.docker_running]
        if limit > 0:
            items = items[:limit]
        size = params.qbool(req, "size")
        return web.json_response([views.container_summary(c, c.cfg.image_ref, self._size(c) if size else None)
                                  for c in items])

    async def inspect(self, req: web.Request) -> web.Response:
        """`GET /containers/{id}/json`."""
        c = self.c.lookup(req.match_info["id"])
        size = self._size(c) if params.qbool(req, "size") else None
        return web.json_response(views.container_inspect(c, self._paths(c), self._graph(c), size))

    async def start(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/start`."""
        await self.c.start(req.match_info["id"])
        return web.Response(status=204)

    async def stop(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/stop?t=`."""
        await self.c.stop(req.match_info["id"], params.qint(req, "t"))
        return web.Response(status=204)

    async def restart(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/restart?t=`."""
        await self.c.restart(req.match_info["id"], params.qint(req, "t"))
        return web.Response(status=204)

    async def kill(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/kill?signal=`."""
        await self.c.kill(req.match_info["id"], req.query.get("signal") or "SIGKILL")
        return web.Response(status=204)

    async def top(self, req: web.Request) -> web.Response:
        """`GET /containers/{id}/top?ps_args=`."""
        return web.json_response(await self.c.top(req.match_info["id"], req.query.get("ps_args", "")))

    async def stats(self, req: web.Request) -> web.StreamResponse:
        """`GET /containers/{id}/stats?stream=&one-shot=`: JSON records, one a second."""
        stream = params.qbool(req, "stream", True)
        one_shot = params.qbool(req, "one-shot")
        if one_shot and stream:
            raise InvalidArgument("cannot have stream=true and one-shot=true")
        gen = self.c.stats(req.match_info["id"], stream, one_shot)
        first = await gen.__anext__()   # 404 before the response starts
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(req)
        await resp.write((json.dumps(first) + "\n").encode())
        async for rec in gen:
            await resp.write((json.dumps(rec) + "\n").encode())
        await resp.write_eof()
        return resp

    async def pause(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/pause`."""
        await self.c.pause(req.match_info["id"])
        return web.Response(status=204)

    async def unpause(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/unpause`."""
        await self.c.unpause(req.match_info["id"])
        return web.Response(status=204)

    async def wait(self, req: web.Request) -> web.StreamResponse:
        """`POST /containers/{id}/wait?condition=`: headers now, the body when the condition holds."""
        cond = req.query.get("condition", "not-running")
        c = self.c.lookup(req.match_info["id"])
        if cond not in ("", "not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {cond!r}")
        fut = asyncio.ensure_future(self.c.wait(c.id, cond))
        await asyncio.sleep(0)
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        await resp.prepare(req)
        st = await fut
        err = {"Message": st.error} if st.error else None
        await resp.write((json.dumps({"StatusCode": st.exit_code, "Error": err}) + "\n").encode())
        await resp.write_eof()
        return resp

    async def update(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/update`."""
        body = await params.json_body(req)
        warnings = await self.c.update(req.match_info["id"], body)
        return web.json_response({"Warnings": warnings})

    async def rename(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/rename?name=`."""
        name = req.query.get("name", "")
        if not name:
            raise InvalidArgument("Neither old nor new names may be empty")
        self.c.rename(req.match_info["id"], name)
        return web.Response(status=204)

    async def delete(self, req: web.Request) -> web.Response:
        """`DELETE /containers/{id}?force=&v=`; with `link=1`, `{id}` is `parent/alias`: the
        legacy link goes, the containers stay."""
        ref = req.match_info["id"]
        if params.qbool(req, "link"):
            await self.c.remove_link(ref)
            return web.Response(status=204)
        if "/" in ref.strip("/"):
            raise NotFound(f"No such container: {ref}")
        await self.c.remove(ref.strip("/"), force=params.qbool(req, "force"), volumes=params.qbool(req, "v"))
        return web.Response(status=204)

    async def prune(self, req: web.Request) -> web.Response:
        """`POST /containers/prune`."""
        f = params.filters(req)
        until = f.pop("until", [])
        label = f.pop("label", [])
        if f:
            raise InvalidArgument(f"invalid filter '{next(iter(f))}'")
        pred = ctr_filters.build({"label": label} if label else {}, self.c.lookup, self.c.images)
        limit = max((logs_mod.parse_time(u) for u in until), default=0.0)

        def ok(c: Container) -> bool:
            if limit and logs_mod.rfc3339_to_ts(c.cfg.created) > limit:
                return False
            return pred(c)

        deleted, space = await self.c.prune(ok)
        return web.json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": space})

    async def logs(self, req: web.Request) -> web.StreamResponse:
        """`GET /containers/{id}/logs`: multiplexed frames, optionally following."""
        c = self.c.lookup(req.match_info["id"])
        o = logs_mod.LogOptions(stdout=params.qbool(req, "stdout"), stderr=params.qbool(req, "stderr"),
                                since=logs_mod.parse_time(req.query.get("since", "")),
                                until=logs_mod.parse_time(req.query.get("until", "")),
                                tail=_tail(req.query.get("tail", "all")), timestamps=params.qbool(req, "timestamps"),
                                follow=params.qbool(req, "follow"), details=params.qbool(req, "details"))
        if not (o.stdout or o.stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        path = self.c.log_path(c)
        tty = bool(c.cfg.config.get("Tty"))   # a terminal's output is one raw stream, as dockerd's
        fh = logs_mod.open_log(path)
        try:
            ex = logs_mod.Existing(path, o, lambda recs: _log_frames(recs, o.timestamps, tty, o.details), fh)
            resp = await open_stream(req, RAW_STREAM)
            async for chunk in logs_mod.chunks(ex):
                await resp.write(chunk)
            if o.follow:  # always drain once: the container may have exited while we answered
                async for rec in logs_mod.follow(path, ex.offset, o, lambda: not c.state.running or c.removed, fh):
                    await resp.write(_log_frames([rec], o.timestamps, tty, o.details))
                fh = None   # follow closed it
        finally:
            if fh is not None:
                fh.close()
        await resp.write_eof()
        return resp

    async def export(self, req: web.Request) -> web.StreamResponse:
        """`GET /containers/{id}/export`: the merged filesystem as a tar."""
        c = self.c.lookup(req.match_info["id"])
        return await pipe_to_response(req, lambda w: self.fs.export(c, w), "application/x-tar")

    async def changes(self, req: web.Request) -> web.Response:
        """`GET /containers/{id}/changes`."""
        c = self.c.lookup(req.match_info["id"])
        return web.json_response(self.fs.changes(c) or None)

    async def commit(self, req: web.Request) -> web.Response:
        """`POST /commit?container=…`: a new image from a container."""
        ref = req.query.get("container", "")
        if not ref:
            raise InvalidArgument("container is required")
        c = self.c.lookup(ref)
        body = await params.json_body(req, required=False)
        if body is not None and not isinstance(body, dict):
            raise InvalidArgument("the commit config must be a JSON object")
        img = await self.fs.commit(c, req.query.get("repo", ""), req.query.get("tag", ""),
                                   req.query.get("comment", ""), req.query.get("author", ""),
                                   req.query.getall("changes", []), params.qbool(req, "pause", True),
                                   {k: v for k, v in (body or {}).items() if v not in (None, "", [], {})})
        return web.json_response({"Id": img.id}, status=201)

    def _archive_path(self, req: web.Request) -> str:
        path = req.query.get("path", "")
        if not path:
            raise InvalidArgument("path is required")
        return path

    async def archive_head(self, req: web.Request) -> web.Response:
        """`HEAD /containers/{id}/archive?path=`."""
        c = self.c.lookup(req.match_info["id"])
        ps = await self.fs.stat_path(c, self._archive_path(req))
        return web.Response(status=200, headers=_stat_header(ps))

    async def archive_get(self, req: web.Request) -> web.StreamResponse:
        """`GET /containers/{id}/archive?path=`: stat header, then a tar of the path."""
        c = self.c.lookup(req.match_info["id"])
        path = self._archive_path(req)
        ps = await self.fs.stat_path(c, path)
        return await pipe_to_response(req, lambda w: self.fs.get_archive(c, path, w), "application/x-tar",
                                      lambda _: _stat_header(ps))

    async def archive_put(self, req: web.Request) -> web.Response:
        """`PUT /containers/{id}/archive?path=`: extract the body (a tar) into a directory."""
        c = self.c.lookup(req.match_info["id"])
        path = self._archive_path(req)
        with BodyReader(req, asyncio.get_running_loop()) as reader:
            await self.fs.put_archive(c, path, cast(BinaryIO, reader), params.qbool(req, "copyUIDGID"))
        return web.Response(status=200)

    def _attach_opts(self, req: web.Request, c: Container) -> tuple[dict[int, bool], bool, bytes | None]:
        """(streams wanted, stdin wanted, detach keys) of an attach request."""
        want = {1: params.qbool(req, "stdout"), 2: params.qbool(req, "stderr")}
        stdin = params.qbool(req, "stdin") and bool(c.cfg.config.get("OpenStdin"))
        keys = detachkeys.parse_keys(req.query.get("detachKeys") or detachkeys.DEFAULT)
        # as dockerd: the keys are watched on a terminal's input only (piped data is never cut)
        return want, stdin, keys if c.cfg.config.get("Tty") else None

    def _encoder(self, c: Container, want: dict[int, bool], raw: bool) -> Callable[[int, bytes], bytes | None]:
        tty = bool(c.cfg.config.get("Tty"))

        def encode(s: int, data: bytes) -> bytes | None:
            if not want.get(s):
                return None
            return data if (tty or raw) else frame(s, data)
        return encode

    async def _replay(self, path: str, want: dict[int, bool], encode: Callable[[int, bytes], bytes | None],
                      send: Callable[[bytes], Awaitable[None]]) -> None:
        """The log so far (attach's `logs=1`), read in a worker thread."""
        def enc(recs: list[dict]) -> bytes:
            return b"".join(encode(_STREAM.get(rec.get("stream", "stdout"), 1), rec.get("log", "").encode()) or b""
                            for rec in recs)
        fh = logs_mod.open_log(path)
        try:
            async for chunk in logs_mod.chunks(logs_mod.Existing(path, logs_mod.LogOptions(stdout=want[1],
                                                                                           stderr=want[2]), enc, fh)):
                await send(chunk)
        finally:
            if fh is not None:
                fh.close()

    async def attach(self, req: web.Request) -> web.StreamResponse:
        """`POST /containers/{id}/attach`: hijack, then stdin in and output out until the
        container exits, the client detaches (detach keys) or goes away."""
        c = self.c.lookup(req.match_info["id"])
        want, stdin, keys = self._attach_opts(req, c)
        encode = self._encoder(c, want, raw=False)
        log = self.c.log_path(c) if params.qbool(req, "logs") else ""   # 501 first with the none driver
        ch = await self.c.attach(c, stdin) if params.qbool(req, "stream") and _follows(c) else None
        try:
            h = await Hijacked.take(req, RAW_STREAM)
        except BaseException:
            if ch is not None:
                ch.close()
            raise
        try:
            if log:
                async def send(b: bytes) -> None:
                    h.write(b)
                    await h.drain()
                await self._replay(log, want, encode, send)
            if ch is not None:

                async def write(b: bytes) -> None:
                    h.write(b)
                    await h.drain()
                how = await splice(ch.frames(), ch, h.read, write, encode, stdin, keys, bool(c.cfg.config.get("Tty")))
                if how == DETACHED:
                    self.c.on_event("detach", c, {})
        finally:
            await h.finish()
        return h.response()

    async def attach_ws(self, req: web.Request) -> web.StreamResponse:
        """`GET /containers/{id}/attach/ws`: the same over a websocket (binary messages, output
        never multiplexed, as dockerd)."""
        c = self.c.lookup(req.match_info["id"])
        want, stdin, keys = self._attach_opts(req, c)
        encode = self._encoder(c, want, raw=True)
        log = self.c.log_path(c) if params.qbool(req, "logs") else ""
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        try:
            if log:
                await self._replay(log, want, encode, ws.send_bytes)
            if params.qbool(req, "stream") and _follows(c):
                ch = await self.c.attach(c, stdin)

                async def read() -> bytes | None:
                    msg = await ws.receive()
                    if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                        return msg.data if isinstance(msg.data, bytes) else str(msg.data).encode()
                    return None

                async def write(b: bytes) -> None:
                    await ws.send_bytes(b)
                how = await splice(ch.frames(), ch, read, write, encode, stdin, keys, bool(c.cfg.config.get("Tty")))
                if how == DETACHED:
                    self.c.on_event("detach", c, {})
        finally:
            await ws.close()
        return ws

    async def resize(self, req: web.Request) -> web.Response:
        """`POST /containers/{id}/resize?h=&w=`."""
        await self.c.resize(req.match_info["id"], *params.window(req))
        return web.Response(status=200)


def _stat_header(ps: PathStat) -> dict[str, str]:
    return {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(ps.to_json()).encode()).decode()}


def _follows(c: Container) -> bool:
    """Whether an attach's stream waits for output: not for a container that has exited (dockerd
    ends such a stream at once; one that was only created waits for its start)."""
    return c.state.status not in (Status.EXITED, Status.DEAD)


def _tail(v: str) -> int:
    if v in ("", "all"):
        return -1
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid tail value {v!r}") from None


def _log_frames(recs: list[dict], timestamps: bool, raw: bool = False, details: bool = False) -> bytes:
    """Log records as the logs endpoint sends them: raw (a TTY's) or multiplexed frames;
    `details`: the record's attrs first (`k=v,…`, sorted, query-escaped, then a space: dockerd's)."""
    from urllib.parse import quote_plus
    out: list[bytes] = []
    add = out.append
    stream = _STREAM.get
    for rec in recs:
        data = rec.get("log", "").encode()
        if details:
            attrs = rec.get("attrs") or {}
            data = ",".join(f"{quote_plus(k)}={quote_plus(str(v))}" for k, v in sorted(attrs.items())).encode() \
                + b" " + data
        if timestamps:
            data = rec.get("time", "").encode() + b" " + data
        if not raw:
            add(_HEADER(stream(rec.get("stream", "stdout"), 1), len(data)))
        add(data)
    return b"".join(out)
