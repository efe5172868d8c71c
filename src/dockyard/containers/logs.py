"""Reading a container's log (json-file or local: the same records): since/until/tail/timestamps,
and following new lines across rotations. Files are read and decoded in worker threads, in
chunks, so a large log never stalls the daemon's event loop nor sits whole in memory."""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .. import units
from ..errors import InvalidArgument
from ..monitor.logfile import log_files
from ..units import rfc3339_to_ts

CHUNK = 256 * 1024
Encode = Callable[[dict], bytes]


@dataclass(frozen=True)
class LogOptions:
    """What `GET /containers/{id}/logs` asks for."""

    stdout: bool = True
    stderr: bool = True
    since: float = 0.0
    until: float = 0.0
    tail: int = -1
    timestamps: bool = False
    follow: bool = False


def parse_time(v: str) -> float:
    """units.parse_time with the engine's error kind."""
    try:
        return units.parse_time(v)
    except ValueError as e:
        raise InvalidArgument(str(e)) from None


def _accept(rec: dict, o: LogOptions) -> bool:
    if rec.get("stream") == "stdout" and not o.stdout:
        return False
    if rec.get("stream") == "stderr" and not o.stderr:
        return False
    if o.since or o.until:
        t = rfc3339_to_ts(rec["time"])
        if o.since and t < o.since:
            return False
        if o.until and t > o.until:
            return False
    return True


def _decode(line: bytes) -> dict | None:
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _lines(fp: str) -> Iterator[bytes]:
    opener = gzip.open if fp.endswith(".gz") else open
    try:
        with opener(fp, "rb") as f:
            yield from f
    except (FileNotFoundError, EOFError, gzip.BadGzipFile):
        return   # compressed or dropped while we read (a rotation), or cut short


def open_log(path: str) -> BinaryIO | None:
    """Open the current log file now (before reading), so a removal or rotation cannot take it away."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


class Existing:
    """The matching records on disk, as chunks of encoded frames (a blocking iterator: drive it
    from a worker thread). `offset` is then where the current file's complete lines end."""

    def __init__(self, path: str, o: LogOptions, encode: Encode, current: BinaryIO | None) -> None:
        self.path, self.o, self.encode, self.current = path, o, encode, current
        self.offset = 0

    def _records(self) -> Iterator[dict]:
        cur_ino = os.fstat(self.current.fileno()).st_ino if self.current is not None else -1
        for fp in log_files(self.path):
            if fp == self.path:
                continue
            try:
                if os.stat(fp).st_ino == cur_ino:
                    continue
            except FileNotFoundError:
                continue
            for line in _lines(fp):
                rec = _decode(line)
                if rec is not None:
                    yield rec
        if self.current is not None:
            self.current.seek(0)
            for line in self.current:
                if not line.endswith(b"\n"):
                    break   # a record being written: following picks it up whole
                self.offset += len(line)
                rec = _decode(line)
                if rec is not None:
                    yield rec

    def chunks(self) -> Iterator[bytes]:
        o = self.o
        plain = o.stdout and o.stderr and not o.since and not o.until
        recs: Iterator[dict] = (r for r in self._records() if plain or _accept(r, o))
        if o.tail >= 0:
            recs = iter(collections.deque(recs, maxlen=o.tail) if o.tail else ())
        out: list[bytes] = []
        n = 0
        for rec in recs:
            b = self.encode(rec)
            out.append(b)
            n += len(b)
            if n >= CHUNK:
                yield b"".join(out)
                out, n = [], 0
        if out:
            yield b"".join(out)


def read_all(path: str, o: LogOptions) -> list[dict]:
    """Every matching record (blocking; small logs and tests)."""
    got: list[dict] = []

    def keep(rec: dict) -> bytes:
        got.append(rec)
        return b""
    e = Existing(path, o, keep, open_log(path))
    for _ in e.chunks():
        pass
    if e.current is not None:
        e.current.close()
    return got


async def chunks(e: Existing) -> AsyncIterator[bytes]:
    """`e.chunks()`, each chunk read and encoded in a worker thread."""
    it = e.chunks()
    while (chunk := await asyncio.to_thread(next, it, None)) is not None:
        yield chunk


async def follow(path: str, offset: int, o: LogOptions, done: Callable[[], bool],
                 f: BinaryIO | None = None) -> AsyncIterator[dict]:
    """New records appended after `offset` until `done()` and the file is drained. The file is
    held open, so records are not lost if the container (and its log) is removed meanwhile;
    after a rotation the old file is drained before the new one is read."""
    if f is not None:
        f.seek(offset)
    buf = b""
    try:
        while True:
            finished = done()
            if f is None:
                try:
                    f = open(path, "rb")  # noqa: ASYNC230 - a local file, opened once per follow
                    f.seek(offset)
                except FileNotFoundError:
                    f = None
            data = await asyncio.to_thread(f.read, 1 << 20) if f is not None else b""
            if f is not None and not data:
                try:  # rotated: drain what was written before it, then go on with the new file
                    if os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                        data = await asyncio.to_thread(f.read)
                        f.close()
                        f = open(path, "rb")  # noqa: ASYNC230 - reopened after a rotation
                        data += await asyncio.to_thread(f.read, 1 << 20)
                        finished = False
                except FileNotFoundError:
                    pass
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                rec = _decode(line)
                if rec is not None and _accept(rec, o):
                    if o.until and rfc3339_to_ts(rec["time"]) > o.until:
                        return
                    yield rec
            if finished and not data:
                return
            if not data:
                await asyncio.sleep(0.02)
    finally:
        if f is not None:
            f.close()
