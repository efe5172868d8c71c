"""Reading a container's log (json-file or local: the same records): since/until/tail/timestamps,
and following new lines across rotations. Files are read and decoded in worker threads, in
blocks (4 MiB, decoded in one json call), so a large log never stalls the daemon's event loop
nor sits whole in memory."""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from .. import units
from ..errors import InvalidArgument
from ..monitor.logfile import log_files
from ..units import rfc3339_to_ts

BLOCK = 4 << 20   # bytes of log read and decoded at a time
Encode = Callable[[list[dict]], bytes]   # records → what goes to the client


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
    details: bool = False   # each line prefixed with its record's attrs (k=v,…), as dockerd


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
    if line[:1].isdigit():
        return _decode_cri(line)
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _decode_cri(line: bytes) -> dict | None:
    """A line of the CRI log format (the `cri` driver) as a json-file record: a P(artial) part keeps no
    line end, so the parts read back as the one line they were cut from."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    text = (parts[3] if len(parts) == 4 else b"").decode("utf-8", "replace")
    return {"log": text + ("\n" if parts[2] == b"F" else ""), "stream": parts[1].decode(), "time": parts[0].decode()}


def _decode_many(data: bytes) -> list[dict]:
    """Whole lines of records, decoded in one call (a damaged line: one at a time, skipped)."""
    if data[:1].isdigit():   # the cri driver's lines
        return [r for line in data.splitlines() if isinstance(r := _decode_cri(line), dict)]
    try:
        got = json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]")
        if all(isinstance(r, dict) for r in got):
            return got
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    return [r for line in data.splitlines() if isinstance(r := _decode(line), dict)]


def _batches(f: BinaryIO) -> Iterator[tuple[list[dict], int]]:
    """(records, bytes of whole lines they came from) a block at a time; an unfinished last line
    is left for following to pick up whole."""
    rest = b""
    while blk := f.read(BLOCK):
        blk = rest + blk
        end = blk.rfind(b"\n") + 1
        rest = blk[end:]
        if end:
            yield _decode_many(blk[:end]), end


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

    def _batches(self) -> Iterator[list[dict]]:
        cur_ino = os.fstat(self.current.fileno()).st_ino if self.current is not None else -1
        for fp in log_files(self.path):
            if fp == self.path:
                continue
            try:
                if os.stat(fp).st_ino == cur_ino:
                    continue
                with (gzip.open(fp, "rb") if fp.endswith(".gz") else open(fp, "rb")) as f:
                    for recs, _ in _batches(cast(BinaryIO, f)):
                        yield recs
            except (FileNotFoundError, EOFError, gzip.BadGzipFile):
                continue   # compressed or dropped while we read (a rotation), or cut short
        if self.current is not None:
            self.current.seek(0)
            for recs, n in _batches(self.current):
                self.offset += n
                yield recs

    def chunks(self) -> Iterator[bytes]:
        o = self.o
        plain = o.stdout and o.stderr and not o.since and not o.until
        if o.tail >= 0:
            last: collections.deque[dict] = collections.deque(maxlen=o.tail)
            for recs in self._batches():
                last.extend(recs if plain else [r for r in recs if _accept(r, o)])
            recs = list(last)
            for i in range(0, len(recs), 10_000):
                yield self.encode(recs[i:i + 10_000])
            return
        for recs in self._batches():
            b = self.encode(recs if plain else [r for r in recs if _accept(r, o)])
            if b:
                yield b


def read_all(path: str, o: LogOptions) -> list[dict]:
    """Every matching record (blocking; small logs and tests)."""
    got: list[dict] = []

    def keep(recs: list[dict]) -> bytes:
        got.extend(recs)
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
