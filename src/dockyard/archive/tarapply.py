"""The one tar applier of the engine: layers (import, load, commit), `cp` and the CLI's `cp`
go through here.

Every path is resolved from a file descriptor of the target root with openat2
(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), entries are created with *at() calls relative
to that resolved parent and never through a symlink, so an archive cannot write outside
its root whatever it holds: `..`, absolute names, symlinks or hardlinks pointing out.

Whiteouts: in `overlay` mode a `.wh.NAME` entry becomes an overlay whiteout (char device 0/0)
and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory; in `apply` mode (a plain
directory, e.g. a flattened rootfs) they delete what they name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import InvalidArgument
from ..linux.syscalls import open_in_root
from .tarread import Entry, TarReader
from .tarsplit import Recorder

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_ALLOWED = ("user.", "security.capability", "trusted.overlay.opaque")


class SizeLimitExceeded(InvalidArgument):
    """The archive's files add up to more than the caller allowed (`max_bytes`)."""


@dataclass
class ApplyResult:
    """What an apply wrote."""

    entries: int = 0
    bytes: int = 0        # payload bytes written
    digest: str = ""      # sha256 of the (uncompressed) tar stream
    size: int = 0         # its length


def clean_name(name: str) -> str:
    """Normalize a member name to a relative path inside the root; reject escapes."""
    if "\x00" in name:
        raise InvalidArgument(f"invalid tar entry name {name!r}: contains NUL")
    parts = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            raise InvalidArgument(f"invalid tar entry {name!r}: path escapes the target with '..'")
        parts.append(p)
    return "/".join(parts)


def apply_tar(stream: BinaryIO, root: str, *, whiteouts: str = "overlay", allow_devices: bool = True,
              max_bytes: int | None = None, owner: tuple[int, int] | None = None,
              rename: tuple[str, str] | None = None, recorder: Recorder | None = None) -> ApplyResult:
    """Apply a (possibly compressed) tar stream onto directory `root`.

    whiteouts: "overlay" (to overlay whiteouts), "apply" (delete what they name), "keep" (plain
    files, for `cp`). owner: chown every entry to (uid, gid) instead of the archive's.
    rename: (old, new) replaces a leading path component `old` with `new` (`cp` onto a new name).
    recorder: a `tarsplit.Recorder` for `root`'s layer: the stream is then read to its end and
    the result carries its digest and size (a layer's DiffID)."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    cache = _ParentCache(rootfd, recorder)
    res = ApplyResult()
    dirs: list[tuple[str, float]] = []
    try:
        reader = TarReader(stream, recorder, drain=recorder is not None)
        try:
            for m in reader:
                if owner is not None:
                    m.uid, m.gid = owner
                if rename is not None:
                    m.name = _renamed(m.name, rename)
                    if m.islnk():
                        m.linkname = _renamed(m.linkname, rename)
                _apply_member(reader, m, cache, res, dirs, whiteouts, allow_devices, max_bytes)
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR, errno.ENOENT, errno.EEXIST):
                raise
            raise InvalidArgument(f"invalid tar archive: {e}") from None
        for name, mtime in reversed(dirs):
            try:
                fd = open_in_root(rootfd, name, os.O_PATH | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.utime(f"/proc/self/fd/{fd}", ns=(int(mtime * 1e9),) * 2)
            finally:
                os.close(fd)
        res.digest, res.size = reader.digest, reader.total
    finally:
        cache.clear()
        os.close(rootfd)
    return res


def _renamed(name: str, rename: tuple[str, str]) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if parts and parts[0] == rename[0]:
        parts[0] = rename[1]
    return "/".join(parts)


def rootfd_path(fd: int) -> str:
    """A path that names what `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def _in_root_join(cur: list[str], target: str) -> str:
    """Lexically resolve a symlink target as seen from `cur`, `..` clamped at the root."""
    parts = [] if target.startswith("/") else list(cur)
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


def _mkdir_p(rootfd: int, rel: str, depth: int) -> int:
    """An O_PATH fd of directory `rel` inside the root, creating missing components; a dangling
    symlink on the way is followed inside the root (its target is created there)."""
    if depth > 40:
        raise OSError(errno.ELOOP, "too many levels of symbolic links", rel)
    try:
        return open_in_root(rootfd, rel, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        pass
    fd = os.dup(rootfd)
    cur: list[str] = []
    try:
        for comp in [c for c in rel.split("/") if c not in ("", ".")]:
            try:
                nfd = open_in_root(fd, comp, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    target = os.readlink(comp, dir_fd=fd)
                except (FileNotFoundError, OSError):
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = open_in_root(fd, comp, os.O_PATH | os.O_DIRECTORY)
                else:
                    os.close(_mkdir_p(rootfd, _in_root_join(cur, target), depth + 1))
                    nfd = open_in_root(fd, comp, os.O_PATH | os.O_DIRECTORY)
            os.close(fd)
            fd = nfd
            cur.append(comp)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _remove(pfd: int, base: str) -> None:
    try:
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
        try:
            _rmtree_fd(dfd)
        finally:
            os.close(dfd)
        os.rmdir(base, dir_fd=pfd)
    else:
        os.unlink(base, dir_fd=pfd)


def _rmtree_fd(dfd: int) -> None:
    for entry in os.scandir(dfd):
        if entry.is_dir(follow_symlinks=False):
            sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            try:
                _rmtree_fd(sub)
            finally:
                os.close(sub)
            os.rmdir(entry.name, dir_fd=dfd)
        else:
            os.unlink(entry.name, dir_fd=dfd)


class _ParentCache:
    """O_PATH fds of directories already resolved in this apply, by relative path. Any removal
    clears it, since a directory replaced by something else must be resolved again. With a
    recorder it also knows where each directory really is (symlinks on the way resolved)."""

    def __init__(self, rootfd: int, recorder: Recorder | None) -> None:
        self.rootfd = rootfd
        self.rec = recorder
        self.fds: dict[str, int] = {}
        self.real: dict[int, str] = {}
        self.root_real = os.readlink(rootfd_path(rootfd)) if recorder is not None else ""

    def get(self, rel_parent: str) -> int:
        fd = self.fds.get(rel_parent)
        if fd is None:
            fd = self.fds[rel_parent] = _mkdir_p(self.rootfd, rel_parent, 0)
        return fd

    def real_path(self, pfd: int, base: str) -> str:
        """Where `base` in directory `pfd` is, relative to the root, without symlinks."""
        d = self.real.get(pfd)
        if d is None:
            p = os.readlink(rootfd_path(pfd))
            d = self.real[pfd] = "" if p == self.root_real else p[len(self.root_real) + 1:]
        return f"{d}/{base}" if d else base

    def clear(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        self.real.clear()

    def _drop(self, keys: list[str]) -> None:
        for k in keys:
            fd = self.fds.pop(k)
            self.real.pop(fd, None)
            os.close(fd)

    def drop_children(self, rel: str) -> None:
        """Forget everything strictly below `rel` ('' is the root)."""
        self._drop([k for k in self.fds if k and (not rel or k.startswith(rel + "/"))])

    def drop_under(self, rel: str) -> None:
        """Forget `rel` and everything below it (it was removed or replaced)."""
        self._drop([k for k in self.fds if k == rel or k.startswith(rel + "/")])

    def remove(self, pfd: int, base: str) -> None:
        """Remove `base` from directory `pfd`; payloads recorded in it are moved aside first."""
        if self.rec is not None and os.path.lexists(rootfd_path(pfd) + "/" + base):
            if self.rec.rescue(self.real_path(pfd, base)) is not None:
                return
        _remove(pfd, base)


def _create(fn: Callable[[], Any], pfd: int, base: str, rel: str, cache: _ParentCache) -> Any:
    """Create an entry; if something is in the way, remove it (forgetting cached dirs below it)
    and retry. The parent's fd stays valid."""
    try:
        return fn()
    except FileExistsError:
        cache.remove(pfd, base)
        cache.drop_under(rel)
        return fn()


def _apply_member(reader: TarReader, m: Entry, cache: _ParentCache, res: ApplyResult,
                  dirs: list[tuple[str, float]], whiteouts: str, allow_devices: bool,
                  max_bytes: int | None) -> None:
    rootfd = cache.rootfd
    rel = clean_name(m.name)
    if not rel:
        if m.isdir():  # the root itself: take its owner and mode, as Docker does
            os.chown(rootfd_path(rootfd), m.uid, m.gid)
            os.chmod(rootfd_path(rootfd), m.mode & 0o7777)
        return
    parent, _, base = rel.rpartition("/")
    pfd = cache.get(parent)
    if base.startswith(WHITEOUT_PREFIX) and whiteouts != "keep":
        _whiteout(cache, pfd, base, whiteouts)
        if base == OPAQUE:
            cache.drop_children(parent)
        else:
            cache.drop_under(f"{parent}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/"))
        res.entries += 1
        return
    if m.isdir():
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                cache.remove(pfd, base)
                cache.drop_under(rel)
                os.mkdir(base, 0o700, dir_fd=pfd)
        except FileNotFoundError:
            os.mkdir(base, 0o700, dir_fd=pfd)
        dirs.append((rel, m.mtime))
        _set_meta(pfd, base, m)
    elif m.isreg():
        res.bytes += m.size
        if max_bytes is not None and res.bytes > max_bytes:
            raise SizeLimitExceeded(f"archive expands past the limit of {max_bytes} bytes")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = _create(lambda: os.open(base, flags, 0o600, dir_fd=pfd), pfd, base, rel, cache)
        try:
            reader.copy_to(fd, cache.real_path(pfd, base) if cache.rec is not None else None)
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
            for name, value in m.xattrs.items():
                _setxattr(fd, name, value)
            os.utime(fd, ns=(int(m.mtime * 1e9),) * 2)
        finally:
            os.close(fd)
    else:
        if m.issym():
            _create(lambda: os.symlink(m.linkname, base, dir_fd=pfd), pfd, base, rel, cache)
        elif m.islnk():
            src_parent, _, sbase = clean_name(m.linkname).rpartition("/")
            spfd = cache.get(src_parent)
            _create(lambda: os.link(sbase, base, src_dir_fd=spfd, dst_dir_fd=pfd, follow_symlinks=False),
                    pfd, base, rel, cache)
        elif m.ischr() or m.isblk():
            if not allow_devices:
                raise InvalidArgument(f"device node {m.name!r} not allowed here")
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            _create(lambda: os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd),
                    pfd, base, rel, cache)
        elif m.isfifo():
            _create(lambda: os.mkfifo(base, 0o600, dir_fd=pfd), pfd, base, rel, cache)
        else:
            raise InvalidArgument(f"unsupported tar entry type {m.type!r} for {m.name!r}")
        _set_meta(pfd, base, m)
    res.entries += 1


def _setxattr(fd_or_path: int | str, name: str, value: bytes) -> None:
    if name.startswith(_XATTR_ALLOWED):
        try:
            os.setxattr(fd_or_path, name, value)
        except OSError:
            pass


def _whiteout(cache: _ParentCache, pfd: int, base: str, mode: str) -> None:
    if base == OPAQUE:
        if mode == "overlay":
            os.setxattr(f"/proc/self/fd/{pfd}", OPAQUE_XATTR, b"y")
        else:
            dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=pfd)
            try:
                _rmtree_fd(dfd)
            finally:
                os.close(dfd)
        return
    target = base[len(WHITEOUT_PREFIX):]
    if not target or "/" in target:
        raise InvalidArgument(f"invalid whiteout {base!r}")
    cache.remove(pfd, target)
    if mode == "overlay":
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)


def _set_meta(pfd: int, base: str, m: Entry) -> None:
    os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
    if not m.issym():
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            path = f"/proc/self/fd/{fd}"
            os.chmod(path, m.mode & 0o7777)
            for name, value in m.xattrs.items():
                _setxattr(path, name, value)
        finally:
            os.close(fd)
    if not m.isdir():
        os.utime(base, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)
