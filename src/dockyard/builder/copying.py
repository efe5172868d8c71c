"""COPY and ADD as a layer: the tar of what the instruction writes (missing parent
directories, the files with their modes or `--chmod`, owned by root or `--chown`, local tar
archives unpacked by ADD), produced without a container."""

from __future__ import annotations

import posixpath
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from .context import Source


@dataclass
class Plan:
    """What one COPY/ADD writes, in order."""

    dirs: list[tuple[str, int, float, tuple[int, int] | None]] = field(default_factory=list)  # name, mode, mtime, owner
    files: list[tuple[str, Source]] = field(default_factory=list)          # name in the layer, source
    archives: list[tuple[str, str]] = field(default_factory=list)          # destination dir, archive path
    data: list[tuple[str, bytes, int]] = field(default_factory=list)       # name, bytes, mode (heredocs)


def is_archive(path: str) -> bool:
    """Whether ADD unpacks this local file: a tar, plain or gzip/bzip2/xz compressed."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with tarfile.open(path, "r:*") as tf:
                return tf.next() is not None
        except (tarfile.TarError, OSError, EOFError):
            return False
    from ..archive.tarread import looks_like_archive
    return looks_like_archive(head)


def parents_to_create(dest_dir: str, exists: Callable[[str], bool]) -> list[str]:
    """The directories above and including `dest_dir` (absolute) that the image lacks, outermost first."""
    out: list[str] = []
    d = dest_dir.rstrip("/")
    while d and d != "/":
        if exists(d):
            break
        out.append(d)
        d = posixpath.dirname(d)
    return list(reversed(out))


def write(plan: Plan, out: BinaryIO, owner: tuple[int, int] | None, chmod: int | None) -> None:
    """The layer tar of a plan."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name, mode, mtime, downer in plan.dirs:
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, int(mtime)
            ti.uid, ti.gid = downer or (0, 0)
            tf.addfile(ti)
        for name, s in plan.files:
            st = s.st
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.mtime = int(st.st_mtime)
            ti.uid, ti.gid = owner or (0, 0)
            ti.mode = stat.S_IMODE(st.st_mode) if chmod is None else chmod
            if stat.S_ISDIR(st.st_mode):
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif stat.S_ISLNK(st.st_mode):
                import os
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(s.path)
                ti.mode = 0o777
                tf.addfile(ti)
            elif stat.S_ISREG(st.st_mode):
                ti.size = st.st_size
                with open(s.path, "rb") as f:
                    tf.addfile(ti, f)
            # sockets, fifos and devices in a context are not copied (as Docker)
        for name, content, mode in plan.data:
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.size, ti.mode = len(content), mode if chmod is None else chmod
            ti.uid, ti.gid = owner or (0, 0)
            import io
            tf.addfile(ti, io.BytesIO(content))
        for dest, path in plan.archives:
            _unpacked(tf, dest.strip("/"), path, owner)


def _unpacked(tf: tarfile.TarFile, dest: str, path: str, owner: tuple[int, int] | None) -> None:
    """The entries of a local archive, renamed under `dest` (names that climb out are dropped)."""
    with tarfile.open(path, "r:*") as src:
        for m in src:
            name = _under(dest, m.name)
            if name is None:
                continue
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.size = m.type, m.mode, m.mtime, m.size if m.isreg() else 0
            ti.uid, ti.gid = owner or (m.uid, m.gid)
            ti.uname = ti.gname = ""
            ti.devmajor, ti.devminor = m.devmajor, m.devminor
            if m.issym():
                ti.linkname = m.linkname
            elif m.islnk():
                link = _under(dest, m.linkname)
                if link is None:
                    continue
                ti.linkname = link
            ti.pax_headers = {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            if m.isreg():
                tf.addfile(ti, src.extractfile(m))
            else:
                tf.addfile(ti)


def _under(dest: str, name: str) -> str | None:
    clean = posixpath.normpath("/" + name).lstrip("/")
    if not clean or clean == ".":
        return dest or None
    return posixpath.join(dest, clean) if dest else clean
