"""Reading json-file logs: since/until/tail/timestamps, and following new lines."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO

from .. import units
from ..errors import InvalidArgument
from ..units import rfc3339_to_ts


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


def _files(path: str) -> list[str]:
    out: list[str] = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        out.insert(0, f"{path}.{i}")
        i += 1
    if os.path.exists(path):
        out.append(path)
    return out


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


def read_existing(path: str, o: LogOptions) -> tuple[list[dict], int]:
    """Matching records already on disk, and the offset at the end of the current file."""
    recs: list[dict] = []
    end = 0
    for fp in _files(path):
        with open(fp, "rb") as f:
            data = f.read()
        if fp == path:
            end = len(data) - (len(data) - data.rfind(b"\n") - 1 if not data.endswith(b"\n") else 0)
        for line in data.splitlines():
            rec = _decode(line)
            if rec is not None and _accept(rec, o):
                recs.append(rec)
    if o.tail >= 0:
        recs = recs[-o.tail:] if o.tail else []
    return recs, end


def open_log(path: str) -> BinaryIO | None:
    """Open the current log file now (before reading), so a removal cannot take it away."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


async def follow(path: str, offset: int, o: LogOptions, done: Callable[[], bool],
                 f: BinaryIO | None = None) -> AsyncIterator[dict]:
    """New records appended after `offset` until `done()` and the file is drained. The file is
    held open, so records are not lost if the container (and its log) is removed meanwhile."""
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
            data = f.read() if f is not None else b""
            if f is not None and not data:
                try:  # rotated: continue with the new file
                    if os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                        f.close()
                        f = open(path, "rb")  # noqa: ASYNC230 - reopened after a rotation
                        data = f.read()
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
            if finished:
                return
            await asyncio.sleep(0.02)
    finally:
        if f is not None:
            f.close()
