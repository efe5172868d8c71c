"""The filesystem driver: distribution's layout under `rootdirectory`, small files written by
rename, blobs committed by rename (the upload and the blob store share one filesystem)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from .base import Driver, Stat


class Filesystem(Driver):
    """Files under a root directory."""

    name = "filesystem"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _p(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"bad storage path {path!r}")
        return self.root.joinpath(*parts)

    def get(self, path: str) -> bytes:
        return self._p(path).read_bytes()

    def put(self, path: str, data: bytes) -> None:
        p = self._p(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)

    def stat(self, path: str) -> Stat:
        st = self._p(path).stat()
        return Stat(st.st_size, st.st_mtime)

    def list(self, path: str) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._p(path)) if not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, path: str) -> None:
        p = self._p(path)
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            pass

    def touch(self, path: str) -> None:
        os.utime(self._p(path))

    def reader(self, path: str, offset: int = 0) -> BinaryIO:
        f = open(self._p(path), "rb")
        if offset:
            f.seek(offset)
        return f

    def local(self, path: str) -> Path | None:
        return self._p(path)

    def walk(self, path: str) -> Iterator[tuple[str, Stat]]:
        base = self._p(path)
        for dirpath, _dirs, files in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            for n in files:
                if n.startswith("."):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, n))
                except FileNotFoundError:
                    continue
                yield f"{rel}/{n}", Stat(st.st_size, st.st_mtime)

    def append(self, path: str, parts: Sequence[bytes], offset: int) -> int:
        p = self._p(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        total = sum(len(x) for x in parts)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            views = [memoryview(x) for x in parts if x]
            while views:      # writev, continued after a short write
                n = os.writev(fd, views[:1024])
                while n and views:
                    if n >= len(views[0]):
                        n -= len(views.pop(0))
                    else:
                        views[0], n = views[0][n:], 0
            os.ftruncate(fd, offset + total)
        finally:
            os.close(fd)
        return offset + total

    def upload_size(self, path: str) -> int:
        try:
            return self._p(path).stat().st_size
        except FileNotFoundError:
            return 0

    def upload_reader(self, path: str) -> BinaryIO:
        p = self._p(path)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        return open(p, "rb")

    def commit(self, upload: str, dest: str) -> None:
        src, dst = self._p(upload), self._p(dest)
        if not src.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            src.touch()
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            os.utime(dst)
            src.unlink()
            return
        os.replace(src, dst)
