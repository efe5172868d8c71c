"""TLS on TCP listeners (`-H tcp://... --tlsverify`): a small terminating proxy in front of an
internal unix socket of the API, one thread per connection.

asyncio's TLS transport cannot half-close: when a client ends its side of a hijacked stream
(`docker run` without stdin sends close_notify, Go's tls.Conn.CloseWrite), asyncio shuts the
whole connection and the container's output is lost. OpenSSL itself can keep writing after it
received close_notify, so each connection is pumped here with non-blocking sockets and one
selector: the client's end becomes a shutdown(SHUT_WR) towards the API, as a plain socket's
would. The event loop is not involved."""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading

log = logging.getLogger("dockyard.tls")
_CAP = 1 << 20


class TLSProxy:
    """Listen on host:port, require a client certificate, relay to `backend` (a unix socket)."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext, backend: str) -> None:
        self.ctx, self.backend = ctx, backend
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(socket.SOMAXCONN)
        self.closed = False

    def start(self) -> None:
        """Accept in a daemon thread."""
        threading.Thread(target=self._accept, name="tls-accept", daemon=True).start()

    def close(self) -> None:
        """Stop accepting (connections in flight finish on their own)."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="tls-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(15)
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log.info("TLS handshake refused: %s", e)
            conn.close()
            return
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self.backend)
            pump(tls, up)
        except OSError as e:
            log.debug("TLS connection ended: %s", e)
        finally:
            up.close()
            tls.close()


def pump(tls: ssl.SSLSocket, up: socket.socket) -> None:
    """Relay both ways until the API side is done and everything it said is delivered."""
    tls.setblocking(False)
    up.setblocking(False)
    to_up, to_tls = b"", b""
    tls_eof = up_eof = up_shut = False
    tls_wants_write = False
    while not (up_eof and not to_tls):
        if tls_eof and not to_up and not up_shut:
            up.shutdown(socket.SHUT_WR)   # the client's half-close, passed on
            up_shut = True
        r: list[socket.socket] = []
        w: list[socket.socket] = []
        if not tls_eof and len(to_up) < _CAP:
            r.append(tls)
        if not up_eof and len(to_tls) < _CAP:
            r.append(up)
        if to_up:
            w.append(up)
        if to_tls or tls_wants_write:
            w.append(tls)
        if tls in r and tls.pending():
            rr, ww = [tls], []  # type: list[socket.socket], list[socket.socket]
        else:
            rr, ww, _ = select.select(r, w, [])
        if tls in rr:
            try:
                data = tls.recv(65536)
                if data:
                    to_up += data
                else:
                    tls_eof = True
                tls_wants_write = False
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLWantWriteError:
                tls_wants_write = True
            except (ssl.SSLError, ConnectionError):
                tls_eof = True
                to_tls = b""
                up_eof = True   # the client is gone: nothing more can be delivered
        if up in rr:
            data = up.recv(65536)
            if data:
                to_tls += data
            else:
                up_eof = True
        if up in ww and to_up:
            n = up.send(to_up)
            to_up = to_up[n:]
        if tls in ww and to_tls:
            try:
                n = tls.send(to_tls)
                to_tls = to_tls[n:]
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
    try:
        tls.setblocking(True)
        tls.settimeout(2)
        tls.unwrap()
    except (OSError, ssl.SSLError, ValueError):
        pass
