"""Operations: TLS trusted through certs.d, /healthz, Prometheus /metrics, structured access
logs, webhook notifications in distribution's envelope with retries, read-only maintenance mode,
distribution's config file read unchanged (with REGISTRY_* overrides) and unknown keys refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from http.server import BaseHTTPRequestHandler

import bcrypt
import pytest
import requests

from ..helpers import BIN, DOCKER, free_port, serve_http
from .images import gz
from .test_conformance import Client

pytestmark = pytest.mark.root


def test_tls_with_the_ca_in_certs_d(make_registry, pki, fresh_daemon, tmp_path):
    reg = make_registry(http_extra=f"  tls:\n    certificate: {pki}/server.crt\n    key: {pki}/server.key\n"
                                   "    minimumtls: tls1.2\n")
    assert requests.get(f"https://{reg.addr}/v2/", verify=str(pki / "ca.crt")).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{reg.addr}/v2/")
    certs = tmp_path / "certs.d"
    (certs / reg.addr).mkdir(parents=True)
    shutil.copy(pki / "ca.crt", certs / reg.addr / "ca.crt")
    d = fresh_daemon("--insecure-loopback=false", "--registry-certs-dir", str(certs))
    env = d.env()
    subprocess.run([DOCKER, "tag", "busybox", f"{reg.addr}/tls/bb:1"], env=env, check=True)
    p = subprocess.run([DOCKER, "push", f"{reg.addr}/tls/bb:1"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d2 = fresh_daemon("--insecure-loopback=false", "--registry-certs-dir", str(certs), image=False)
    p = subprocess.run([DOCKER, "pull", f"{reg.addr}/tls/bb:1"], env=d2.env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # the Location of an upload is https too
    r = requests.post(f"https://{reg.addr}/v2/tls/x/blobs/uploads/", verify=str(pki / "ca.crt"))
    assert r.headers["Location"].startswith(f"https://{reg.addr}/v2/tls/x/blobs/uploads/")


def test_health_metrics_and_access_log(make_registry):
    reg = make_registry("health:\n  storagedriver:\n    enabled: true\n    interval: 200ms\n    threshold: 2\n"
                        "log:\n  level: info\n  fields:\n    service: registry-under-test\n")
    c = Client(reg.url)
    h = requests.get(f"{reg.url}/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    c.push_image([gz(b"metrics " + uuid.uuid4().bytes)], "m")
    c("GET", "/v2/<name>/manifests/m")
    text = requests.get(f"{reg.url}/metrics").text
    assert 'registry_http_requests_total{code="201",method="PUT",route="manifest"} 1.0' in text, text[:3000]
    assert "registry_bytes_received_total" in text and "registry_upload_sessions" in text
    assert "registry_http_request_duration_seconds_bucket" in text
    lines = [json.JSONDecoder().raw_decode(line.split("msg=", 1)[1])[0] for line in reg.log.read_text().splitlines()
             if "msg={" in line and '"method"' in line]
    assert all(line.endswith(" service=registry-under-test") for line in reg.log.read_text().splitlines() if "msg=" in line)
    put = [x for x in lines if x["method"] == "PUT" and x["path"] == f"/v2/{c.name}/manifests/m"]
    assert put and put[0]["status"] == 201 and put[0]["service"] == "registry-under-test" and put[0]["duration_ms"] >= 0
    # the storage goes away: after `threshold` failed checks, /healthz says so
    shutil.rmtree(reg.data)
    (reg.data).write_text("not a directory")
    deadline = time.time() + 10
    while time.time() < deadline and requests.get(f"{reg.url}/healthz").status_code == 200:
        time.sleep(0.1)
    assert requests.get(f"{reg.url}/healthz").status_code == 503


def test_webhook_notifications_with_retries(make_registry):
    got: list[dict] = []
    attempts = {"n": 0}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            attempts["n"] += 1
            if attempts["n"] <= 2:       # the endpoint is down at first
                self.send_response(503)
                self.end_headers()
                return
            assert self.headers["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"
            assert self.headers["X-Hook-Secret"] == "s3"
            got.extend(json.loads(body)["events"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a) -> None:
            pass
    addr, stop = serve_http(Hook)
    try:
        reg = make_registry(f"notifications:\n  endpoints:\n    - name: hook\n      url: http://{addr}/events\n"
                            "      headers:\n        X-Hook-Secret: [s3]\n      timeout: 2s\n      backoff: 100ms\n"
                            "      threshold: 3\n")
        c = Client(reg.url)
        digest, _ = c.push_image([gz(b"notify " + uuid.uuid4().bytes)], "v1")
        c("GET", "/v2/<name>/manifests/v1")
        layer = c("GET", f"/v2/<name>/manifests/{digest}").json()["layers"][0]["digest"]
        r = c("POST", f"/v2/{c.name}-copy/blobs/uploads/", params={"mount": layer, "from": c.name})
        assert r.status_code == 201
        c("DELETE", f"/v2/<name>/manifests/{digest}")
        deadline = time.time() + 15
        while time.time() < deadline and not any(e["action"] == "delete" for e in got):
            time.sleep(0.1)
    finally:
        stop()
    assert attempts["n"] >= 3
    actions = [(e["action"], e["target"].get("tag"), e["target"].get("mediaType")) for e in got]
    assert ("push", "v1", "application/vnd.oci.image.manifest.v1+json") in actions, actions
    assert ("pull", "v1", "application/vnd.oci.image.manifest.v1+json") in actions
    assert any(a[0] == "mount" for a in actions) and actions[-1][0] == "delete"
    push = next(e for e in got if e["action"] == "push" and e["target"].get("tag") == "v1")
    assert push["target"]["repository"] == c.name and push["target"]["digest"] == digest
    assert push["target"]["url"].endswith(f"/v2/{c.name}/manifests/{digest}")
    assert push["request"]["method"] == "PUT" and push["source"]["instanceID"] and push["id"]
    mount = next(e for e in got if e["action"] == "mount")
    assert mount["target"]["fromRepository"] == c.name and mount["target"]["repository"] == f"{c.name}-copy"


def test_read_only_mode(make_registry, tmp_path):
    reg = make_registry()
    c = Client(reg.url)
    c.push_image([gz(b"ro " + uuid.uuid4().bytes)], "kept")
    reg.stop()
    text = reg.config.read_text().replace("  delete:\n", "  maintenance:\n    readonly:\n      enabled: true\n  delete:\n")
    reg.config.write_text(text)
    reg.start()
    r = c("POST", "/v2/<name>/blobs/uploads/")
    assert r.status_code == 405 and r.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert "read-only" in r.json()["errors"][0]["message"]
    assert c("DELETE", "/v2/<name>/manifests/kept").status_code == 405
    assert c("GET", "/v2/<name>/manifests/kept").status_code == 200


def test_debian_default_config_starts_unchanged_and_unknown_keys_are_refused(tmp_path):
    src = "/etc/docker/registry/config.yml"
    try:
        text = open(src).read()
    except FileNotFoundError:
        pytest.skip("Debian's docker-registry config is not installed")
    (tmp_path / "htpasswd").write_text(f"u:{bcrypt.hashpw(b'pw-for-u', bcrypt.gensalt(5)).decode()}\n")
    (tmp_path / "config.yml").write_text(text)
    port = free_port()
    env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "data"), "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
           "REGISTRY_AUTH_HTPASSWD_PATH": str(tmp_path / "htpasswd"), "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen([str(BIN / "dockyard-registry"), "serve", str(tmp_path / "config.yml")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/v2/", auth=("u", "pw-for-u"), timeout=1)
                break
            except requests.ConnectionError:
                assert p.poll() is None, p.stdout.read() if p.stdout else ""
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.headers["X-Content-Type-Options"] == "nosniff"        # http.headers applied
        assert requests.get(f"http://127.0.0.1:{port}/v2/").status_code == 401
    finally:
        p.terminate()
        p.wait(10)
    for bad, key in (("redis:\n  addr: x:1\n", "redis"), ("http:\n  addr: :1\n  bogus: 1\n", "http.bogus"),
                     ("middleware:\n  registry: []\n", "middleware")):
        (tmp_path / "bad.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/d\n{bad}")
        q = subprocess.run([str(BIN / "dockyard-registry"), "serve", str(tmp_path / "bad.yml")], capture_output=True,
                           text=True, timeout=30)
        assert q.returncode == 1 and f"'{key}' is not supported" in q.stderr, q.stderr


def test_clients_see_errors_not_500s_on_hostile_input(dyreg):
    c = Client(dyreg.url)
    for method, path, body in (("PUT", "/v2/<name>/manifests/t", b"\xff\xfe"), ("PATCH", "/v2/<name>/blobs/uploads/x", b""),
                               ("PUT", "/v2/<name>/blobs/uploads/../../etc", b""), ("GET", "/v2/<name>/blobs/sha256:", b""),
                               ("POST", "/v2/<name>/blobs/uploads/?mount=zzz", b""), ("GET", "/v2/_catalog?n=-1", b""),
                               ("GET", "/v2/<name>/tags/list?n=abc", b"")):
        r = c(method, path, data=body, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)


def test_blob_descriptor_cache_is_applied(make_registry, tmp_path):
    """storage.cache.blobdescriptor: inmemory — observed: a blob's stat is remembered for a few seconds."""
    for cached in (True, False):
        root = tmp_path / f"data-{cached}"
        reg = make_registry(storage=f"  filesystem:\n    rootdirectory: {root}\n"
                                    + ("  cache:\n    blobdescriptor: inmemory\n" if cached else ""))
        c = Client(reg.url)
        data = b"descriptor " + uuid.uuid4().bytes
        d = c.push_blob(data)
        assert c("HEAD", f"/v2/<name>/blobs/{d}").status_code == 200
        (root / "docker/registry/v2/blobs/sha256" / d[7:9] / d[7:] / "data").unlink()
        assert c("HEAD", f"/v2/<name>/blobs/{d}").status_code == (200 if cached else 404)


def test_debug_listener_serves_metrics_apart(make_registry):
    port = free_port()
    reg = make_registry(http_extra=f"  debug:\n    addr: 127.0.0.1:{port}\n    prometheus:\n      enabled: true\n"
                                   "      path: /metrics\n")
    deadline = time.time() + 10
    while True:
        try:
            r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
            break
        except requests.ConnectionError:
            assert time.time() < deadline
            time.sleep(0.1)
    assert r.status_code == 200 and "registry_http_requests_total" in r.text
    assert requests.get(f"{reg.url}/metrics").status_code == 404
    assert requests.get(f"http://127.0.0.1:{port}/debug/health").json()["status"] == "ok"


def test_upload_purging(make_registry):
    for dry in (False, True):
        reg = _purging_registry(make_registry, dry)
        c = Client(reg.url)
        loc = c.loc(c("POST", "/v2/<name>/blobs/uploads/"))
        deadline = time.time() + 10
        while time.time() < deadline and ("would remove" if dry else "removing") not in reg.log.read_text():
            time.sleep(0.1)
        assert c("GET", loc).status_code == (204 if dry else 404)


def _purging_registry(make_registry, dry: bool):
    from .conftest import Registry
    reg = make_registry()
    reg.stop()
    reg.config.write_text(reg.config.read_text().replace(
        "  delete:\n", "  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 1s\n      interval: 300ms\n"
        f"      dryrun: {'true' if dry else 'false'}\n  delete:\n"))
    assert isinstance(reg, Registry)
    return reg.start()


def test_json_log_lines(make_registry):
    reg = make_registry("log:\n  level: info\n  formatter: json\n  fields:\n    service: reg-json\n")
    assert requests.get(f"{reg.url}/v2/").status_code == 200
    lines = [json.loads(x) for x in reg.log.read_text().splitlines() if x.strip()]
    assert all(x["service"] == "reg-json" and x["level"] for x in lines), lines
    assert any(x.get("path") == "/v2/" and x.get("status") == 200 for x in lines)
    assert any("listening on" in x.get("msg", "") for x in lines)
