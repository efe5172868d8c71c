"""Dockyard's context sync, the client's half: a rebuild sends only the files that changed.

The daemon keeps the last context a client sent (`dyctx`, a key of the client's choosing, and
the generation it answered in `aux.DockyardContext`); the client keeps, in its cache directory,
what each file was when sent (inode, size, mtime and ctime in ns, mode). The next build sends a
manifest of the whole context (`.dockyard-context.json`, the tar's first member) and only the
files whose stat changed; a file modified within a second of the walk that recorded it is
always sent again (git's "racy" rule). When the daemon no longer holds the base it answers 412
and the whole context goes. Only daemons that answer `Dockyard-Context-Sync: 1` on /_ping are
asked; with others the plain protocol is used."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import time
from collections.abc import Iterator
from typing import Any

MANIFEST = ".dockyard-context.json"


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dockyard", "contexts")


class Sync:
    def __init__(self, sock: str, ctx: str) -> None:
        self.ctx = ctx
        self.key = hashlib.sha256(f"{sock}\0{os.path.realpath(ctx)}".encode()).hexdigest()[:32]
        self.path = os.path.join(_cache_dir(), self.key + ".json")
        self.base = ""
        self.files: dict[str, list[int]] = {}
        self.walked = 0
        try:
            with open(self.path) as f:
                st = json.load(f)
            self.base, self.files, self.walked = str(st["base"]), dict(st["files"]), int(st["walked"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.now = time.time_ns()
        self.stats: dict[str, list[int]] = {}

    def plan(self, names: list[tuple[str, os.stat_result]], full: bool = False) -> tuple[list[list[Any]], list[str]]:
        """(the manifest's entries, the names to send) for the context's entries and their lstat."""
        entries: list[list[Any]] = []
        send: list[str] = []
        racy_before = self.walked - 1_000_000_000
        for name, st in names:
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                entries.append([name, "dir", mode, st.st_mtime, 0, "", 0])
            elif stat.S_ISLNK(st.st_mode):
                entries.append([name, "symlink", mode, st.st_mtime, 0, os.readlink(os.path.join(self.ctx, name)), 0])
            elif stat.S_ISREG(st.st_mode):
                rec = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]
                self.stats[name] = rec
                same = not full and self.base and self.files.get(name) == rec and st.st_mtime_ns < racy_before \
                    and st.st_ctime_ns < racy_before
                entries.append([name, "file", mode, st.st_mtime, st.st_size, "", 0 if same else 1])
                if not same:
                    send.append(name)
        return entries, send

    def body(self, entries: list[list[Any]], send: list[str], tar_of: Any) -> Iterator[bytes]:
        """The manifest as the first member, then the tar of what changed (without its end)."""
        data = json.dumps({"entries": entries}, separators=(",", ":")).encode()
        buf = io.BytesIO()
        ti = tarfile.TarInfo(MANIFEST)
        ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
        buf.write(ti.tobuf(tarfile.GNU_FORMAT))
        buf.write(data + b"\0" * (-len(data) % 512))
        yield buf.getvalue()
        yield from tar_of(send)

    def save(self, gen: str) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"base": gen, "files": self.stats, "walked": self.now}, f)
        os.replace(tmp, self.path)

    def forget(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass
