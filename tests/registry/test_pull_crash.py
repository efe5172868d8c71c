"""Issue 9, big pulls: kill -9 of the daemon in the middle of one leaves nothing partial (no
image, no staged layer, no half-written blob), and the pull, tried again, succeeds (resuming the
layer from the byte where it stopped is not built yet: the retry starts it anew); two concurrent
pulls of the same image share one download."""

from __future__ import annotations

import os
import threading

import docker
import pytest

from ..helpers import BIN, serve_http
from .conftest import LOGS, busybox_with_random_file, save_image, skopeo_copy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def big(registry, daemon, busybox_tar, tmp_path_factory):
    """`library/bigpull:1`: busybox and a 48 MiB file of random bytes, in the registry."""
    c = docker.APIClient(base_url=daemon.host, version="1.41")
    c.import_image_from_data(busybox_with_random_file(busybox_tar, 48 << 20), repository="bigpull", tag="1")
    tar = save_image(daemon, "bigpull:1", tmp_path_factory.mktemp("big") / "big.tar")
    c.remove_image("bigpull:1")
    c.close()
    skopeo_copy(tar, f"{registry}/library/bigpull:1")
    return registry


def test_kill9_in_the_middle_of_a_pull(big, fresh_daemon):
    registry = big
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    downloading = threading.Event()

    def pull() -> None:
        try:
            for m in c.pull(f"{registry}/library/bigpull", tag="1", stream=True, decode=True):
                if m.get("status") == "Downloading":
                    downloading.set()
        except Exception:  # noqa: BLE001 - the daemon dies under it
            pass
        downloading.set()
    t = threading.Thread(target=pull)
    t.start()
    assert downloading.wait(60)
    d.kill9()
    t.join(30)
    c.close()
    partial = list((d.data_root / "content" / "partial").iterdir())
    assert len(partial) == 1, partial   # the bytes downloaded before the kill, kept
    have = partial[0].stat().st_size
    d.start()
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert c.images() == []
    snaps = d.data_root / "snapshots"
    assert not [p for p in snaps.iterdir() if p.is_dir()] if snaps.exists() else True, list(snaps.iterdir())
    assert not list((d.data_root / "trash").glob("*")) if (d.data_root / "trash").exists() else True
    # again, to the end
    out = list(c.pull(f"{registry}/library/bigpull", tag="1", stream=True, decode=True))
    assert out[-1]["status"].startswith("Status: Downloaded newer image"), out[-3:]
    assert c.inspect_image(f"{registry}/library/bigpull:1")["Size"] > 48 << 20
    c.close()
    # the download went on from the byte where it stopped (moby #48539: Docker starts over)
    blob = partial[0].name
    lines = [ln for ln in LOGS[registry].read_text().splitlines()
             if f'"GET /v2/library/bigpull/blobs/sha256:{blob}' in ln]
    import urllib.request
    head = urllib.request.Request(f"http://{registry}/v2/library/bigpull/blobs/sha256:{blob}", method="HEAD")
    with urllib.request.urlopen(head) as r:
        total = int(r.headers["Content-Length"])
    status, sent = lines[-1].split('" ')[1].split()[:2]
    if have < total:
        assert status == "206" and int(sent) == total - have, (lines[-1], have, total)
    else:
        assert status == "416", lines[-1]
    assert not list((d.data_root / "content" / "partial").iterdir())


def test_two_concurrent_pulls_share_one_download(big, fresh_daemon):
    registry = big
    d = fresh_daemon(image=False)
    log = LOGS[registry]
    def gets() -> int:   # the access log's lines for our blob downloads
        return sum(1 for line in log.read_text().splitlines()
                   if '"GET /v2/library/bigpull/blobs/' in line and "Python-urllib" in line)
    before = gets()
    results = _pull_at_once(d, [f"{registry}/library/bigpull"] * 2)
    assert len(results) == 2 and all(r.startswith("Status: ") for r in results), results
    # the config and the one layer fetched once, not once per pull
    assert gets() - before == 2, gets() - before


def _pull_at_once(d, repos: list[str]) -> list[str]:
    """Pull `repo:1` for each repo, all at once; the last status line of each."""
    results: list[str] = []

    def pull(repo: str) -> None:
        with docker.APIClient(base_url=d.host, version="1.41") as c:
            out = list(c.pull(repo, tag="1", stream=True, decode=True))
        results.append(out[-1].get("status", str(out[-1])))
    ts = [threading.Thread(target=pull, args=(r,)) for r in repos]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return results


def _twin(registry: str) -> str:
    """`library/bigtwin:1`: another image (its own config) on bigpull's layer, mounted across."""
    import hashlib
    import json
    import urllib.request

    def call(method: str, path: str, data: bytes | None = None, headers: dict | None = None):
        url = path if path.startswith("http") else f"http://{registry}{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(req)
    with call("GET", "/v2/library/bigpull/manifests/1",
              headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}) as r:
        man = json.loads(r.read())
    with call("GET", f"/v2/library/bigpull/blobs/{man['config']['digest']}") as r:
        cfg = json.loads(r.read())
    cfg.setdefault("config", {})["Cmd"] = ["echo", "twin"]
    blob = json.dumps(cfg).encode()
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with call("POST", "/v2/library/bigtwin/blobs/uploads/", b"") as r:
        loc = r.headers["Location"]
    call("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={digest}", blob,
         {"Content-Type": "application/octet-stream"}).close()
    layer = man["layers"][0]["digest"]
    call("POST", f"/v2/library/bigtwin/blobs/uploads/?mount={layer}&from=library/bigpull", b"").close()
    man["config"] = {**man["config"], "digest": digest, "size": len(blob)}
    call("PUT", "/v2/library/bigtwin/manifests/1", json.dumps(man).encode(),
         {"Content-Type": man["mediaType"]}).close()
    return layer


def test_two_pulls_of_images_sharing_a_layer_fetch_it_once(big, fresh_daemon):
    registry = big
    layer = _twin(registry)
    d = fresh_daemon(image=False)
    log = LOGS[registry]

    def gets() -> int:
        return sum(1 for line in log.read_text().splitlines()
                   if f"/blobs/{layer} " in line and '"GET ' in line and "Python-urllib" in line)
    before = gets()
    results = _pull_at_once(d, [f"{registry}/library/{r}" for r in ("bigpull", "bigtwin")])
    assert len(results) == 2 and all(r.startswith("Status: Downloaded") for r in results), results
    assert gets() - before == 1, gets() - before
    with docker.APIClient(base_url=d.host, version="1.41") as c:
        ids = {c.inspect_image(f"{registry}/library/{r}:1")["Id"] for r in ("bigpull", "bigtwin")}
        assert len(ids) == 2


@pytest.fixture
def flaky_proxy(big, request):
    """A registry endpoint on loopback in front of the real one that cuts the first big blob
    download in the middle (headers and half the body, then the connection closes). It passes
    Range on (the registry honours it) and records the Range of each blob request. With the
    `stall` parameter the connection stays open, silent, instead."""
    import http.server
    import urllib.request
    cut: list[str] = []
    ranges: list[str] = []
    stall = getattr(request, "param", "") == "stall"
    release = threading.Event()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:   # noqa: N802 - http.server's naming
            req = urllib.request.Request(f"http://{big}{self.path}", headers={
                k: v for k, v in self.headers.items() if k.lower() in ("accept", "authorization", "range")})
            if "/blobs/" in self.path:
                ranges.append(self.headers.get("Range", ""))
            try:
                r = urllib.request.urlopen(req)
            except urllib.error.HTTPError as e:
                r = e
            body = r.read()
            self.send_response(r.status if hasattr(r, "status") else r.code)
            for k, v in r.headers.items():
                if k.lower() in ("content-type", "docker-content-digest", "docker-distribution-api-version",
                                 "content-range"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if "/blobs/" in self.path and len(body) > 1 << 20 and not cut:
                cut.append(self.path)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if stall:
                    release.wait(60)
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass
    addr, stop = serve_http(H)
    yield addr, cut, ranges
    release.set()
    stop()


def test_a_dropped_connection_is_tried_again(flaky_proxy, fresh_daemon):
    addr, cut, ranges = flaky_proxy
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    out = list(c.pull(f"{addr}/library/bigpull", tag="1", stream=True, decode=True))
    assert cut, "the proxy did not cut a download"
    assert any(m.get("status", "").startswith("Retrying in") for m in out), out[-3:]
    assert out[-1]["status"].startswith("Status: Downloaded newer image"), out[-3:]
    assert c.inspect_image(f"{addr}/library/bigpull:1")["Size"] > 48 << 20
    c.close()
    # the attempt after the cut asked for the rest only
    assert any(r.startswith("bytes=") and int(r[6:].rstrip("-")) > 1 << 20 for r in ranges), ranges


@pytest.mark.parametrize("flaky_proxy", ["stall"], indirect=True)
def test_a_stalled_download_is_detected_and_resumed(flaky_proxy, fresh_daemon):
    """No byte for DOCKYARD_REGISTRY_TIMEOUT seconds: the attempt ends, the next resumes."""
    addr, cut, ranges = flaky_proxy
    d = fresh_daemon(image=False, env={"DOCKYARD_REGISTRY_TIMEOUT": "2"})
    c = docker.APIClient(base_url=d.host, version="1.41", timeout=120)
    out = list(c.pull(f"{addr}/library/bigpull", tag="1", stream=True, decode=True))
    assert cut and any(m.get("status", "").startswith("Retrying in") for m in out), out[-3:]
    assert out[-1]["status"].startswith("Status: Downloaded newer image"), out[-3:]
    assert any(r.startswith("bytes=") for r in ranges), ranges
    c.close()


def test_partial_downloads_are_swept_after_a_day_and_by_system_prune(fresh_daemon):
    import subprocess
    import time


    d = fresh_daemon(image=False)
    partial = d.data_root / "content" / "partial"
    old, new = partial / ("a" * 64), partial / ("b" * 64)
    old.write_bytes(b"x" * 1000)
    new.write_bytes(b"y" * 3000)
    os.utime(old, (time.time() - 25 * 3600,) * 2)
    d.stop()
    d.start()
    assert not old.exists() and new.exists()
    # `docker system prune` also calls /networks/prune (issue 10); dockyard's and docker-py's here
    p = subprocess.run([str(BIN / "dockyard"), "system", "prune", "-f"], env=d.env(), capture_output=True, text=True)
    assert p.returncode == 0 and f"sha256:{'b' * 64}" in p.stdout and "Total reclaimed space: 3kB" in p.stdout, p.stdout
    assert not new.exists()
    new.write_bytes(b"z" * 10)
    with docker.APIClient(base_url=d.host, version="1.41") as c:
        assert c.prune_builds()["SpaceReclaimed"] == 10
    c = docker.APIClient(base_url=d.host, version="1.41")
    r = c._post(c._url("/build/prune"), params={"filters": '{"until": ["24h"]}'})
    assert r.status_code == 400 and "filters" in r.json()["message"]
    c.close()


def test_progress_bars_on_a_terminal(big, fresh_daemon, tmp_path):
    """`dockyard pull` under tmux: one line per layer, rewritten in place (bars while it
    downloads, the final status at the end), as the docker CLI draws it."""
    import shutil
    import subprocess
    import time


    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed")
    d = fresh_daemon(image=False)
    sock, raw, done = str(tmp_path / "tmux.sock"), tmp_path / "raw.out", tmp_path / "done"
    cmd = f"{BIN / 'dockyard'} pull {big}/library/bigpull:1; touch {done}; sleep 600"
    tm = ["tmux", "-S", sock]
    subprocess.run([*tm, "new-session", "-d", "-x", "120", "-y", "40", "-e", f"DOCKER_HOST={d.host}",
                    "-e", "TERM=xterm", "sh"], check=True)
    try:
        subprocess.run([*tm, "pipe-pane", "-o", f"cat >> {raw}"], check=True)
        subprocess.run([*tm, "send-keys", cmd, "Enter"], check=True)
        deadline = time.time() + 120
        while not done.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert done.exists(), "the pull did not finish"
        time.sleep(0.3)
        screen = subprocess.run([*tm, "capture-pane", "-p"], capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run([*tm, "kill-server"], capture_output=True)
    layer_lines = [ln for ln in screen.splitlines() if ln[:12].isalnum() and ln[12:14] == ": "]
    ids = [ln[:12] for ln in layer_lines]
    assert len(ids) == 1, screen      # its one layer: one line, whatever it went through
    assert all(ln.endswith("Pull complete") for ln in layer_lines), screen
    assert "Status: Downloaded newer image" in screen, screen
    drawn = raw.read_bytes()
    assert b"Downloading [" in drawn and b"=>" in drawn and b"\x1b[" in drawn, drawn[-500:]
