"""Keep a layer's tar without keeping its bytes twice (the idea of Docker's tar-split).

While a layer is unpacked, every byte of its tar that is not a regular file's payload (headers,
PAX records, padding, the end marker) is recorded, and each payload is recorded as a reference
to the file it was written to (size and CRC-32). `write_layer` later rebuilds the exact original
tar, byte for byte (so its digest is still the layer's DiffID), from that record and the
unpacked files. Unpacking stays one pass over the stream and the layer is stored once.

A payload can only be lost if the same unpack removes or replaces its file (duplicate entries,
a whiteout or a directory replacing a path of the same layer): `rescue` moves such files into
an `attic` next to the tree first and points their references there.

File (`<layer dir>/tarsplit`): a text line `DYTS1 <tar size> <digest> <keys length>\n`, the
zlib-compressed key table (NUL-separated paths, relative to the tree), then the zlib-compressed
records: `R` + u32 length + bytes, `F` + u64 size + u32 crc + u32 key index.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO

from ..errors import InvalidArgument

MAGIC = b"DYTS1"
_F = struct.Struct(">QII")
_R = struct.Struct(">I")
_FLUSH_RAW = 256 << 10


class Recorder:
    """Builds a tarsplit while `tarapply` unpacks into `<dir>/fs`."""

    def __init__(self, layer_dir: str) -> None:
        self.dir = layer_dir
        self.tmp = open(os.path.join(layer_dir, "tarsplit.tmp"), "wb")
        self.z = zlib.compressobj(1)
        self.rawbuf = bytearray()
        self.keys: list[str] = []
        self.attic = 0

    def raw(self, data: bytes | memoryview) -> None:
        """Bytes of the stream that are not a file's payload."""
        self.rawbuf += data
        if len(self.rawbuf) >= _FLUSH_RAW:
            self._flush()

    def _flush(self) -> None:
        if self.rawbuf:
            self.tmp.write(self.z.compress(b"R" + _R.pack(len(self.rawbuf))))
            self.tmp.write(self.z.compress(self.rawbuf))
            self.rawbuf = bytearray()

    def file(self, key: str, size: int, crc: int) -> None:
        """A payload now stored in file `key` (relative to the tree)."""
        self._flush()
        self.tmp.write(self.z.compress(b"F" + _F.pack(size, crc, len(self.keys))))
        self.keys.append(key)

    def rescue(self, victim: str) -> str | None:
        """Before `victim` (a path relative to the tree) is removed: if payloads live at or
        below it, move it to the attic and repoint them. Returns the new path, or None when
        nothing recorded lives there (the caller removes it as usual)."""
        prefix = victim + "/"
        hits = [i for i, k in enumerate(self.keys) if k == victim or k.startswith(prefix)]
        if not hits:
            return None
        os.makedirs(os.path.join(self.dir, "attic"), exist_ok=True)
        self.attic += 1
        new = f"../attic/{self.attic}"
        os.rename(os.path.join(self.dir, "fs", victim), os.path.join(self.dir, "fs", new))
        for i in hits:
            self.keys[i] = new + self.keys[i][len(victim):]
        return new

    def finish(self, size: int, digest: str) -> None:
        """Write the final file (the tar's size and digest are the reader's)."""
        self._flush()
        self.tmp.write(self.z.flush())
        self.tmp.close()
        keys = zlib.compress("\0".join(self.keys).encode("utf-8", "surrogateescape"), 1)
        tmp2 = os.path.join(self.dir, "tarsplit.new")
        with open(tmp2, "wb") as out, open(self.tmp.name, "rb") as recs:
            out.write(b"%s %d %s %d\n" % (MAGIC, size, digest.encode(), len(keys)))
            out.write(keys)
            while chunk := recs.read(1 << 20):
                out.write(chunk)
        os.unlink(self.tmp.name)
        os.replace(tmp2, os.path.join(self.dir, "tarsplit"))

    def abort(self) -> None:
        """Drop partial output."""
        if not self.tmp.closed:
            self.tmp.close()
        for n in ("tarsplit.tmp", "tarsplit.new"):
            try:
                os.unlink(os.path.join(self.dir, n))
            except FileNotFoundError:
                pass


def info(layer_dir: str) -> tuple[int, str] | None:
    """(tar size, digest) of the layer's recorded tar, or None if it has no tarsplit."""
    try:
        with open(os.path.join(layer_dir, "tarsplit"), "rb") as f:
            size, digest, _ = _header(f, layer_dir)
    except FileNotFoundError:
        return None
    return size, digest


def _header(f: BinaryIO, layer_dir: str) -> tuple[int, str, int]:
    """(tar size, digest, key table length) from the first line."""
    head = f.readline(200).split()
    if len(head) != 4 or head[0] != MAGIC:
        raise InvalidArgument(f"{layer_dir}/tarsplit: not a tarsplit file")
    return int(head[1]), head[2].decode(), int(head[3])


def write_layer(layer_dir: str, out: BinaryIO) -> int:
    """Write the layer's original tar to `out`; every payload is checked against its recorded
    size and CRC. Returns the number of bytes written."""
    with open(os.path.join(layer_dir, "tarsplit"), "rb") as f:
        size, _, klen = _header(f, layer_dir)
        keys = zlib.decompress(f.read(klen)).decode("utf-8", "surrogateescape").split("\0")
        fsfd = os.open(os.path.join(layer_dir, "fs"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            written = _replay(_Inflate(f), keys, fsfd, out)
        finally:
            os.close(fsfd)
    if written != size:
        raise InvalidArgument(f"{layer_dir}: rebuilt {written} bytes of a {size}-byte layer")
    return written


class _Inflate:
    """Exact reads from a zlib stream."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.z, self.buf, self.pos = f, zlib.decompressobj(), b"", 0

    def read(self, n: int) -> bytes:
        if len(self.buf) - self.pos < n:
            parts = [self.buf[self.pos:]]
            have = len(parts[0])
            while have < n:
                if self.z.unconsumed_tail:
                    more = self.z.decompress(self.z.unconsumed_tail, 1 << 20)
                else:
                    data = self.f.read(1 << 16)
                    if not data:
                        break
                    more = self.z.decompress(data, 1 << 20)
                parts.append(more)
                have += len(more)
            self.buf, self.pos = b"".join(parts), 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def _replay(src: _Inflate, keys: list[str], fsfd: int, out: BinaryIO) -> int:
    written = 0
    while True:
        tag = src.read(1)
        if not tag:
            return written
        if tag == b"R":
            (n,) = _R.unpack(src.read(4))
            while n:
                data = src.read(min(n, 1 << 20))
                if not data:
                    raise InvalidArgument("tarsplit: truncated record")
                out.write(data)
                n -= len(data)
                written += len(data)
        elif tag == b"F":
            size, crc, k = _F.unpack(src.read(_F.size))
            written += _copy_file(fsfd, keys[k], size, crc, out)
        else:
            raise InvalidArgument("tarsplit: corrupt record")


def _copy_file(fsfd: int, key: str, size: int, crc: int, out: BinaryIO) -> int:
    fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fsfd)
    try:
        left, c = size, 0
        while left:
            data = os.read(fd, min(left, 1 << 20))
            if not data:
                break
            c = zlib.crc32(data, c)
            out.write(data)
            left -= len(data)
    finally:
        os.close(fd)
    if left or c != crc:
        raise InvalidArgument(f"layer file {key!r} changed since it was unpacked; the layer's tar cannot be rebuilt")
    return size
