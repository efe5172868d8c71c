"""A minimal HTTP/1.1 client over a unix socket.

Written by hand on purpose: the CLI's start-up is a measured feature, and http.client or h11
add 40-60 ms of imports (measured with `python -c "import http.client"` in the project venv)
to every command. It supports what the Engine API needs: Content-Length, chunked and
read-until-close bodies, and connection hijacking after `101 UPGRADED`.
"""

from __future__ import annotations

import _socket
import os

from . import jsonlite

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(s: str, safe: str = "") -> str:
    """Percent-encode (urllib.parse.quote without its import cost)."""
    ok = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in ok else f"%{b:02X}" for b in s.encode())


def urlencode(q: dict[str, Any]) -> str:
    """`k=v&...`, lists repeated (doseq)."""
    parts = []
    for k, v in q.items():
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            parts.append(f"{quote(str(k))}={quote(str(item))}")
    return "&".join(parts)


class ConnectionFailed(Exception):
    """The daemon's socket cannot be reached."""


class Response:
    """Status, headers and a body reader."""

    def __init__(self, sock: _socket.socket, rfile: Any, status: int, reason: str, headers: dict[str, str]) -> None:
        self.sock, self.rfile, self.status, self.reason, self.headers = sock, rfile, status, reason, headers
        te = headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        cl = headers.get("content-length")
        self._left = int(cl) if cl is not None and not self._chunked else None
        self._chunk_left = 0
        self._eof = status in (204, 304) or self._left == 0

    def read1(self, n: int = 65536) -> bytes:
        """Up to n bytes of body; b"" at the end."""
        if self._eof:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                line = self.rfile.readline()
                if not line:
                    self._eof = True
                    return b""
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self._eof = True
                    return b""
                self._chunk_left = size
            data = self.rfile.read1(min(n, self._chunk_left))
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self.rfile.readline()
            if not data:
                self._eof = True
            return data
        if self._left is not None:
            data = self.rfile.read1(min(n, self._left)) if self._left else b""
            self._left -= len(data)
            if self._left == 0 or not data:
                self._eof = True
            return data
        data = self.rfile.read1(n)
        if not data:
            self._eof = True
        return data

    def read(self, n: int = -1) -> bytes:
        """The whole body, or up to n bytes (fewer only at the end)."""
        if n >= 0:
            return self.readexactly(n)
        out: list[bytes] = []
        while True:
            b = self.read1()
            if not b:
                return b"".join(out)
            out.append(b)

    def readexactly(self, n: int) -> bytes:
        """Exactly n bytes, or fewer at the end of the body."""
        buf = b""
        while len(buf) < n:
            b = self.read1(n - len(buf))
            if not b:
                break
            buf += b
        return buf

    def json(self) -> Any:
        """The body as JSON."""
        return jsonlite.loads(self.read() or b"null")

    def lines(self) -> Iterator[bytes]:
        """Body lines (for JSON message streams)."""
        buf = b""
        while True:
            b = self.read1()
            if not b:
                break
            buf += b
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield line
        if buf.strip():
            yield buf

    def close(self) -> None:
        """Close the connection."""
        try:
            self.sock.close()
        except OSError:
            pass


def connect(path: str) -> _socket.socket:
    """A connected unix socket (the C module's: `socket` imports `selectors` and `enum`, ms of start-up)."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(path)
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as e:
        s.close()
        raise ConnectionFailed(f"Cannot connect to the Dockyard daemon at unix://{path}. "
                               f"Is the daemon running? ({e.strerror})") from None
    return s


def _sendfile(sock: _socket.socket, body: Any, size: int) -> None:
    """The rest of an open regular file, by the kernel."""
    offset = body.tell()
    end = offset + size
    while offset < end:
        sent = os.sendfile(sock.fileno(), body.fileno(), offset, end - offset)
        if sent == 0:
            break
        offset += sent
    body.seek(offset)


def _regular_file_size(body: Any) -> int | None:
    """Bytes left in `body` if it is an open regular file (sent with sendfile), else None."""
    import stat
    try:
        st = os.fstat(body.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return st.st_size - body.tell()


def request(sock_path: str, method: str, path: str, query: dict[str, Any] | None = None,
            body: bytes | Iterator[bytes] | BinaryIO | None = None, headers: dict[str, str] | None = None,
            upgrade: bool = False) -> Response:
    """Send one request on a fresh connection and read the response head."""
    q = {k: v for k, v in (query or {}).items() if v is not None}
    url = quote(path, safe="/:@") + ("?" + urlencode(q) if q else "")
    h = {"Host": "docker", "User-Agent": "Dockyard-Client"}
    h.update(headers or {})
    if upgrade:
        h["Connection"] = "Upgrade"
        h["Upgrade"] = "tcp"
    sock = connect(sock_path)
    file_size = _regular_file_size(body)
    streaming = body is not None and not isinstance(body, (bytes, bytearray)) and file_size is None
    if isinstance(body, (bytes, bytearray)):
        h["Content-Length"] = str(len(body))
    elif file_size is not None:
        h["Content-Length"] = str(file_size)
    elif streaming:
        h["Transfer-Encoding"] = "chunked"
    elif method in ("POST", "PUT"):
        h["Content-Length"] = "0"
    head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    sock.sendall(head.encode() + (body if isinstance(body, (bytes, bytearray)) else b""))
    if file_size is not None:
        _sendfile(sock, body, file_size)
    elif streaming:
        for chunk in body:  # type: ignore[union-attr]
            assert isinstance(chunk, (bytes, bytearray))
            if chunk:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    rfile = open(sock.fileno(), "rb", buffering=65536, closefd=False)   # (what makefile gives, without socket.py)
    status_line = rfile.readline().decode("latin-1")
    if not status_line:
        sock.close()
        raise ConnectionFailed("the daemon closed the connection without answering")
    parts = status_line.split(" ", 2)
    status = int(parts[1])
    reason = parts[2].strip() if len(parts) > 2 else ""
    hdrs: dict[str, str] = {}
    while True:
        line = rfile.readline().decode("latin-1")
        if line in ("\r\n", "\n", ""):
            break
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    resp = Response(sock, rfile, status, reason, hdrs)
    if status == 101:
        resp._left, resp._chunked, resp._eof = None, False, False
    elif method == "HEAD":
        resp._eof = True
    return resp
