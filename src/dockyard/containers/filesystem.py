"""A container's filesystem from outside: export, diff (changes), commit, and the archive
(cp) operations. Paths inside the container are resolved from a descriptor of its root
(openat2 RESOLVE_IN_ROOT), and a running container is paused while its files are read or
written, so a symlink swapped in mid-copy cannot point the engine at the host (CVE-2018-15664)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from ..archive.tarapply import apply_tar
from ..archive.tarwrite import is_opaque, is_whiteout, write_path, write_tar
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..images import changes as changes_mod
from ..images.service import Image, now_iso
from ..linux import syscalls as sc
from ..linux.syscalls import open_in_root
from ..oci import reference
from ..runtime.rootfs import mkdir_in_root
from ..store import mount as mnt
from .model import Container, Status

if TYPE_CHECKING:
    from .service import ContainerService

MODIFIED, ADDED, DELETED = 0, 1, 2


@dataclass(frozen=True)
class PathStat:
    """What `X-Docker-Container-Path-Stat` carries."""

    name: str
    size: int
    mode: int          # Go's os.FileMode bits
    mtime: str
    link_target: str

    def to_json(self) -> dict[str, Any]:
        """Wire form."""
        return {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
                "linkTarget": self.link_target}


def go_filemode(mode: int) -> int:
    """Unix st_mode → Go os.FileMode."""
    m = mode & 0o777
    if stat.S_ISDIR(mode):
        m |= 1 << 31
    elif stat.S_ISLNK(mode):
        m |= 1 << 27
    elif stat.S_ISFIFO(mode):
        m |= 1 << 25
    elif stat.S_ISSOCK(mode):
        m |= 1 << 24
    elif stat.S_ISCHR(mode):
        m |= (1 << 26) | (1 << 21)
    elif stat.S_ISBLK(mode):
        m |= 1 << 26
    if mode & stat.S_ISUID:
        m |= 1 << 23
    if mode & stat.S_ISGID:
        m |= 1 << 22
    if mode & stat.S_ISVTX:
        m |= 1 << 20
    return m


def _bind_inside(root: str, dest: str, src: str, rw: bool, make: bool) -> None:
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rel = os.path.normpath(dest).lstrip("/")
        try:
            fd = open_in_root(rootfd, rel, os.O_PATH)
        except FileNotFoundError:
            if not make:
                return
            fd = mkdir_in_root(rootfd, rel, not os.path.isdir(src))
        try:
            sc.mount(src, f"/proc/self/fd/{fd}", None, sc.MS_BIND | sc.MS_REC)
            if not rw:   # through the new mount (the old descriptor is the directory under it)
                os.close(fd)
                fd = open_in_root(rootfd, rel, os.O_PATH)
                sc.mount(None, f"/proc/self/fd/{fd}", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
        finally:
            os.close(fd)
    finally:
        os.close(rootfd)


@contextlib.contextmanager
def _mounted(mounts: list[mnt.Mount], target: str) -> Iterator[None]:
    for m in mounts:
        m.mount(target)
    try:
        yield
    finally:
        mnt.unmount(target)


class ContainerFS:
    """Filesystem operations on containers of one service."""

    def __init__(self, svc: "ContainerService") -> None:
        self.svc = svc

    # --- views --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def view(self, c: Container, writable: bool = False, with_mounts: bool = False) -> AsyncIterator[str]:
        """The container's merged root: the live mount (paused) when running, else a mount of
        our own (read-only, or the container's own overlay while its lock is held). With
        `with_mounts` (the archive endpoints, as dockerd's cp) its volumes and binds are seen at
        their destinations: a running container's own mount namespace (`/proc/PID/root`: its
        tmpfs mounts too), or, stopped, the volumes and binds mounted into our view."""
        if c.state.running:
            freeze = c.state.status == Status.RUNNING   # a container paused by its user stays so
            if freeze:
                await self._pause(c, True)
            try:
                yield f"/proc/{c.state.pid}/root" if with_mounts else str(self.svc.paths.rootfs(c.id))
            finally:
                if freeze:
                    await self._pause(c, False)
            return
        if writable:
            async with c.lock:
                target = str(self.svc.paths.rootfs(c.id))
                os.makedirs(target, exist_ok=True)
                with _mounted(self.svc.snapshots.mounts(c.id), target), self._points(c, target, True, with_mounts):
                    yield target
            return
        target = str(self.svc.paths.data(c.id) / f"view-{uuid.uuid4().hex[:8]}")
        os.makedirs(target)
        try:
            with _mounted(self.svc.snapshots.view_mounts(c.id), target), self._points(c, target, False, with_mounts):
                yield target
        finally:
            os.rmdir(target)

    @contextlib.contextmanager
    def _points(self, c: Container, root: str, writable: bool, wanted: bool) -> Iterator[None]:
        """A stopped container's volumes and binds mounted at their destinations inside `root`
        (resolved from a descriptor of the root: a symlink in the container cannot move them onto
        the host); a missing destination is made when the view is writable, as dockerd does."""
        vols = self.svc.volumes
        points = [p for p in c.cfg.mounts if p["Type"] in ("bind", "volume")] if wanted else []
        try:
            for p in sorted(points, key=lambda p: p["Destination"].rstrip("/").count("/")):
                if p["Type"] == "volume":
                    if vols is None or p["Name"] not in vols.store.by_name:
                        continue
                    src = vols.store.mount(vols.store.by_name[p["Name"]], c.id)
                else:
                    src = p["Source"]
                if os.path.exists(src):
                    _bind_inside(root, p["Destination"], src, writable and p["RW"], writable)
            yield
        finally:
            if points and vols is not None:
                vols.release(c)

    async def _pause(self, c: Container, on: bool) -> None:
        """Freeze for an operation, or thaw after it; the intent is on disk while it is frozen, so a
        daemon killed in between thaws it when it starts again (not left "paused")."""
        rt = self.svc.runtimes[c.cfg.runtime]
        marker = self.svc.op_freeze_marker(c.id)
        if on:
            marker.touch()
        rc, _, _ = await self.svc.monitor_of(c).runtime(rt.describe(), ["pause" if on else "resume", c.id])
        if not on and rc == 0:
            marker.unlink(missing_ok=True)

    # --- export -------------------------------------------------------------------------
    async def export(self, c: Container, out: BinaryIO) -> None:
        """The merged filesystem as a tar."""
        remap = self.svc.remap_of(c)
        async with self.view(c) as root:
            await asyncio.to_thread(write_tar, root, out, False, remap.to_container if remap else None)

    # --- changes ------------------------------------------------------------------------
    def changes(self, c: Container) -> list[dict[str, Any]]:
        """`GET /containers/{id}/changes`: what the container's layer adds, changes, deletes."""
        upper = str(self.svc.snapshots.fs_path(c.id))
        row = self.svc.meta.snapshot(c.id)
        lowers = [str(p) for p in self.svc.snapshots.chain(row["parent"] if row else None)]
        out: list[dict[str, Any]] = []

        def in_lower(rel: str) -> bool:
            return any(os.path.lexists(os.path.join(low, rel)) for low in lowers)

        def walk(d: str, rel: str, opaque_above: bool) -> None:
            for n in sorted(os.listdir(d)):
                p, r = os.path.join(d, n), f"{rel}/{n}"
                st = os.lstat(p)
                if is_whiteout(st):
                    out.append({"Path": r, "Kind": DELETED})
                    continue
                existed = not opaque_above and in_lower(r.lstrip("/"))
                out.append({"Path": r, "Kind": MODIFIED if existed else ADDED})
                if stat.S_ISDIR(st.st_mode):
                    walk(p, r, opaque_above or is_opaque(p))

        walk(upper, "", False)
        return out

    # --- commit -------------------------------------------------------------------------
    async def commit(self, c: Container, repo: str, tag: str, comment: str, author: str,
                     changes: list[str], pause: bool, config: dict[str, Any] | None) -> Image:
        """`POST /commit`: the container's layer on top of its image, as a new image."""
        images = self.svc.images
        ref = reference.parse_tagged(f"{repo}:{tag}" if tag else repo) if repo else None
        base = images.get(c.cfg.image_id)
        ccfg = changes_mod.apply({**c.cfg.config, **(config or {})}, changes)   # bad changes fail first
        paused = pause and c.state.status == Status.RUNNING   # (one paused by its user stays so)
        if paused:
            await self._pause(c, True)
        try:
            upper = str(self.svc.snapshots.fs_path(c.id))
            ids = remap.to_container if (remap := self.svc.remap_of(c)) else None
            st = await asyncio.to_thread(images.stage_from_writer, lambda out: write_tar(upper, out, True, ids))
        finally:
            if paused:
                await self._pause(c, False)
        try:
            created = now_iso()
            cfg = json.loads(json.dumps(base.config))
            cfg.update({"created": created, "container": c.id, "container_config": c.cfg.config, "config": ccfg,
                        "docker_version": "dockyard"})
            if author:
                cfg["author"] = author
            if comment:
                cfg["comment"] = comment
            else:
                cfg.pop("comment", None)
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = \
                list(base.config["rootfs"]["diff_ids"]) + [st.diff_id]
            hist = {"created": created, "created_by": " ".join([c.cfg.path, *c.cfg.args])}
            if author:
                hist["author"] = author
            if comment:
                hist["comment"] = comment
            cfg["history"] = list(base.config.get("history") or []) + [hist]
            img = await asyncio.to_thread(images.add_image_with_layer, st, base.top_layer, cfg, base.id)
        except BaseException:
            images.drop_staged([st])
            raise
        if ref is not None:
            images.tag(img.id, ref.familiar())
        self.svc.on_event("commit", c, {"comment": comment, "imageID": img.id})
        return images.get(img.id)

    # --- archive (cp) -------------------------------------------------------------------
    @staticmethod
    def _resolve(root: str, path: str, follow_last: bool = False) -> tuple[int, str]:
        """(O_PATH fd of the parent inside the root, basename); raises NotFound."""
        if not path.startswith("/"):
            raise InvalidArgument(f"path must be absolute: {path}")
        rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            norm = os.path.normpath(path)
            if norm == "/" or path.endswith(("/.", "/")) or follow_last:
                fd = open_in_root(rootfd, norm, os.O_PATH)
                return fd, ""
            parent, base = os.path.split(norm)
            pfd = open_in_root(rootfd, parent, os.O_PATH | os.O_DIRECTORY)
            try:
                os.lstat(base, dir_fd=pfd)
            except FileNotFoundError:
                os.close(pfd)
                raise
            return pfd, base
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"Could not find the file {path} in container") from None
        finally:
            os.close(rootfd)

    @contextlib.contextmanager
    def _located(self, root: str, path: str) -> Iterator[tuple[str, PathStat]]:
        """A path of the container as a path through a descriptor resolved inside its root (valid
        while the block runs: also across the mounts of another mount namespace), and its stat."""
        fd, base = self._resolve(root, path)
        try:
            real = f"/proc/self/fd/{fd}" + (f"/{base}" if base else "")
            st = os.lstat(real) if base else os.stat(real)
            link = os.readlink(real) if base and stat.S_ISLNK(st.st_mode) else ""
            name = base or os.path.basename(os.path.normpath(path)) or "/"
            mtime = _dt.datetime.fromtimestamp(st.st_mtime, _dt.UTC).isoformat().replace("+00:00", "Z")
            yield real, PathStat(name, st.st_size, go_filemode(st.st_mode), mtime, link)
        finally:
            os.close(fd)

    async def stat_path(self, c: Container, path: str) -> PathStat:
        """`HEAD /containers/{id}/archive`."""
        async with self.view(c, with_mounts=True) as root:
            with self._located(root, path) as (_, ps):
                return ps

    async def get_archive(self, c: Container, path: str, out: BinaryIO) -> PathStat:
        """`GET /containers/{id}/archive`: the stat, then the tar written to `out`."""
        async with self.view(c, with_mounts=True) as root:
            with self._located(root, path) as (real, ps):
                arc = ps.name if ps.name != "/" else "."
                remap = self.svc.remap_of(c)
                await asyncio.to_thread(write_path, real, arc, out, False, remap.to_container if remap else None)
                return ps

    async def put_archive(self, c: Container, path: str, stream: BinaryIO, copy_uid_gid: bool) -> None:
        """`PUT /containers/{id}/archive`: extract into an existing directory of the container
        (through its volumes and binds; never into a read-only one or a read-only root)."""
        norm = os.path.normpath(path) if path.startswith("/") else path
        inside = [p for p in c.cfg.mounts
                  if norm == p["Destination"] or norm.startswith(p["Destination"].rstrip("/") + "/")]
        if inside:
            if not max(inside, key=lambda p: len(p["Destination"]))["RW"]:
                raise PermissionDenied("mounted volume is marked read-only")
        elif c.cfg.host_config.get("ReadonlyRootfs"):
            raise PermissionDenied("container rootfs is marked read-only")
        async with self.view(c, writable=True, with_mounts=True) as root:
            try:
                rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    fd = open_in_root(rootfd, os.path.normpath(path), os.O_PATH)
                finally:
                    os.close(rootfd)
            except FileNotFoundError:
                raise NotFound(f"Could not find the file {path} in container") from None
            real = f"/proc/self/fd/{fd}"   # kept open until the tar is applied (see _located)
            if not os.path.isdir(real):
                os.close(fd)
                raise InvalidArgument("extraction point is not a directory")
            try:
                owner: tuple[int, int] = (0, 0)
                if copy_uid_gid:
                    from .users import resolve
                    u = resolve(root, c.cfg.config.get("User") or "")
                    owner = (u.uid, u.gid)
                if (remap := self.svc.remap_of(c)) is not None:
                    owner = remap.to_host(*owner)
                await asyncio.to_thread(apply_tar, stream, real, whiteouts="keep", owner=owner)
            finally:
                os.close(fd)
