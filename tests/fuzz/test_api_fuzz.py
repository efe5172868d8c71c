"""Issue 8 (bad input never reaches a 500), a bounded part: schemathesis generates requests for
every v1.41 operation except swarm, plugins and session (fixed seed, a few examples each) against
a daemon on 127.0.0.1; no answer may be a 5xx other than 501 (not built yet), and the daemon
must still answer afterwards."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import BIN, free_port

pytestmark = pytest.mark.root
SPEC = Path(__file__).resolve().parent.parent / "data" / "docker-engine-api" / "v1.41.yaml"
EXCLUDE = r"^/(swarm|services|tasks|secrets|configs|nodes|plugins|session|distribution|events)"


@pytest.fixture
def empty_registry():
    """A registry endpoint on loopback that answers every request as Distribution does for a
    repository it does not have (404 NAME_UNKNOWN)."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, *_: object) -> None:
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_no_server_errors_under_generated_requests(fresh_daemon, tmp_path, empty_registry):
    st = shutil.which("schemathesis", path=str(BIN)) or shutil.which("schemathesis")
    if not st:
        pytest.skip("schemathesis is not installed")
    port = free_port()
    d = fresh_daemon("-H", f"tcp://127.0.0.1:{port}", "--tls=false")
    # real objects, so that generated requests reach the handlers behind the 404s
    import docker
    c = docker.DockerClient(base_url=d.host, version="auto")
    c.containers.create("busybox", ["sleep", "5"], name="fz")
    c.containers.run("busybox", ["sleep", "600"], name="fzrun", detach=True)
    c.close()
    (tmp_path / "schemathesis.toml").write_text(
        '[parameters]\n"path.id" = "fzrun"\n"path.name" = "busybox"\n'
        # pulls go to a registry on loopback that knows nothing (never to an address outside)
        f'"query.fromImage" = "127.0.0.1:{empty_registry}/fuzz"\n"query.fromSrc" = "-"\n')
    p = subprocess.run([st, "run", str(SPEC), "--url", f"http://127.0.0.1:{port}/v1.41", "--checks",
                        "not_a_server_error", "--max-examples", "5", "--seed", "20261130", "--workers", "2",
                        "--request-timeout", "10", "--exclude-path-regex", EXCLUDE, "--no-color"],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)
    out = p.stdout + p.stderr
    statuses = re.findall(r"^\[(5\d\d)\]", out, re.M)
    bad = [s for s in statuses if s != "501"]
    sys.stdout.write(out[-3000:])
    assert not bad, f"server errors: {bad}\n{out[-6000:]}"
    assert "Test cases:" in out, out[-3000:]
    assert d.ping()
