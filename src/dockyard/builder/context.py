"""A build's context, as an index over the tar the client sent: each file's payload goes once
into a spool file of the build (hashed on the way), nothing is unpacked. COPY takes its
sources from the index (their checksums are already known) and writes its layer from the
spool; only a `RUN --mount=type=bind` of the context unpacks the part it mounts. Names that
climb out of the context are refused; symlinks resolve inside it."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..archive import dockerignore as ignore
from ..archive.tarapply import SizeLimitExceeded, clean_name
from ..archive.tarread import TarReader
from ..errors import InvalidArgument, NotFound, PreconditionFailed

# a context up to this size stays in memory (the environment variable is for tests of the file spool)
MEM_SPOOL = int(os.environ.get("DOCKYARD_BUILD_MEM_SPOOL", 256 << 20))


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
    data: memoryview | None = None   # the content, when the spool holds it in memory
    node: _Node | None = None        # the context's entry (its digest is remembered there)

    def open(self) -> BinaryIO:
        """The content, positioned at its first byte (read `size` bytes)."""
        if self.data is not None:
            return io.BytesIO(self.data)
        f = open(self.path or self.spool, "rb")
        if not self.path:
            f.seek(self.offset)
        return f

    def content_digest(self) -> str:
        if not self.digest:
            if self.data is not None:
                self.digest = hashlib.sha256(self.data).hexdigest()
            elif self.path:
                self.digest = file_digest(self.path)
            else:
                h = hashlib.sha256()
                with self.open() as f:
                    left = self.size
                    while left > 0 and (b := f.read(min(left, 1 << 20))):
                        h.update(b)
                        left -= len(b)
                self.digest = h.hexdigest()
            if self.node is not None:
                self.node.digest = self.digest
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
    seg: int = 0          # which spool segment holds the content (0: this context's own)


class Context:
    """An indexed build context; `close()` removes its spool and anything unpacked."""

    def __init__(self, root: Path) -> None:
        self.root = root                      # this build's scratch directory
        self.spool = str(root / "context.spool")
        self.mem = bytearray()      # the spool, while it is small enough to stay in memory
        self.segs: list[bytearray] = [self.mem]   # own spool, then the segments shared with a sync's base
        self.spilled = False
        self._views: list[memoryview] | None = None
        self.nodes: dict[str, _Node] = {"": _Node("dir", 0o755, 0)}
        self.dockerfile_name = "Dockerfile"
        self._unpacked: dict[str, str] = {}
        self.sync_stats = (0, 0)    # a context sync's (files in the context, files sent)

    # --- receiving -----------------------------------------------------------------------------
    @classmethod
    def receive(cls, stream: BinaryIO, root: Path, max_bytes: int, sync: ContextStore | None = None,
                key: str = "", base: str = "") -> Context:
        """Index a (plain, gzip, bzip2 or xz) tar; payloads to the spool, hashed as they pass.
        With `key` (Dockyard's context sync), the tar starts with a manifest of the whole context
        and holds only the files that changed since the context `base` the store keeps."""
        root.mkdir(parents=True)
        ctx = cls(root)
        try:
            r = TarReader(stream)
            if key:
                assert sync is not None
                ctx._read_delta(r, max_bytes, sync, key, base)
            else:
                ctx._read(r, max_bytes)
        except BaseException:
            ctx.close()
            raise
        return ctx

    def _read_delta(self, r: TarReader, max_bytes: int, sync: ContextStore, key: str, base: str) -> None:
        """The manifest names every entry; those marked unchanged come from the kept base (with
        their digests: they are not hashed again), the rest from the tar that follows."""
        it = iter(r)
        first = next(it, None)
        if first is None or first.name != MANIFEST or not first.isreg():
            raise InvalidArgument(f"context sync: the tar must start with {MANIFEST}")
        import json
        try:
            manifest = json.loads(r.read_payload(64 << 20))
            entries = manifest["entries"]
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument("context sync: a malformed manifest") from None
        prev = sync.borrow(key, base) if base else None
        try:
            if base and prev is None:
                raise BaseGone(f"context sync: base {base} is not kept here (any more)")
            # the base's segments are shared, not copied: unchanged files stay where they are, until
            # the chain grows long or mostly stale (then they are copied into this context's own)
            reuse = prev is not None and len(prev.segs) < 4 and prev.live_bytes() * 2 + (16 << 20) >= \
                sum(len(g) for g in prev.segs)
            self._read(_Rest(it, r), max_bytes)   # the changed files
            if self.spilled:
                raise BaseGone("context sync: the context outgrew the memory spool")
            fresh = dict(self.nodes)
            self.sync_stats = (sum(1 for e in entries if e[1] == "file"),
                               sum(1 for n in fresh.values() if n.kind == "file"))
            self.nodes = {"": _Node("dir", 0o755, 0)}
            for ent in entries:
                name, kind, mode, mtime, size, linkname, changed = ent
                name = str(name)
                if not name or name[0] == "/" or "\0" in name or "//" in name or "." in name and (
                        name.startswith("./") or "/./" in name or ".." in name or name.endswith(("/.", "/"))):
                    name = clean_name(name)
                if not name:
                    continue
                if kind == "dir":
                    self._put(name, _Node("dir", int(mode) & 0o7777, float(mtime)))
                elif kind == "symlink":
                    self._put(name, _Node("symlink", 0o777, float(mtime), 0, str(linkname)))
                elif changed:
                    n = fresh.get(name)
                    if n is None or n.kind != "file":
                        raise InvalidArgument(f"context sync: {name} is marked changed but not sent")
                    self._put(name, n)
                else:
                    old = prev.nodes.get(name) if prev is not None else None
                    if prev is None or old is None or old.kind != "file" or old.size != int(size):
                        raise BaseGone(f"context sync: {name} is not in the base")
                    if reuse:
                        seg, offset = old.seg + 1, old.offset
                    else:
                        if len(self.mem) + old.size > MEM_SPOOL:
                            raise BaseGone("context sync: the context outgrew the memory spool")
                        seg, offset = 0, len(self.mem)
                        self.mem += prev._bytes(old)
                    self._put(name, _Node("file", int(mode) & 0o7777, float(mtime), old.size, "", offset,
                                          old.digest, seg=seg))
            if reuse:
                assert prev is not None
                self.segs = [self.mem, *prev.segs]
        finally:
            if prev is not None:
                sync.give_back(prev)

    def _read(self, r: TarReader | _Rest, max_bytes: int) -> None:
        """Payloads go to memory, then (past MEM_SPOOL bytes) to the spool file; they are hashed
        when a COPY asks (in threads: hashlib does not hold the GIL)."""
        offset = 0
        out: BinaryIO | None = None
        mem = self.mem
        for e in r:
            name = clean_name(e.name)
            if not name:
                continue
            mode = e.mode & 0o7777
            if e.isreg():
                if offset + e.size > max_bytes:
                    raise SizeLimitExceeded(f"the build context is larger than the {max_bytes} bytes free "
                                            "on the data root")
                offset = len(self.mem) if out is None else offset
                if out is None and offset + e.size > MEM_SPOOL:
                    out = open(self.spool, "wb", buffering=1 << 20)
                    out.write(mem)
                    self.spilled = True
                for v in r.payload_chunks():
                    if out is None:
                        mem += v
                    else:
                        out.write(v)
                self._put(name, _Node("file", mode, e.mtime, e.size, "", offset))
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
                                      target.digest, seg=target.seg))
            # devices, fifos and sockets of a context are not copied (as Docker)
        if out is not None:
            out.close()
            self.mem = bytearray()
            self.segs = [self.mem]

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
        ctx.mem += text
        ctx._put("Dockerfile", _Node("file", 0o644, 0, len(text), "", 0))
        return ctx

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def live_bytes(self) -> int:
        return sum(n.size for n in self.nodes.values() if n.kind == "file")

    def _bytes(self, n: _Node) -> bytes:
        if n.seg or not self.spilled:
            return bytes(self.segs[n.seg][n.offset:n.offset + n.size])
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
        out: list[Source] = []
        for rel in _matches(pattern, self._glob):
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
        data = None
        if n.kind == "file" and (n.seg or not self.spilled):
            if self._views is None:
                self._views = [memoryview(g) for g in self.segs]
            data = self._views[n.seg][n.offset:n.offset + n.size]
        return Source(rel, n.kind, n.mode, n.mtime, n.size, n.linkname, "", self.spool, n.offset, n.digest, data, n)

    def _tree(self, name: str, rel: str) -> Iterator[Source]:
        nodes = self.nodes
        pre = name + "/" if name else ""
        rpre = rel + "/" if rel else ""
        for c in sorted(nodes[name].children):
            n = nodes[pre + c]
            yield self._source(rpre + c, n)
            if n.kind == "dir":
                yield from self._tree(pre + c, rpre + c)

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


MANIFEST = ".dockyard-context.json"


class BaseGone(PreconditionFailed):
    """The base a context sync names is not kept: the client sends the whole context again."""


class _Rest:
    """The entries of a TarReader after the first, for `_read`."""

    def __init__(self, it: Iterator[Any], r: TarReader) -> None:
        self.it, self.r = it, r

    def __iter__(self) -> Iterator[Any]:
        return self.it

    def payload_chunks(self) -> Iterator[memoryview]:
        return self.r.payload_chunks()


class ContextStore:
    """The contexts kept for Dockyard's context sync (the last one per client key, a few keys,
    in memory only), so a rebuild sends only what changed. A context in use is never dropped."""

    def __init__(self, keys: int = 4, limit: int = int(os.environ.get("DOCKYARD_BUILD_KEEP_BYTES", 512 << 20))) -> None:
        import threading
        from collections import OrderedDict
        self.keys, self.limit = keys, limit
        self.lock = threading.Lock()
        self.kept: OrderedDict[str, tuple[str, Context]] = OrderedDict()
        self.users: dict[int, int] = {}
        self.doomed: set[int] = set()
        self.closing: dict[int, Context] = {}

    def borrow(self, key: str, gen: str) -> Context | None:
        with self.lock:
            got = self.kept.get(key)
            if got is None or got[0] != gen:
                return None
            self.kept.move_to_end(key)
            self.users[id(got[1])] = self.users.get(id(got[1]), 0) + 1
            return got[1]

    def give_back(self, ctx: Context) -> None:
        close = False
        with self.lock:
            n = self.users.get(id(ctx), 1) - 1
            if n <= 0:
                self.users.pop(id(ctx), None)
                if id(ctx) in self.doomed:
                    self.doomed.discard(id(ctx))
                    self.closing.pop(id(ctx), None)
                    close = True
            else:
                self.users[id(ctx)] = n
        if close:
            ctx.close()

    def keep(self, key: str, ctx: Context) -> str | None:
        """Keep a context (in memory only) as `key`'s base; its generation, or None."""
        if ctx.spilled or sum(len(g) for g in ctx.segs) > self.limit:
            return None
        gen = os.urandom(8).hex()
        drop: list[Context] = []
        with self.lock:
            old = self.kept.pop(key, None)
            if old is not None:
                drop.append(old[1])
            self.kept[key] = (gen, ctx)
            self.users[id(ctx)] = self.users.get(id(ctx), 0) + 1   # the store's own hold
            while len(self.kept) > self.keys or (len(self.kept) > 1 and
                                                 sum(len(g) for _, c in self.kept.values() for g in c.segs) > self.limit):
                drop.append(self.kept.popitem(last=False)[1][1])
        for c in drop:
            self.give_back(c)
        return gen

    def holds(self, ctx: Context) -> bool:
        with self.lock:
            return any(c is ctx for _, c in self.kept.values())

    def close_all(self) -> None:
        with self.lock:
            items = [c for _, c in self.kept.values()]
            self.kept.clear()
        for c in items:
            c.close()


def _matches(pattern: str, glob: Callable[[str], list[str]]) -> list[str]:
    """The paths a COPY source names: itself, or what its wildcards match (at least one)."""
    clean = posixpath.normpath("/" + pattern).lstrip("/")
    if not any(ch in clean for ch in "*?["):
        return [clean]
    found = glob(clean)
    if not found:
        raise NotFound(f"COPY failed: no source files were specified (no match for {pattern!r})")
    return found


# --- sources on the host (an image's or a stage's filesystem) ----------------------------------
def resolve_sources(root: str, pattern: str) -> list[Source]:
    """As Context.sources, for a directory of the host (an image's read-only view): symlinks
    resolve as if `root` were `/`."""
    out: list[Source] = []
    for rel in _matches(pattern, lambda p: _glob_fs(root, p)):
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
    """A digest of what a COPY would write: names, types, modes, link targets and contents,
    every file hashed (in threads: hashlib lets go of the GIL). No metadata stands for
    content: a context tar's headers cannot prove a file unchanged (reproducible tars give
    every file the same mtime)."""
    todo = [s for s in sources if s.kind == "file" and not s.digest]
    if len(todo) > 64:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            for i in range(0, len(todo), 256):
                pool.submit(_digest_all, todo[i:i + 256])
    else:
        _digest_all(todo)
    h = hashlib.sha256()
    for s in sources:
        h.update(f"{s.rel}\0{s.kind}\0{s.mode:o}\0".encode())
        if s.kind == "file":
            h.update(s.content_digest().encode())
        elif s.kind == "symlink":
            h.update(s.linkname.encode())
        h.update(b"\n")
    return h.hexdigest()


def _digest_all(sources: list[Source]) -> None:
    for s in sources:
        s.content_digest()


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()
