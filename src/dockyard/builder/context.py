"""A build's context, as an index over the tar the client sent: each file's payload goes once
into a spool file of the build (hashed on the way), nothing is unpacked. COPY takes its
sources from the index (their checksums are already known) and writes its layer from the
spool; only a `RUN --mount=type=bind` of the context unpacks the part it mounts. Names that
climb out of the context are refused; symlinks resolve inside it."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..archive import dockerignore as ignore
from ..archive.tarapply import SizeLimitExceeded, clean_name
from ..archive.tarread import TarReader
from ..errors import InvalidArgument, NotFound


@dataclass
class Source:
    """One file, directory or symlink a COPY takes."""

    rel: str            # its name under the destination ("" for a directory named as a source)
    kind: str           # "file", "dir" or "symlink"
    mode: int           # permission bits (with setuid/setgid/sticky)
    mtime: float
    size: int = 0
    linkname: str = ""
    path: str = ""      # on the host (an image's view, a download), or "" for the context's spool
    spool: str = ""
    offset: int = 0
    digest: str = ""    # sha256 hex of the content, when known

    def open(self) -> BinaryIO:
        """The content, positioned at its first byte (read `size` bytes)."""
        f = open(self.path or self.spool, "rb")
        if not self.path:
            f.seek(self.offset)
        return f

    def content_digest(self) -> str:
        if not self.digest:
            self.digest = file_digest(self.path)
        return self.digest


@dataclass
class _Node:
    kind: str
    mode: int
    mtime: float
    size: int = 0
    linkname: str = ""
    offset: int = 0
    digest: str = ""
    children: dict[str, None] = field(default_factory=dict)   # ordered set of names (directories)


class Context:
    """An indexed build context; `close()` removes its spool and anything unpacked."""

    def __init__(self, root: Path) -> None:
        self.root = root                      # this build's scratch directory
        self.spool = str(root / "context.spool")
        self.nodes: dict[str, _Node] = {"": _Node("dir", 0o755, 0)}
        self.dockerfile_name = "Dockerfile"
        self._unpacked: dict[str, str] = {}

    # --- receiving -----------------------------------------------------------------------------
    @classmethod
    def receive(cls, stream: BinaryIO, root: Path, max_bytes: int) -> Context:
        """Index a (plain, gzip, bzip2 or xz) tar; payloads to the spool, hashed as they pass."""
        root.mkdir(parents=True)
        ctx = cls(root)
        try:
            with open(ctx.spool, "wb", buffering=1 << 20) as out:
                ctx._read(TarReader(stream), out, max_bytes)
        except BaseException:
            ctx.close()
            raise
        return ctx

    def _read(self, r: TarReader, out: BinaryIO, max_bytes: int) -> None:
        offset = 0
        for e in r:
            name = clean_name(e.name)
            if not name:
                continue
            mode = e.mode & 0o7777
            if e.isreg():
                if offset + e.size > max_bytes:
                    raise SizeLimitExceeded(f"the build context is larger than the {max_bytes} bytes free "
                                            "on the data root")
                h = hashlib.sha256()
                for v in r.payload_chunks():
                    h.update(v)
                    out.write(v)
                self._put(name, _Node("file", mode, e.mtime, e.size, "", offset, h.hexdigest()))
                offset += e.size
            elif e.isdir():
                self._put(name, _Node("dir", mode, e.mtime))
            elif e.issym():
                self._put(name, _Node("symlink", 0o777, e.mtime, 0, e.linkname))
            elif e.islnk():   # a hard link: the same content under another name
                target = self.nodes.get(clean_name(e.linkname))
                if target is None or target.kind != "file":
                    raise InvalidArgument(f"invalid tar archive: hard link {e.name} to a missing file")
                self._put(name, _Node("file", target.mode, target.mtime, target.size, "", target.offset,
                                      target.digest))
            # devices, fifos and sockets of a context are not copied (as Docker)

    def _put(self, name: str, node: _Node) -> None:
        parent = posixpath.dirname(name)
        self._dir(parent)
        old = self.nodes.get(name)
        if old is not None and old.kind == "dir" and node.kind == "dir":
            old.mode, old.mtime = node.mode, node.mtime
            return
        if old is not None and old.kind == "dir":
            self._drop(name)
        self.nodes[name] = node
        self.nodes[parent].children[posixpath.basename(name)] = None

    def _dir(self, name: str) -> _Node:
        n = self.nodes.get(name)
        if n is not None and n.kind == "dir":
            return n
        if n is not None:
            self._drop(name)
        parent = posixpath.dirname(name)
        p = self._dir(parent) if name else None
        n = self.nodes[name] = _Node("dir", 0o755, 0)
        if p is not None:
            p.children[posixpath.basename(name)] = None
        return n

    def _drop(self, name: str) -> None:
        n = self.nodes.pop(name, None)
        if n is None:
            return
        for c in list(n.children):
            self._drop(posixpath.join(name, c) if name else c)
        if name:
            parent = self.nodes.get(posixpath.dirname(name))
            if parent is not None:
                parent.children.pop(posixpath.basename(name), None)

    @classmethod
    def from_dockerfile(cls, text: bytes, root: Path) -> Context:
        """A context that is only a Dockerfile (a body or URL that is not a tar)."""
        root.mkdir(parents=True)
        ctx = cls(root)
        with open(ctx.spool, "wb") as f:
            f.write(text)
        ctx._put("Dockerfile", _Node("file", 0o644, 0, len(text), "", 0, hashlib.sha256(text).hexdigest()))
        return ctx

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _bytes(self, n: _Node) -> bytes:
        with open(self.spool, "rb") as f:
            f.seek(n.offset)
            return f.read(n.size)

    # --- Dockerfile and .dockerignore ---------------------------------------------------------
    def read_dockerfile(self, name: str) -> bytes:
        """The Dockerfile (`dockerfile` query parameter, a path inside the context; Docker's
        fallback to `dockerfile` when the default name is absent)."""
        name = name or "Dockerfile"
        rel = posixpath.normpath("/" + name).lstrip("/")
        if name == "Dockerfile" and rel not in self.nodes and "dockerfile" in self.nodes:
            rel = "dockerfile"
        real = self._resolve(rel)
        n = self.nodes.get(real) if real is not None else None
        if n is None or n.kind != "file":
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
        self.dockerfile_name = rel
        return self._bytes(n)

    def apply_ignore(self) -> None:
        """Drop what `.dockerignore` excludes (the client should have already; the Dockerfile and
        `.dockerignore` themselves only go if listed)."""
        n = self.nodes.get(".dockerignore")
        if n is None or n.kind != "file":
            return
        m = ignore.Matcher(ignore.read(self._bytes(n)))
        if not m:
            return
        for name in [k for k in self.nodes if k]:
            if name in self.nodes and m.excluded(name):
                node = self.nodes[name]
                if node.kind == "dir" and m.may_include_under(name):
                    continue
                self._drop(name)

    # --- sources ---------------------------------------------------------------------------------
    def _resolve(self, rel: str, follow_last: bool = True) -> str | None:
        """`rel` with the symlinks on its way resolved inside the context, or None."""
        parts = [p for p in rel.split("/") if p and p != "."]
        cur = ""
        hops = 0
        while parts:
            p = parts.pop(0)
            if p == "..":
                cur = posixpath.dirname(cur)
                continue
            nxt = posixpath.join(cur, p) if cur else p
            n = self.nodes.get(nxt)
            if n is None:
                return None
            if n.kind == "symlink" and (parts or follow_last):
                hops += 1
                if hops > 40:
                    raise InvalidArgument(f"too many levels of symbolic links in {rel}")
                parts = [x for x in n.linkname.split("/") if x] + parts
                if n.linkname.startswith("/"):
                    cur = ""
                continue
            cur = nxt
        return cur

    def _glob(self, pattern: str) -> list[str]:
        found = [""]
        for part in pattern.split("/"):
            nxt: list[str] = []
            for base in found:
                d = self.nodes.get(base)
                if d is None or d.kind != "dir":
                    continue
                if any(ch in part for ch in "*?["):
                    names = sorted(c for c in d.children if fnmatch.fnmatchcase(c, part))
                else:
                    names = [part] if part in d.children else []
                nxt.extend(posixpath.join(base, c) if base else c for c in names)
            found = nxt
        return found

    def sources(self, pattern: str) -> list[Source]:
        """What one COPY source names: a file, or a directory's contents (its first Source has
        rel "" and stands for the directory itself); wildcards match names in the context."""
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if any(ch in clean for ch in "*?["):
            matches = self._glob(clean)
            if not matches:
                raise NotFound(f"COPY failed: no source files were specified (no match for {pattern!r})")
        else:
            matches = [clean]
        out: list[Source] = []
        for rel in matches:
            real = self._resolve(rel)
            n = self.nodes.get(real) if real is not None else None
            if n is None or real is None:
                raise NotFound(f"COPY failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {pattern}: file does not exist")
            if n.kind == "dir":
                out.append(self._source("", n))
                out.extend(self._tree(real, ""))
            else:
                out.append(self._source(posixpath.basename(rel), n))
        return out

    def _source(self, rel: str, n: _Node) -> Source:
        return Source(rel, n.kind, n.mode, n.mtime, n.size, n.linkname, "", self.spool, n.offset, n.digest)

    def _tree(self, name: str, rel: str) -> Iterator[Source]:
        for c in sorted(self.nodes[name].children):
            full = posixpath.join(name, c) if name else c
            n = self.nodes[full]
            crel = posixpath.join(rel, c) if rel else c
            yield self._source(crel, n)
            if n.kind == "dir":
                yield from self._tree(full, crel)

    def unpacked(self, sub: str) -> str:
        """A directory (or file) of the host holding the context's `sub`, unpacked on first use
        (for `RUN --mount=type=bind`)."""
        real = self._resolve(posixpath.normpath("/" + sub).lstrip("/"))
        if real is None or real not in self.nodes:
            raise NotFound(f"--mount source {sub or '/'} not found in the build context")
        got = self._unpacked.get(real)
        if got is not None:
            return got
        target = str(self.root / f"tree-{len(self._unpacked)}")
        n = self.nodes[real]
        if n.kind == "dir":
            os.makedirs(target)
            for s in self._tree(real, ""):
                _write(s, os.path.join(target, s.rel))
            os.chmod(target, n.mode)
        else:
            _write(self._source("", n), target)
        self._unpacked[real] = target
        return target


def _write(s: Source, path: str) -> None:
    if s.kind == "dir":
        os.makedirs(path, exist_ok=True)
        os.chmod(path, s.mode)
    elif s.kind == "symlink":
        os.symlink(s.linkname, path)
    else:
        with s.open() as src, open(path, "wb") as out:
            left = s.size
            while left > 0:
                b = src.read(min(left, 1 << 20))
                if not b:
                    break
                out.write(b)
                left -= len(b)
        os.chmod(path, s.mode)


# --- sources on the host (an image's or a stage's filesystem) ----------------------------------
def resolve_sources(root: str, pattern: str) -> list[Source]:
    """As Context.sources, for a directory of the host (an image's read-only view): symlinks
    resolve as if `root` were `/`."""
    clean = posixpath.normpath("/" + pattern).lstrip("/")
    if any(ch in clean for ch in "*?["):
        matches = _glob_fs(root, clean)
        if not matches:
            raise NotFound(f"COPY failed: no source files were specified (no match for {pattern!r})")
    else:
        matches = [clean]
    out: list[Source] = []
    for rel in matches:
        path = _in_root(root, rel)
        try:
            st = os.stat(path)
        except OSError:
            raise NotFound(f"COPY failed: stat {pattern}: file does not exist") from None
        if stat.S_ISDIR(st.st_mode):
            out.append(_fs_source("", path, st))
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, path)
                rel_dir = "" if rel_dir == "." else rel_dir + "/"
                for n in dirnames + sorted(filenames):
                    p = os.path.join(dirpath, n)
                    out.append(_fs_source(rel_dir + n, p, os.lstat(p)))
        else:
            out.append(_fs_source(posixpath.basename(rel) if rel else "", path, st))
    return out


def _fs_source(rel: str, path: str, st: os.stat_result) -> Source:
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else \
        "file" if stat.S_ISREG(st.st_mode) else "other"
    return Source(rel, kind, stat.S_IMODE(st.st_mode), st.st_mtime, st.st_size if kind == "file" else 0,
                  os.readlink(path) if kind == "symlink" else "", path)


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


def _glob_fs(root: str, pattern: str) -> list[str]:
    found = [""]
    for part in pattern.split("/"):
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


def checksum(sources: list[Source]) -> str:
    """A digest of what a COPY would write: names, types, modes, link targets and contents.
    Context files were hashed as they arrived; files of an image's view are hashed here. No
    metadata stands for content: a context tar's headers cannot prove a file unchanged
    (reproducible tars give every file the same mtime)."""
    h = hashlib.sha256()
    for s in sources:
        h.update(f"{s.rel}\0{s.kind}\0{s.mode:o}\0".encode())
        if s.kind == "file":
            h.update(s.content_digest().encode())
        elif s.kind == "symlink":
            h.update(s.linkname.encode())
        h.update(b"\n")
    return h.hexdigest()


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()
