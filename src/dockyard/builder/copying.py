"""COPY and ADD as a layer: the tar of what the instruction writes (missing parent
directories, the files with their modes or `--chmod`, owned by root or `--chown`, local tar
archives unpacked by ADD), produced without a container."""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .context import Source


@dataclass
class Plan:
    """What one COPY/ADD writes, in order."""

    dirs: list[tuple[str, int, float, tuple[int, int] | None]] = field(default_factory=list)  # name, mode, mtime, owner
    files: list[tuple[str, Source]] = field(default_factory=list)          # name in the layer, source
    archives: list[tuple[str, Source]] = field(default_factory=list)       # destination dir, the archive
    data: list[tuple[str, bytes, int]] = field(default_factory=list)       # name, bytes, mode (heredocs)


def is_archive(s: Source) -> bool:
    """Whether ADD unpacks this local file: a tar, plain or gzip/bzip2/xz compressed."""
    with s.open() as f:
        head = f.read(min(512, s.size))
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        try:
            with s.open() as f, tarfile.open(fileobj=_Slice(f, s.size), mode="r:*") as tf:
                return tf.next() is not None
        except (tarfile.TarError, OSError, EOFError):
            return False
    from ..archive.tarread import looks_like_archive
    return looks_like_archive(head)


class _Slice(io.RawIOBase):
    """`size` bytes of a file from its current position, seekable within them (tarfile's
    compression detection seeks)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        super().__init__()
        self.f, self.start, self.size, self.pos = f, f.tell(), size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, off: int, whence: int = 0) -> int:
        self.pos = max(0, min(self.size, off if whence == 0 else self.pos + off if whence == 1 else self.size + off))
        self.f.seek(self.start + self.pos)
        return self.pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.size - self.pos)
        if n <= 0:
            return 0
        data = self.f.read(n)
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)


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
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.mtime = int(s.mtime)
            ti.uid, ti.gid = owner or (0, 0)
            ti.mode = s.mode if chmod is None else chmod
            if s.kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif s.kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, s.linkname, 0o777
                tf.addfile(ti)
            elif s.kind == "file":
                ti.size = s.size
                with s.open() as f:
                    tf.addfile(ti, f)
            # sockets, fifos and devices are not copied (as Docker)
        for name, content, mode in plan.data:
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.size, ti.mode = len(content), mode if chmod is None else chmod
            ti.uid, ti.gid = owner or (0, 0)
            tf.addfile(ti, io.BytesIO(content))
        for dest, src in plan.archives:
            with src.open() as f:
                _unpacked(tf, dest.strip("/"), _Slice(f, src.size), owner)


def _unpacked(tf: tarfile.TarFile, dest: str, f: Any, owner: tuple[int, int] | None) -> None:
    """The entries of a local archive, renamed under `dest` (names that climb out are dropped)."""
    with tarfile.open(fileobj=f, mode="r:*") as src:
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
