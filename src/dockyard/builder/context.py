"""A build's context: the tar the client sent, unpacked into a directory of its own, filtered
by `.dockerignore`; its Dockerfile; the sources a COPY names, with content checksums."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..archive import dockerignore as ignore
from ..archive.tarapply import apply_tar
from ..errors import InvalidArgument, NotFound


@dataclass
class Source:
    """One file, directory or symlink a COPY takes: its path on the host and its name in the copy."""

    path: str        # on the host
    rel: str         # relative to the copied root (the name under the destination)
    st: os.stat_result


class Context:
    """An unpacked build context; `close()` removes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dockerfile_name = "Dockerfile"

    @classmethod
    def unpack(cls, stream: BinaryIO, root: Path, max_bytes: int) -> Context:
        """Unpack a (plain, gzip, bzip2 or xz) tar into `root`; hostile names stay inside it."""
        root.mkdir(parents=True)
        ctx = cls(root)
        try:
            apply_tar(stream, str(root), whiteouts="keep", allow_devices=False, max_bytes=max_bytes)
        except BaseException:
            ctx.close()
            raise
        return ctx

    @classmethod
    def from_dockerfile(cls, text: bytes, root: Path) -> Context:
        """A context that is only a Dockerfile (a body or URL that is not a tar)."""
        root.mkdir(parents=True)
        (root / "Dockerfile").write_bytes(text)
        return cls(root)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def read_dockerfile(self, name: str) -> bytes:
        """The Dockerfile (`dockerfile` query parameter, a path inside the context; Docker's
        fallback to `dockerfile` when the default name is absent)."""
        name = name or "Dockerfile"
        rel = posixpath.normpath("/" + name).lstrip("/")
        p = self.root / rel
        if not name or name == "Dockerfile":
            if not p.exists() and (self.root / "dockerfile").exists():
                rel, p = "dockerfile", self.root / "dockerfile"
        if not self._inside(p) or not p.is_file():
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
        self.dockerfile_name = rel
        return p.read_bytes()

    def apply_ignore(self) -> None:
        """Drop what `.dockerignore` excludes (the client should have already; the Dockerfile and
        `.dockerignore` themselves only go if listed)."""
        f = self.root / ".dockerignore"
        if not f.is_file():
            return
        m = ignore.Matcher(ignore.read(f.read_bytes()))
        if not m:
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            for d in list(dirnames):
                rel = rel_dir + d
                if m.excluded(rel) and not m.may_include_under(rel):
                    shutil.rmtree(os.path.join(dirpath, d), ignore_errors=True)
                    dirnames.remove(d)
            for fn in filenames:
                if m.excluded(rel_dir + fn):
                    os.unlink(os.path.join(dirpath, fn))

    def _inside(self, p: Path) -> bool:
        try:
            real = os.path.realpath(p)
        except OSError:
            return False
        return real == str(self.root) or real.startswith(str(self.root) + "/")

    # --- sources ---------------------------------------------------------------------------
    def sources(self, patterns: list[str], allow_missing_wildcard: bool = False) -> list[Source]:
        return resolve_sources(str(self.root), patterns, allow_missing_wildcard)


def resolve_sources(root: str, patterns: list[str], allow_missing_wildcard: bool = False) -> list[Source]:
    """What COPY's source patterns name under `root` (a context or an image's filesystem):
    each match as a Source whose `rel` is its name in the copy (a directory's contents keep
    their paths below it). Symlinks inside the root are followed for the named source, never
    out of it."""
    out: list[Source] = []
    for pat in patterns:
        clean = posixpath.normpath("/" + pat).lstrip("/")
        if any(ch in clean for ch in "*?["):
            matches = _glob(root, clean)
            if not matches and not allow_missing_wildcard:
                raise NotFound(f"COPY failed: no source files were specified (no match for {pat!r})")
        else:
            matches = [clean]
        for rel in matches:
            path = _in_root(root, rel)
            try:
                st = os.stat(path)
            except OSError:
                raise NotFound(f"COPY failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {pat}: file does not exist") from None
            base = posixpath.basename(rel) if rel else ""
            if stat.S_ISDIR(st.st_mode):
                out.append(Source(path, "", st))
                out.extend(_walk(path))
            else:
                out.append(Source(path, base, st))
    return out


def _in_root(root: str, rel: str) -> str:
    """`rel` under `root`, symlinks resolved as if `root` were `/`."""
    cur = root
    seen = 0
    parts = [p for p in rel.split("/") if p]
    while parts:
        p = parts.pop(0)
        if p == "..":
            cur = os.path.dirname(cur) if cur != root else root
            continue
        nxt = os.path.join(cur, p)
        if os.path.islink(nxt):
            seen += 1
            if seen > 40:
                raise InvalidArgument(f"too many levels of symbolic links in {rel}")
            target = os.readlink(nxt)
            parts = [x for x in target.split("/") if x] + parts
            if target.startswith("/"):
                cur = root
            continue
        cur = nxt
    return cur


def _glob(root: str, pattern: str) -> list[str]:
    """Context-relative paths matching a pattern (Go's filepath.Match per path element)."""
    parts = pattern.split("/")
    found = [""]
    for part in parts:
        nxt: list[str] = []
        for base in found:
            d = os.path.join(root, base) if base else root
            if any(ch in part for ch in "*?["):
                try:
                    names = sorted(os.listdir(d))
                except OSError:
                    continue
                nxt.extend(posixpath.join(base, n) if base else n for n in names if fnmatch.fnmatchcase(n, part))
            elif os.path.lexists(os.path.join(d, part)):
                nxt.append(posixpath.join(base, part) if base else part)
        found = nxt
    return found


def _walk(top: str) -> list[Source]:
    out: list[Source] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        for n in dirnames + sorted(filenames):
            p = os.path.join(dirpath, n)
            out.append(Source(p, rel_dir + n, os.lstat(p)))
    return out


def checksum(sources: list[Source]) -> str:
    """A digest of what a COPY would write: names, types, modes, link targets and contents.
    Every file is hashed each build: the metadata in a context tar's headers cannot prove its
    content unchanged (reproducible tars give every file the same mtime), and hashing costs
    ~30 ms for 5000 files of 10 KiB."""
    h = hashlib.sha256()
    for s in sources:
        st = s.st
        h.update(f"{s.rel}\0{st.st_mode:o}\0".encode())
        if stat.S_ISREG(st.st_mode):
            h.update(file_digest(s.path).encode())
        elif stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(s.path).encode())
        h.update(b"\n")
    return h.hexdigest()


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()
