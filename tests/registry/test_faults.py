"""Issue 9, bad input and faults: a proxy on loopback in front of the real registry answers
401, 403, 429 (Retry-After), 5xx, a blob whose bytes do not match its digest, a manifest of
an unknown media type or over 4 MiB; and a layer that expands past the data root's free space.
Each is a clear error in Docker's words, leaves nothing in the image list, the snapshot store
or the partial downloads, and a pull after the fault is gone succeeds."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import tarfile
import urllib.error
import urllib.request

import docker
import pytest

from ..helpers import serve_http, small_data_root
from .conftest import save_image, skopeo_copy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def upstream(registry, daemon, tmp_path_factory):
    skopeo_copy(save_image(daemon, "busybox:latest", tmp_path_factory.mktemp("faults") / "bb.tar"),
                f"{registry}/faults/bb:1")
    return registry


@pytest.fixture
def proxy(upstream):
    """`faults[kind]` = how many more times to inject it (kinds: manifest-401, manifest-403,
    manifest-429, manifest-500, blob-500 (a layer), config-500, blob-corrupt, manifest-weird,
    manifest-huge)."""
    faults: dict[str, int] = {}
    seen: list[str] = []

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _fault(self, kind: str) -> bool:
            if faults.get(kind, 0) > 0:
                faults[kind] -= 1
                return True
            return False

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            manifest = "/manifests/" in self.path
            blob = "/blobs/" in self.path
            err = json.dumps({"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})
            if manifest and self._fault("manifest-401"):
                return self._send(401, err.encode(), {"WWW-Authenticate": 'Basic realm="faults"'})
            if manifest and self._fault("manifest-403"):
                return self._send(403, err.encode())
            if manifest and self._fault("manifest-429"):
                return self._send(429, b"", {"Retry-After": "1"})
            if manifest and self._fault("manifest-500"):
                return self._send(500, b"oops")
            if manifest and self._fault("manifest-weird"):
                return self._send(200, b'{"schemaVersion": 2, "mediaType": "application/x-weird"}',
                                  {"Content-Type": "application/x-weird"})
            if manifest and self._fault("manifest-huge"):
                body = json.dumps({"schemaVersion": 2, "pad": "x" * (5 << 20)}).encode()
                return self._send(200, body, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            req = urllib.request.Request(f"http://{upstream}{self.path}", method=self.command, headers={
                k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")})
            try:
                r = urllib.request.urlopen(req)
            except urllib.error.HTTPError as e:
                r = e
            body = r.read()
            if blob and self.command == "GET" and self._fault("blob-500" if len(body) > 100_000 else "config-500"):
                return self._send(503, b"busy")
            if blob and len(body) > 100_000 and self._fault("blob-corrupt"):
                body = body[:500] + bytes([body[500] ^ 0xFF]) + body[501:]   # same length, other bytes
            self._send(r.status if hasattr(r, "status") else r.code, body, {
                k: v for k, v in r.headers.items() if k.lower() in ("content-type", "docker-content-digest",
                                                                    "content-range")})

        def log_message(self, *_: object) -> None:
            pass
    addr, stop = serve_http(H)
    yield addr, faults, seen
    stop()


def _pull(c: docker.APIClient, repo: str) -> str:
    """'' on success, else the error (the request's status or the stream's last message)."""
    try:
        out = list(c.pull(repo, tag="1", stream=True, decode=True))
    except docker.errors.APIError as e:
        return str(e.explanation)
    return str(out[-1].get("error", "")) if out else "no output"


def _nothing_left(d) -> None:
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert c.images() == []
    c.close()
    snaps = d.data_root / "snapshots"
    assert not [p for p in snaps.iterdir() if p.is_dir()], list(snaps.iterdir())
    assert not list((d.data_root / "content" / "partial").iterdir())


@pytest.mark.parametrize(("kind", "words"), [
    ("manifest-401", "pull access denied for faults/bb, repository does not exist or may require 'docker login'"),
    ("manifest-403", "pull access denied for faults/bb"),
    ("manifest-500", "received unexpected HTTP status: 500"),
    ("manifest-weird", "unsupported media type 'application/x-weird'"),
    ("manifest-huge", "larger than 4194304 bytes"),
    ("blob-corrupt", "filesystem layer verification failed for digest sha256:"),
])
def test_fault_is_a_clear_error_nothing_left_and_the_retry_succeeds(proxy, fresh_daemon, kind, words):
    addr, faults, _ = proxy
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    faults[kind] = 100
    err = _pull(c, f"{addr}/faults/bb")
    assert words in err, err
    _nothing_left(d)
    faults[kind] = 0
    assert _pull(c, f"{addr}/faults/bb") == ""
    assert c.inspect_image(f"{addr}/faults/bb:1")["RootFS"]["Layers"]
    c.close()


def test_429_waits_and_5xx_on_a_blob_is_retried(proxy, fresh_daemon):
    addr, faults, seen = proxy
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    faults["manifest-429"] = 1
    faults["config-500"] = 1
    faults["blob-500"] = 2
    out = list(c.pull(f"{addr}/faults/bb", tag="1", stream=True, decode=True))
    assert out[-1].get("status", "").startswith("Status: Downloaded newer image"), out[-3:]
    assert sum("Retrying in" in m.get("status", "") for m in out) >= 1, out
    assert faults == {"manifest-429": 0, "config-500": 0, "blob-500": 0}
    c.close()


def test_a_layer_that_expands_past_the_free_space(registry, fresh_daemon, tmp_path, daemon):
    """A gzip layer of 100 MB of zeros (a few hundred KB on the wire) into a 48 MB data root."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        info = tarfile.TarInfo("zeros")
        info.size = 100 << 20
        t.addfile(info, io.BytesIO(bytes(100 << 20)))
    raw = layer.getvalue()
    bomb = gzip.compress(raw, 9)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    arc = tmp_path / "bomb.tar"
    with tarfile.open(arc, "w") as t:
        for name, data in (("l.tar.gz", bomb), ("c.json", cfg.encode()), ("manifest.json", json.dumps(
                [{"Config": "c.json", "RepoTags": ["bomb:1"], "Layers": ["l.tar.gz"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    skopeo_copy(arc, f"{registry}/faults/bomb:1")
    with small_data_root(tmp_path) as data_root:
        d = fresh_daemon(image=False)
        assert d.data_root == data_root
        c = docker.APIClient(base_url=d.host, version="1.41")
        err = _pull(c, f"{registry}/faults/bomb")
        assert "does not fit" in err, err
        _nothing_left(d)
        assert _pull(c, f"{registry}/faults/bb") == ""   # a pull that fits still works
        c.close()
        d.stop()
