"""Layers unpacked in worker processes: one process per layer, so that several layers are
hashed, decompressed and written at once without sharing the daemon's GIL.

A job (one JSON line on the worker's stdin) names a source, the snapshot directory to unpack
into and what the blob must be; the worker streams the source through its digest check and
decompression into `apply_tar` (with the tarsplit recorder), and answers JSON lines on stdout:
`{"progress": bytes}` as it goes, then `{"ok": {...}}` or `{"error": {"kind", "message"}}`.

Sources:
* `{"file": path}`: a blob on disk (a layer of `docker load`, spooled).
* `{"url": u, "headers": h, "ingest": path, "timeout": s}`: a blob over HTTP(S), appended to
  `ingest` as it arrives. If `ingest` already holds the first N bytes (an earlier attempt that
  dropped, stalled or was killed) the request asks for `Range: bytes=N-`; on a 206 the bytes
  on disk are replayed into the unpack and the download continues from N. A server that ignores
  Range starts over. The ingest file is the caller's to delete once the layer is committed.

The worker dies with its parent (PR_SET_PDEATHSIG), so a daemon killed mid-pull leaves only the
ingest file and an 'extracting' snapshot, which start-up removes."""

from __future__ import annotations

import ctypes
import hashlib
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

from ..errors import InvalidArgument, SystemError_

CHUNK = 1 << 20


class Transient(SystemError_):
    """The download dropped or stalled: worth another try (it resumes)."""


class Unauthorized(Transient):
    """The registry wants a new token (it expired): the caller gets one and tries again."""


# --- the parent's side ----------------------------------------------------------------------------
class Worker:
    """One running job. `run()` blocks (call it from a worker thread); `cancel()` ends it."""

    def __init__(self, job: dict[str, Any], on_progress: Callable[[int], None]) -> None:
        self.job, self.on_progress = job, on_progress
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()
        self.cancelled = False

    def run(self) -> dict[str, Any]:
        with self.lock:
            if self.cancelled:
                raise SystemError_("cancelled")
            self.proc = subprocess.Popen([sys.executable, "-m", "dockyard.images.unpacker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(self.job).encode() + b"\n")
            self.proc.stdin.close()
            result: dict[str, Any] | None = None
            for line in self.proc.stdout:
                msg = json.loads(line)
                if "progress" in msg:
                    self.on_progress(int(msg["progress"]))
                else:
                    result = msg
        finally:
            self.proc.stdout.close()
            code = self.proc.wait()
        if result is None:
            raise SystemError_(f"layer unpack worker died (exit status {code})")
        if "ok" in result:
            return dict(result["ok"])
        err = result.get("error") or {}
        kind, message = err.get("kind", ""), str(err.get("message", "unpack failed"))
        if kind == "transient":
            raise Transient(message)
        if kind == "unauthorized":
            raise Unauthorized(message)
        if kind == "invalid":
            raise InvalidArgument(message)
        raise SystemError_(message)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()


# --- the worker's side ------------------------------------------------------------------------------
def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(1)


def _decompressor(media_type: str) -> Any:
    if "zstd" in media_type:
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj()
    if "gzip" in media_type:
        try:
            from isal import isal_zlib
            return isal_zlib.decompressobj(31)
        except ImportError:
            return zlib.decompressobj(31)
    return None


class _Blob:
    """The blob's bytes: the ingest file's first, then the network's (appended to it), each
    hashed and decompressed on the way to the tar reader; the digest is checked at the end."""

    def __init__(self, job: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
        self.job, self.emit = job, emit
        self.want, self.size = str(job.get("digest") or ""), int(job.get("size") or 0)
        self.dec = _decompressor(str(job.get("media_type") or ""))
        self.h = hashlib.sha256()
        self.n = self.reported = 0
        self.buf = b""
        self.eof = False
        self.parts: list[tuple[Any, bool]] = []   # (reader, from the network: appended to the ingest file)
        self.ingest: BinaryIO | None = None
        self.transient: BaseException | None = None
        self._open()

    def _open(self) -> None:
        src = self.job["source"]
        if "file" in src:
            self.parts = [(open(src["file"], "rb"), False)]
            return
        path = src["ingest"]
        have = os.path.getsize(path) if os.path.exists(path) else 0
        if self.size and have > self.size:
            have = 0
        headers = dict(src.get("headers") or {})
        if have:
            headers["Range"] = f"bytes={have}-"
        _guard(src["url"])
        req = urllib.request.Request(src["url"], headers=headers)
        ctx = None
        if src["url"].startswith("https:"):
            ctx = ssl.create_default_context()
            if src.get("insecure"):
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            for ca in src.get("cas") or []:
                ctx.load_verify_locations(cafile=ca)
            for cert, key in src.get("client_certs") or []:
                ctx.load_cert_chain(cert, key)
        resp: Any = None
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _Redirect())
        try:
            resp = opener.open(req, timeout=float(src.get("timeout") or 30))
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:   # everything is on disk already
                resp = None
            elif e.code == 401:
                raise Unauthorized(f"fetching blob {self.want}: HTTP 401") from None
            elif e.code in (408, 429) or e.code >= 500:
                raise Transient(f"fetching blob {self.want}: HTTP {e.code} {e.reason}") from None
            else:
                raise SystemError_(f"fetching blob {self.want}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise Transient(f"fetching blob {self.want}: {getattr(e, 'reason', e)}") from None
        if resp is not None and have and resp.status != 206:
            have = 0   # Range ignored: from the start
        self.ingest = open(path, "r+b" if have else "wb")
        self.ingest.truncate(have)
        self.ingest.seek(have)
        if have:
            self.parts.append((_Bounded(open(path, "rb"), have), False))
        if resp is not None:
            self.parts.append((resp, True))
        if have:
            self.emit({"resumed": have})

    def _next_chunk(self) -> bytes:
        while self.parts:
            part, network = self.parts[0]
            try:
                chunk = part.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:
                if not network:
                    raise
                self.transient = e
                raise Transient(f"blob {self.want}: {e}") from None
            if chunk:
                if network and self.ingest is not None:
                    self.ingest.write(chunk)
                return bytes(chunk)
            part.close()
            self.parts.pop(0)
        return b""

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buf) < n):
            chunk = self._next_chunk()
            if not chunk:
                self.eof = True
                if self.ingest is not None:
                    self.ingest.flush()
                if self.dec is not None and hasattr(self.dec, "flush"):
                    self.buf += self.dec.flush()
                if self.size and self.n < self.size:
                    self.transient = ConnectionError(f"unexpected EOF after {self.n} of {self.size} bytes")
                    raise Transient(f"blob {self.want}: {self.transient}")
                if self.want and "sha256:" + self.h.hexdigest() != self.want:
                    raise InvalidArgument(f"filesystem layer verification failed for digest {self.want}")
                if self.size and self.n != self.size:
                    raise InvalidArgument(f"layer {self.want}: {self.n} bytes, the manifest says {self.size}")
                break
            self.h.update(chunk)
            self.n += len(chunk)
            try:
                self.buf += self.dec.decompress(chunk) if self.dec is not None else chunk
            except Exception as e:  # noqa: BLE001 - zlib/isal/zstd each have their own error type
                raise InvalidArgument(f"layer {self.want}: cannot decompress it: {e}") from None
            if self.n - self.reported >= max(self.size // 50, CHUNK):
                self.reported = self.n
                self.emit({"progress": self.n})
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def digest_matches(self) -> bool:
        """After the unpack failed: hash the rest of the blob (not unpacked) and compare. A blob
        that is not what the manifest says is reported as that, not as the bad tar it makes."""
        if not self.want:
            return True
        try:
            while not self.eof:
                chunk = self._next_chunk()
                if not chunk:
                    break
                self.h.update(chunk)
                self.n += len(chunk)
        except Transient:
            return True   # cannot tell: the other error stands
        return "sha256:" + self.h.hexdigest() == self.want

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        for p, _ in self.parts:
            p.close()
        if self.ingest is not None:
            self.ingest.close()


def _guard(url: str) -> None:
    """The test suite's DOCKYARD_LOOPBACK_ONLY: nothing may reach an address off this machine."""
    if not os.environ.get("DOCKYARD_LOOPBACK_ONLY"):
        return
    import ipaddress
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise SystemError_(f"{url.split('?')[0]} is not on loopback (DOCKYARD_LOOPBACK_ONLY)")


class _Redirect(urllib.request.HTTPRedirectHandler):
    """Follow a blob's redirect (to a storage backend) without the registry's Authorization:
    presigned URLs carry their own, and the registry's token is not theirs to see."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        _guard(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.headers.pop("Authorization", None)
            new.unredirected_hdrs.pop("Authorization", None)
        return new


class _Bounded:
    """The first `n` bytes of a file."""

    def __init__(self, f: BinaryIO, n: int) -> None:
        self.f, self.left = f, n

    def read(self, size: int) -> bytes:
        data = self.f.read(min(size, self.left)) if self.left > 0 else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()


def work(job: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Do one job (in the worker process)."""
    from ..archive.tarapply import SizeLimitExceeded, apply_tar
    from ..archive.tarsplit import Recorder
    blob = _Blob(job, emit)
    rec = Recorder(job["layer_dir"])
    try:
        res = apply_tar(blob, job["fs"], whiteouts="overlay", recorder=rec,  # type: ignore[arg-type]
                        max_bytes=job.get("max_bytes"))
        if not blob.eof:   # the tar ended before the blob did: read the rest, so the digest is checked
            blob.drain()
        rec.finish(res.size, res.digest)
    except SizeLimitExceeded:
        rec.abort()
        raise InvalidArgument(f"layer does not fit: its files add up to more than the {job.get('max_bytes')} bytes "
                              "free on the data root (a compression bomb?)") from None
    except InvalidArgument as e:
        rec.abort()
        if blob.transient is not None:   # the tar reader saw a cut stream as a bad archive
            raise Transient(f"blob {blob.want}: {blob.transient}") from None
        if "verification failed" not in e.message and not blob.eof and not blob.digest_matches():
            raise InvalidArgument(f"filesystem layer verification failed for digest {blob.want}") from None
        raise
    except BaseException:
        rec.abort()
        raise
    finally:
        blob.close()
    return {"diff_id": res.digest, "bytes": res.bytes, "size": res.size, "blob_size": blob.n}


def main() -> int:
    _die_with_parent()
    job = json.loads(sys.stdin.readline())
    out = sys.stdout

    def emit(m: dict[str, Any]) -> None:
        out.write(json.dumps(m) + "\n")
        out.flush()
    try:
        emit({"ok": work(job, emit)})
    except Unauthorized as e:
        emit({"error": {"kind": "unauthorized", "message": e.message}})
    except Transient as e:
        emit({"error": {"kind": "transient", "message": e.message}})
    except InvalidArgument as e:
        emit({"error": {"kind": "invalid", "message": e.message}})
    except OSError as e:
        import errno
        kind = "nospace" if e.errno == errno.ENOSPC else "system"
        msg = "no space left on the data root while unpacking a layer" if kind == "nospace" else str(e)
        emit({"error": {"kind": kind, "message": msg}})
    except Exception as e:  # noqa: BLE001 - reported to the parent
        emit({"error": {"kind": "system", "message": f"{type(e).__name__}: {e}"}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
