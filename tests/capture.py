"""A recording proxy on a unix socket: real clients (the docker CLIs, docker-py) talk through it
to a real daemon, and it keeps every request they send — so a test can replay exactly what a
client sent, to another daemon, instead of a body written by hand."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Request:
    """One HTTP request as a client sent it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf = sock, b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class RecordingProxy:
    """Listens on `path`, forwards to the daemon at `upstream`, records requests in `requests`."""

    def __init__(self, path: Path, upstream: Path) -> None:
        self.path, self.upstream = path, upstream
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._srv = socket.socket(socket.AF_UNIX)
        self._srv.bind(str(path))
        self._srv.listen(16)
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def creates(self) -> list[Request]:
        """The container create requests recorded so far."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.target.split("?")[0].endswith("/containers/create")]

    def close(self) -> None:
        self._stop = True
        self._srv.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            up = socket.socket(socket.AF_UNIX)
            up.connect(str(self.upstream))
            threading.Thread(target=self._requests, args=(conn, up), daemon=True).start()
            threading.Thread(target=self._copy, args=(up, conn), daemon=True).start()

    def _requests(self, conn: socket.socket, up: socket.socket) -> None:
        r = _Reader(conn)
        try:
            while True:
                start = r.line()
                if not start:
                    break
                head = [start]
                headers: dict[str, str] = {}
                while (line := r.line()):
                    head.append(line)
                    k, _, v = line.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                if line is None:
                    break
                body = self._body(r, headers)
                method, target = start.decode("latin-1").split(" ")[:2]
                with self._lock:
                    self.requests.append(Request(method, target, headers, body))
                out = b"\r\n".join(h for h in head if not h.lower().startswith(b"transfer-encoding")
                                   and not h.lower().startswith(b"content-length"))
                up.sendall(out + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                if headers.get("upgrade") or headers.get("connection", "").lower() == "upgrade":
                    self._copy(conn, up, r.buf)   # hijacked: raw from here on
                    return
        except (OSError, EOFError):
            pass
        finally:
            try:
                up.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    @staticmethod
    def _body(r: _Reader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((r.line() or b"0").split(b";")[0], 16)
                if size == 0:
                    r.line()
                    return b"".join(parts)
                parts.append(r.exactly(size))
                r.line()
        return r.exactly(int(headers.get("content-length", "0")))

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket, first: bytes = b"") -> None:
        try:
            if first:
                dst.sendall(first)
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
