"""Write a directory as a layer tar: the inverse of tarapply. Overlay whiteouts (char device
0/0) become `.wh.NAME` entries and an opaque directory (`trusted.overlay.opaque=y`) gets a
`.wh..wh..opq` entry, so an overlay upper dir turns into a Docker/OCI layer (commit, export)."""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from typing import Any, BinaryIO

from .tarapply import OPAQUE, OPAQUE_XATTR, WHITEOUT_PREFIX

_XATTRS = ("user.", "security.capability")


Ids = Callable[[int, int], tuple[int, int]]   # host (uid, gid) → the owners written in the tar


def _info(path: str, name: str, st: os.stat_result, ids: Ids | None = None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = ids(st.st_uid, st.st_gid) if ids else (st.st_uid, st.st_gid)
    ti.mtime = int(st.st_mtime)
    ti.uname = ti.gname = ""
    if not stat.S_ISLNK(st.st_mode):
        pax = {}
        try:
            for x in os.listxattr(path, follow_symlinks=False):
                if x.startswith(_XATTRS):
                    pax["SCHILY.xattr." + x] = os.getxattr(path, x, follow_symlinks=False).decode("utf-8", "surrogateescape")
        except OSError:
            pass
        if pax:
            ti.pax_headers = pax
    return ti


def is_whiteout(st: os.stat_result) -> bool:
    """An overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    """Whether an overlay directory hides everything below it in lower layers."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_tar(root: str, out: BinaryIO, whiteouts: bool = True, ids: Ids | None = None) -> None:
    """Stream `root` as an uncompressed PAX tar; with `whiteouts`, overlay whiteouts and opaque
    directories become Docker's `.wh.` entries (a layer), else the tree is taken as it is.
    `ids` translates owners (a userns-remapped container's files, back to its own ids)."""
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            if rel_dir:
                st = os.lstat(dirpath)
                ti = _info(dirpath, rel_dir, st, ids)
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
                if whiteouts and is_opaque(dirpath):
                    wh = tarfile.TarInfo(f"{rel_dir}/{OPAQUE}")
                    wh.mtime = ti.mtime
                    tf.addfile(wh)
            entries = sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))])
            for n in entries:
                p = os.path.join(dirpath, n)
                name = f"{rel_dir}/{n}" if rel_dir else n
                st = os.lstat(p)
                if whiteouts and is_whiteout(st):
                    wh = tarfile.TarInfo(f"{rel_dir}/{WHITEOUT_PREFIX}{n}" if rel_dir else f"{WHITEOUT_PREFIX}{n}")
                    wh.mtime = int(st.st_mtime)
                    tf.addfile(wh)
                    continue
                _add_entry(tf, p, name, st, links, ids)


def write_path(src: str, arcname: str, out: BinaryIO, follow: bool = False, ids: Ids | None = None) -> None:
    """Tar one path (a file, a symlink or a whole directory) as `arcname/...`, never following
    symlinks below it (only `src` itself when `follow`). For `cp` and the archive endpoints."""
    st = os.stat(src) if follow else os.lstat(src)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_tree(tf, src, arcname, st, ids)


def _add_tree(tf: tarfile.TarFile, path: str, name: str, st: os.stat_result, ids: Ids | None) -> None:
    if stat.S_ISDIR(st.st_mode):
        ti = _info(path, name, st, ids)
        ti.type = tarfile.DIRTYPE
        tf.addfile(ti)
        for n in sorted(os.listdir(path)):
            p = os.path.join(path, n)
            _add_tree(tf, p, f"{name}/{n}", os.lstat(p), ids)
    else:
        _add_entry(tf, path, name, st, None, ids)


def _add_entry(tf: tarfile.TarFile, path: str, name: str, st: os.stat_result,
               links: dict[tuple[int, int], str] | None, ids: Ids | None = None) -> None:
    """One non-directory entry; with `links`, files seen before become hardlinks."""
    ti = _info(path, name, st, ids)
    if stat.S_ISLNK(st.st_mode):
        ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
        tf.addfile(ti)
    elif stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if links is not None and st.st_nlink > 1:
            if key in links:
                ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
                tf.addfile(ti)
                return
            links[key] = name
        ti.size = st.st_size
        with open(path, "rb") as f:
            tf.addfile(ti, f)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tf.addfile(ti)
    elif stat.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
        tf.addfile(ti)


class TarStream:
    """A tar written entry by entry to a stream, for archives of a few large members whose
    contents are produced by a callback (`docker save`): no buffering, no seeking."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def _header(self, ti: tarfile.TarInfo) -> None:
        self.out.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def add_dir(self, name: str) -> None:
        """A directory entry (mode 0755)."""
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        self._header(ti)

    def add_bytes(self, name: str, data: bytes) -> None:
        """A regular file with `data`."""
        self.add_stream(name, len(data), lambda out: out.write(data))

    def add_stream(self, name: str, size: int, produce: Callable[[BinaryIO], Any]) -> None:
        """A regular file of `size` bytes that `produce(out)` writes."""
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode = size, 0o644
        self._header(ti)
        counted = _Counting(self.out)
        produce(counted)  # type: ignore[arg-type]
        if counted.n != size:
            raise OSError(f"{name}: wrote {counted.n} bytes for a {size}-byte entry")
        self.out.write(bytes(-size % tarfile.BLOCKSIZE))

    def close(self) -> None:
        """The end marker (two zero blocks), padded to a record as tar does."""
        self.out.write(bytes(tarfile.RECORDSIZE))


class _Counting:
    def __init__(self, out: BinaryIO) -> None:
        self.out, self.n = out, 0

    def write(self, data: bytes | memoryview) -> int:
        self.n += len(data)
        return self.out.write(data)
