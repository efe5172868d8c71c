"""json-file log writer (Docker's format: one JSON object a line), rotated by size."""

from __future__ import annotations

import datetime as _dt
import json
import os

MAX_LINE = 16 * 1024


def now_rfc3339() -> str:
    """UTC time with nanosecond-style precision, as Docker writes it."""
    t = _dt.datetime.now(_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


class LogWriter:
    """Appends records; keeps `max_files` files of at most `max_size` bytes each (no limit and
    no rotation with max_size -1, Docker's default)."""

    def __init__(self, path: str, max_size: int = -1, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.f = open(path, "ab", buffering=0)
        self.size = self.f.tell()
        self.partial = {"stdout": b"", "stderr": b""}
        self.dropped = 0   # records that did not fit on the disk

    def feed(self, stream: str, data: bytes) -> None:
        """Split into lines and write complete ones; long lines are cut as Docker does."""
        buf = self.partial[stream] + data
        out = []
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            out.append(buf[: i + 1])
            buf = buf[i + 1:]
        while len(buf) >= MAX_LINE:
            out.append(buf[:MAX_LINE])
            buf = buf[MAX_LINE:]
        self.partial[stream] = buf
        for line in out:
            self._write(stream, line)

    def flush(self) -> None:
        """Write what is left of unterminated lines."""
        for stream, buf in self.partial.items():
            if buf:
                self._write(stream, buf)
                self.partial[stream] = b""

    def _write(self, stream: str, line: bytes) -> None:
        rec = json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": now_rfc3339()}).encode() + b"\n"
        if self.max_size > 0 and self.size + len(rec) > self.max_size and self.size > 0:
            self._rotate()
        try:
            n = self.f.write(rec)
        except OSError:
            n = -1
        if n != len(rec):
            # a full disk (or a failing one): the record is dropped whole, never left half
            # written to spoil the next one; logging goes on when there is room again
            self.dropped += 1
            try:
                self.f.truncate(self.size)
            except OSError:
                pass
            return
        self.size += len(rec)

    def _rotate(self) -> None:
        """Shift `log` → `log.1` → … (the oldest falls off); with one file, start it anew. Always
        a new inode, so followers notice."""
        self.f.close()
        if self.max_files <= 1:
            os.unlink(self.path)
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else f"{self.path}.{i - 1}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i}")
        self.f = open(self.path, "ab", buffering=0)
        self.size = 0

    def close(self) -> None:
        """Flush partial lines and close."""
        self.flush()
        self.f.close()
