"""A lean streaming tar reader: ustar, GNU long names and PAX headers, over plain, gzip, bzip2
or xz input. It parses headers itself (the stdlib `tarfile` spent more time parsing a layer than
the kernel spent writing it), hashes every byte it consumes (the digest of a layer's tar is its
DiffID) and can report every byte that is not a regular file's payload to a recorder, which is
how a layer's tar is rebuilt later from its unpacked files (see `tarsplit`).

The reader trusts nothing: checksums are verified, numbers parsed strictly, a short read is an
error. It does not touch the filesystem; `tarapply` decides what an entry may do.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from ..errors import InvalidArgument

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
CHUNK = 1 << 20
REG, AREG, CONT, LNK, SYM, CHR, BLK, DIR, FIFO = b"0", b"\0", b"7", b"1", b"2", b"3", b"4", b"5", b"6"
GNU_LONGNAME, GNU_LONGLINK, PAX, PAX_GLOBAL = b"L", b"K", b"x", b"g"
_HEADER_ONLY = (LNK, SYM, CHR, BLK, DIR, FIFO)
_META_MAX = 1 << 20   # a PAX header or GNU long name larger than this is hostile


class Recorder(Protocol):
    """Receives the bytes of a tar stream that are not regular-file payloads, and references
    to the payloads a consumer stored elsewhere, in stream order."""

    def raw(self, data: bytes | memoryview) -> None: ...  # noqa: D102

    def file(self, key: str, size: int, crc: int) -> None: ...  # noqa: D102


class Entry:
    """One member, with its PAX/GNU extensions applied."""

    __slots__ = ("name", "linkname", "type", "mode", "uid", "gid", "size", "mtime", "devmajor", "devminor",
                 "xattrs")

    def __init__(self, name: str, linkname: str, typ: bytes, mode: int, uid: int, gid: int, size: int,
                 mtime: float, devmajor: int, devminor: int, xattrs: dict[str, bytes]) -> None:
        self.name, self.linkname, self.type, self.mode = name, linkname, typ, mode
        self.uid, self.gid, self.size, self.mtime = uid, gid, size, mtime
        self.devmajor, self.devminor, self.xattrs = devmajor, devminor, xattrs

    def isreg(self) -> bool:  # noqa: D102
        return self.type in (REG, AREG, CONT)

    def isdir(self) -> bool:  # noqa: D102
        return self.type == DIR

    def issym(self) -> bool:  # noqa: D102
        return self.type == SYM

    def islnk(self) -> bool:  # noqa: D102
        return self.type == LNK

    def ischr(self) -> bool:  # noqa: D102
        return self.type == CHR

    def isblk(self) -> bool:  # noqa: D102
        return self.type == BLK

    def isfifo(self) -> bool:  # noqa: D102
        return self.type == FIFO


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument(f"invalid tar archive: {msg}")


def _num(field: bytes) -> int:
    if field and field[0] & 0x80:   # base-256 (GNU/star) for values that do not fit in octal
        n = int.from_bytes(field, "big")
        return n - (1 << (8 * len(field))) if field[0] == 0xFF else n - (0x80 << (8 * (len(field) - 1)))
    try:   # the common case: octal digits, then NULs or spaces
        return int(field.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        pass
    s = field.split(b"\0", 1)[0].strip(b" ")
    if not s:
        return 0
    try:
        return int(s, 8)
    except ValueError:
        raise _bad(f"bad number field {field!r}") from None


def _str(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:   # NUL padding after the last record
            break
        sp = data.find(b" ", pos, pos + 24)
        try:
            length = int(data[pos:sp]) if sp > pos else -1
        except ValueError:
            length = -1
        end = pos + length
        if length <= sp - pos + 1 or end > len(data) or data[end - 1] != 0x0A:
            raise _bad("malformed PAX header")
        key, eq, value = data[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise _bad("malformed PAX record")
        out[key.decode("utf-8", "surrogateescape")] = value
        pos = end
    return out


def looks_like_archive(head: bytes) -> bool:
    """Whether the first bytes of a file (512 or more) are a tar, plain or compressed."""
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[257:262] == b"ustar":
        return True
    if len(head) < 512:
        return False
    try:
        chk = int(head[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return chk == sum(head[:148]) + 256 + sum(head[156:512])


def open_stream(stream: BinaryIO) -> BinaryIO:
    """`stream` itself, or a decompressing reader if it starts with a gzip, bzip2 or xz magic."""
    head = _read_exact_or_less(stream, 6)
    src = _Prefixed(head, stream)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[call-overload]
    if head[:3] == b"BZh":
        return bz2.BZ2File(src)  # type: ignore[call-overload]
    if head == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(src)  # type: ignore[arg-type,return-value]
    if head[:4] == b"\x28\xb5\x2f\xfd":
        raise InvalidArgument("zstd-compressed archives are not supported")
    return src  # type: ignore[return-value]


def _read_exact_or_less(f: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        b = f.read(n - len(out))
        if not b:
            break
        out += b
    return out


class _Prefixed:
    """A stream with some bytes put back at its front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.head:
            h, self.head = self.head, b""
            if n < 0:
                return h + self.rest.read()
            if n <= len(h):
                self.head = h[n:]
                return h[:n]
            return h + self.rest.read(n - len(h))
        return self.rest.read(n)


class TarReader:
    """Iterate entries of a tar stream. Payloads are read with `copy_to`, `read_payload` or
    `payload()` before asking for the next entry; whatever is left unread is skipped (and
    recorded as raw bytes). With `drain`, the stream is read to its end after the archive's
    end marker and `digest` is the sha256 of every byte (a layer's DiffID)."""

    def __init__(self, stream: BinaryIO, recorder: Recorder | None = None, *, decompress: bool = True,
                 drain: bool = False) -> None:
        self.f = open_stream(stream) if decompress else stream
        self.rec = recorder
        self.drain = drain
        self.hash = hashlib.sha256() if drain else None
        self.total = 0
        self.buf: bytes | memoryview = b""
        self.pos = 0
        self._left = 0      # payload bytes of the current entry not consumed yet
        self._pad = 0       # padding after that payload

    # --- buffer -------------------------------------------------------------
    def _more(self) -> bool:
        try:
            chunk = self.f.read(CHUNK)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise _bad(str(e)) from None
        if not chunk:
            return False
        if self.hash is not None:
            self.hash.update(chunk)
        self.total += len(chunk)
        rest = self.buf[self.pos:]
        self.buf = bytes(rest) + chunk if len(rest) else chunk
        self.pos = 0
        return True

    def _take(self, n: int) -> bytes:
        """Exactly n bytes (recorded raw), or an error."""
        while len(self.buf) - self.pos < n:
            if not self._more():
                raise _bad("unexpected end of archive")
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        if self.rec is not None:
            self.rec.raw(b)
        return b

    def _chunks(self, n: int) -> Iterator[memoryview]:
        """Up to n bytes as views into the buffer (not recorded)."""
        while n > 0:
            if self.pos >= len(self.buf):
                if not self._more():
                    raise _bad("unexpected end of archive")
            avail = len(self.buf) - self.pos
            k = n if n < avail else avail
            v = memoryview(self.buf)[self.pos:self.pos + k]
            self.pos += k
            n -= k
            self._left -= k
            yield v

    @property
    def digest(self) -> str:
        """sha256 of the whole stream (only computed with drain)."""
        return "sha256:" + self.hash.hexdigest() if self.hash is not None else ""

    # --- payloads -----------------------------------------------------------
    def _finish_entry(self) -> None:
        if self._left:
            for v in self._chunks(self._left):
                if self.rec is not None:
                    self.rec.raw(v)
        if self._pad:   # an archive cut right after its last payload (no padding, no end marker) is
            # accepted, as dockerd does: Debian's docker CLI 20.10 sends such a context with `-f` outside it
            while len(self.buf) - self.pos < self._pad and self._more():
                pass
            n = min(self._pad, len(self.buf) - self.pos)
            b = bytes(self.buf[self.pos:self.pos + n])
            self.pos += n
            if self.rec is not None:
                self.rec.raw(b)
            self._pad = 0

    def payload_chunks(self) -> Iterator[memoryview]:
        """The current entry's payload as views into the buffer (each valid until the next one)."""
        return self._chunks(self._left)

    def copy_to(self, fd: int, key: str | None = None) -> int:
        """Write the current entry's payload to `fd`; with a recorder, record it as a file
        reference `key` (a path the payload can be read back from). Returns bytes written."""
        import os
        size, crc = self._left, 0
        for v in self._chunks(self._left):
            if key is not None:
                crc = zlib.crc32(v, crc)
            while v:
                v = v[os.write(fd, v):]
        if self.rec is not None:
            if key is None:
                raise ValueError("a recorded payload needs a key")
            self.rec.file(key, size, crc)
        return size

    def read_payload(self, limit: int = _META_MAX) -> bytes:
        """The current entry's payload as bytes (recorded raw); refused past `limit`."""
        if self._left > limit:
            raise _bad(f"entry too large ({self._left} bytes) for this use")
        out = b"".join(bytes(v) for v in self._chunks(self._left))
        if self.rec is not None:
            self.rec.raw(out)
        return out

    def payload(self) -> "_Payload":
        """The current entry's payload as a file-like object (recorded raw if it is recorded)."""
        return _Payload(self)

    # --- headers ------------------------------------------------------------
    def __iter__(self) -> Iterator[Entry]:
        pax_global: dict[str, bytes] = {}
        pax: dict[str, bytes] = {}
        longname = longlink = None
        first = True
        while True:
            self._finish_entry()
            if len(self.buf) - self.pos < BLOCK and not self._more_until(BLOCK):
                if self.pos == len(self.buf) and not first and not pax and longname is None:
                    break   # end of stream without an end marker: accepted, as GNU tar does
                if first:
                    raise _bad("not a tar archive (empty or shorter than one header)")
                raise _bad("unexpected end of archive")
            blk = self._take(BLOCK)
            if blk == ZERO_BLOCK:
                if pax or longname is not None or longlink is not None:
                    raise _bad("extended header without an entry")
                break
            chk = _num(blk[148:156])
            unsigned = sum(blk) - sum(blk[148:156]) + 256
            if chk != unsigned:
                signed = sum(b - 256 if b > 127 else b for b in blk) - sum(
                    b - 256 if b > 127 else b for b in blk[148:156]) + 256
                if chk != signed:
                    raise _bad("not a tar archive (bad header checksum)" if first else "bad header checksum")
            first = False
            typ = blk[156:157]
            size = _num(blk[124:136])
            if size < 0:
                raise _bad("negative size")
            if typ in (PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                self._left, self._pad = size, -size % BLOCK
                data = self.read_payload()
                if typ == PAX:
                    pax.update(_pax(data))
                elif typ == PAX_GLOBAL:
                    pax_global.update(_pax(data))
                elif typ == GNU_LONGNAME:
                    longname = _str(data)
                else:
                    longlink = _str(data)
                continue
            name = _str(blk[0:100])
            if blk[257:263] == b"ustar\x00":   # POSIX ustar: a prefix field
                prefix = _str(blk[345:500])
                if prefix:
                    name = prefix + "/" + name
            if typ == AREG and name.endswith("/"):
                typ = DIR
            linkname = _str(blk[157:257])
            uid, gid, mtime = _num(blk[108:116]), _num(blk[116:124]), float(_num(blk[136:148]))
            xattrs: dict[str, bytes] = {}
            if longname is not None:
                name, longname = longname, None
            if longlink is not None:
                linkname, longlink = longlink, None
            if pax_global or pax:
                merged = {**pax_global, **pax}
                pax = {}
                try:
                    for k, v in merged.items():
                        if k == "path":
                            name = v.decode("utf-8", "surrogateescape")
                        elif k == "linkpath":
                            linkname = v.decode("utf-8", "surrogateescape")
                        elif k == "size":
                            size = int(v)
                        elif k == "uid":
                            uid = int(v)
                        elif k == "gid":
                            gid = int(v)
                        elif k == "mtime":
                            mtime = float(v)
                        elif k.startswith("SCHILY.xattr."):
                            xattrs[k[13:]] = v
                except ValueError:
                    raise _bad(f"bad PAX value for {name!r}") from None
                if size < 0:
                    raise _bad("negative size")
            self._left = 0 if typ in _HEADER_ONLY else size
            self._pad = -self._left % BLOCK
            yield Entry(name, linkname, typ, _num(blk[100:108]), uid, gid, self._left, mtime,
                        _num(blk[329:337]), _num(blk[337:345]), xattrs)
        self._finish_entry()
        if self.drain:   # the rest (end marker, record padding) is part of the stream's digest
            while True:
                if self.pos < len(self.buf):
                    rest = self.buf[self.pos:]
                    self.pos = len(self.buf)
                    if self.rec is not None:
                        self.rec.raw(rest)
                if not self._more():
                    break

    def _more_until(self, n: int) -> bool:
        while len(self.buf) - self.pos < n:
            if not self._more():
                return False
        return True


class _Payload:
    """File-like view of the current entry's payload."""

    def __init__(self, r: TarReader) -> None:
        self.r = r
        self.pending: memoryview | None = None

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> Any:
        r = self.r
        if n is None or n < 0:
            n = r._left
        if r._left <= 0 or n == 0:
            return b""
        v = next(r._chunks(min(n, r._left)))
        if r.rec is not None:
            r.rec.raw(v)
        return bytes(v)
