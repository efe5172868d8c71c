"""Blob endpoints: HEAD/GET (sendfile, ranges), DELETE, and uploads — monolithic POST,
chunked PATCH with Content-Range, PUT to finish, GET status, DELETE to cancel, cross-repository
mount. Bytes are written and hashed in worker threads while the next ones are read."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import digests
from .errors import RegistryError

if TYPE_CHECKING:
    from .server import RegistryApp
    from .store import Upload

_RANGE = re.compile(r"^(?:bytes[= ])?(\d+)-(\d+)$")


class Hashes:
    """Running hashes of uploads this process received in order, so a PUT does not read the
    data again; an upload continued by another process (or after a restart) is hashed afresh."""

    def __init__(self) -> None:
        self.by_id: dict[str, tuple[int, Any]] = {}

    def update(self, uid: str, offset: int, parts: list[bytes]) -> None:
        cur = self.by_id.get(uid)
        if offset == 0:
            cur = (0, digests.hasher("sha256"))
        if cur is None or cur[0] != offset:
            self.by_id.pop(uid, None)
            return
        for p in parts:
            cur[1].update(p)
        self.by_id[uid] = (offset + sum(len(p) for p in parts), cur[1])

    def digest(self, uid: str, size: int, algorithm: str) -> str | None:
        cur = self.by_id.pop(uid, None)
        if cur and cur[0] == size and algorithm == "sha256":
            return f"sha256:{cur[1].hexdigest()}"
        return None


class BlobHandlers:
    """Handlers bound to the app."""

    def __init__(self, app: RegistryApp) -> None:
        self.app = app
        self.store = app.store
        self.hashes = Hashes()

    # ---- reading
    async def head_or_get(self, request: web.Request, repo: str, digest: str) -> web.StreamResponse:
        digests.parse(digest)
        st = await self.app.run(self.store.blob_stat, repo, digest)
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000"}
        if request.method == "HEAD":
            # a client that HEADs a blob is about to refer to it: the collector's grace period starts again
            await self.app.run(self.store.touch, digest)
            return web.Response(status=200, headers={**headers, "Content-Length": str(st.size)})
        self.app.metrics.bytes_out(st.size)
        self.app.notify("pull", request, repo, digest=digest, size=st.size, media_type="application/octet-stream")
        local = self.store.d.local(self.store.blob_path(digest))
        if local is not None:
            resp = web.FileResponse(local, headers=headers)
            return resp
        return await self._stream(request, digest, st.size, headers)

    async def _stream(self, request: web.Request, digest: str, size: int, headers: dict[str, str]) -> web.StreamResponse:
        start, end, status = 0, size - 1, 200
        rng = request.headers.get("Range")
        if rng:
            m = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                raise RegistryError("RANGE_INVALID", "invalid range", headers={"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(size - int(m.group(2)), 0)
            if start > end or start >= size:
                raise RegistryError("RANGE_INVALID", "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        resp = web.StreamResponse(status=status, headers={**headers, "Content-Length": str(end - start + 1)})
        await resp.prepare(request)
        f = await self.app.run(self.store.open_blob, digest, start)
        try:
            left = end - start + 1
            while left > 0:
                chunk = await self.app.run(f.read, min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
                await resp.write(chunk)
        finally:
            await self.app.run(f.close)
        await resp.write_eof()
        return resp

    async def delete(self, request: web.Request, repo: str, digest: str) -> web.StreamResponse:
        digests.parse(digest)
        if not self.app.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled (storage.delete.enabled)")
        self.app.writable()
        await self.app.run(self.store.unlink_blob, repo, digest)
        self.app.notify("delete", request, repo, digest=digest)
        return web.Response(status=202, headers={"Content-Length": "0"})

    # ---- uploads
    def _location(self, request: web.Request, path: str) -> str:
        return self.app.url(request, path)

    def _upload_headers(self, request: web.Request, up: Upload) -> dict[str, str]:
        return {"Location": self._location(request, f"/v2/{up.repo}/blobs/uploads/{up.id}"),
                "Range": f"0-{max(up.size - 1, 0)}", "Docker-Upload-UUID": up.id, "Content-Length": "0"}

    def _created(self, request: web.Request, repo: str, digest: str) -> web.Response:
        return web.Response(status=201, headers={"Location": self._location(request, f"/v2/{repo}/blobs/{digest}"),
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})

    async def start(self, request: web.Request, repo: str) -> web.StreamResponse:
        self.app.writable()
        q = request.query
        if "mount" in q:
            mounted = await self._mount(request, repo, q["mount"], q.get("from"))
            if mounted:
                return mounted
        await self.app.quota_check(repo, int(request.headers.get("Content-Length") or 0))
        uid = await self.app.run(self.store.start_upload, repo)
        up = await self.app.run(self.store.upload, repo, uid)
        self.app.metrics.upload_started()
        if "digest" in q:
            digests.parse(q["digest"])
            await self._receive(request, up)
            return await self._finish(request, up, q["digest"])
        return web.Response(status=202, headers=self._upload_headers(request, up))

    async def _mount(self, request: web.Request, repo: str, digest: str, source: str | None) -> web.Response | None:
        digests.parse(digest)
        if source is not None:
            digests.check_name(source)
            if not await self.app.may(request, source, "pull"):
                return None
            if not await self.app.run(self.store.has_blob, source, digest):
                return None
        elif not self.app.auto_mount or not await self.app.run(self.store.blob_exists, digest):
            return None
        await self.app.run(self.store.link_blob, repo, digest)
        self.app.notify("mount", request, repo, digest=digest, source=source)
        return self._created(request, repo, digest)

    async def _receive(self, request: web.Request, up: Upload) -> int:
        """Append the request body to the upload; returns the number of bytes."""
        got, chunks, pending = 0, [], None
        uid = up.id

        def write(parts: list[bytes]) -> None:
            offset = up.size
            self.store.append(up, parts)
            self.hashes.update(uid, offset, parts)
        if up.size == 0:
            self.hashes.update(uid, 0, [])
        try:
            size = 0
            async for chunk in request.content.iter_any():
                chunks.append(chunk)
                size += len(chunk)
                if size >= self.store.d.append_size:
                    if pending:
                        await pending
                    pending = asyncio.ensure_future(self.app.run(write, chunks))
                    got += size
                    chunks, size = [], 0
            if pending:
                await pending
            if chunks:
                await self.app.run(write, chunks)
                got += size
        except BaseException:
            if pending and not pending.done():
                await asyncio.wait([pending])
            self.hashes.by_id.pop(uid, None)
            raise
        self.app.metrics.bytes_in(got)
        return got

    async def _session(self, repo: str, uid: str) -> Upload:
        return await self.app.run(self.store.upload, repo, uid)

    def _check_range(self, request: web.Request, up: Upload) -> None:
        cr = request.headers.get("Content-Range")
        if not cr:
            return
        m = _RANGE.match(cr.strip())
        if not m:
            raise RegistryError("BLOB_UPLOAD_INVALID", f"invalid Content-Range {cr!r}", status=416,
                                headers=self._upload_headers(request, up))
        start, end = int(m.group(1)), int(m.group(2))
        length = request.headers.get("Content-Length")
        if start != up.size or end < start or (length is not None and int(length) != end - start + 1):
            raise RegistryError("RANGE_INVALID", f"Content-Range {cr} does not continue the upload at {up.size}",
                                headers=self._upload_headers(request, up))

    async def patch(self, request: web.Request, repo: str, uid: str) -> web.StreamResponse:
        self.app.writable()
        up = await self._session(repo, uid)
        self._check_range(request, up)
        await self.app.quota_check(repo, int(request.headers.get("Content-Length") or 0))
        await self._receive(request, up)
        return web.Response(status=202, headers=self._upload_headers(request, up))

    async def put(self, request: web.Request, repo: str, uid: str) -> web.StreamResponse:
        self.app.writable()
        up = await self._session(repo, uid)
        digest = request.query.get("digest", "")
        if not digest:
            raise RegistryError("DIGEST_INVALID", "digest parameter is required to finish an upload")
        digests.parse(digest)
        self._check_range(request, up)
        await self._receive(request, up)
        return await self._finish(request, up, digest)

    async def _finish(self, request: web.Request, up: Upload, digest: str) -> web.StreamResponse:
        alg, _ = digests.parse(digest)
        actual = self.hashes.digest(up.id, up.size, alg)
        if actual is None:
            actual = await self.app.run(self._hash_upload, up, alg)
        if actual != digest:
            await self.app.run(self.store.cancel_upload, up)
            raise RegistryError("DIGEST_INVALID", "provided digest did not match uploaded content",
                                {"expected": digest, "actual": actual})
        await self.app.quota_check(up.repo, up.size, final=True)
        await self.app.run(self.store.commit_upload, up, digest)
        self.app.on_manifest_pushed(up.repo)
        self.app.metrics.upload_finished()
        self.app.notify("push", request, up.repo, digest=digest, size=up.size, media_type="application/octet-stream")
        return self._created(request, up.repo, digest)

    def _hash_upload(self, up: Upload, alg: str) -> str:
        h = digests.hasher(alg)
        with self.store.upload_reader(up) as f:
            while chunk := f.read(4 << 20):
                h.update(chunk)
        return f"{alg}:{h.hexdigest()}"

    async def status(self, request: web.Request, repo: str, uid: str) -> web.StreamResponse:
        up = await self._session(repo, uid)
        return web.Response(status=204, headers=self._upload_headers(request, up))

    async def cancel(self, request: web.Request, repo: str, uid: str) -> web.StreamResponse:
        self.app.writable()
        up = await self._session(repo, uid)
        self.hashes.by_id.pop(uid, None)
        await self.app.run(self.store.cancel_upload, up)
        self.app.metrics.upload_finished()
        return web.Response(status=204, headers={"Content-Length": "0"})
