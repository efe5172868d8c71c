"""Issue 9, push: `dockyard push`, the docker CLI and docker-py against dockyardd, into Debian's
docker-registry; what we push is pulled by a fresh dockyardd and by Debian's dockerd with the
same image ID, and what dockerd pushes we pull with its ID. Blobs the registry has are not sent
again (HEAD), blobs of another repository are mounted, counted in the registry's access log."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest

from ..helpers import BIN, DOCKER, serve_http
from .conftest import LOGS, PASSWORD, USER

pytestmark = pytest.mark.root


def _uploads(registry: str, repo: str) -> int:
    """Blob upload requests (POST/PATCH/PUT on blobs/uploads) for `repo` in the access log."""
    return sum(1 for line in LOGS[registry].read_text().splitlines()
               if f"/v2/{repo}/blobs/uploads/" in line and ('"PATCH ' in line or '"PUT ' in line))


def _dy(daemon, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dockyard"), *args], env=daemon.env(), capture_output=True, text=True,
                          input=input, timeout=300)


def test_dockyard_push_then_pull_keeps_the_id_and_re_push_uploads_nothing(registry, fresh_daemon):
    src = fresh_daemon()
    c = docker.APIClient(base_url=src.host, version="1.41")
    iid = c.inspect_image("busybox")["Id"]
    c.tag("busybox", f"{registry}/push/bb", "1")
    p = _dy(src, "push", f"{registry}/push/bb:1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry}/push/bb]"
    assert any(line.endswith(": Pushed") for line in lines), lines
    assert lines[-1].startswith("1: digest: sha256:") and " size: " in lines[-1], lines
    digest = lines[-1].split()[2]
    assert f"{registry}/push/bb@{digest}" in c.inspect_image(iid)["RepoDigests"]
    uploads = _uploads(registry, "push/bb")
    assert uploads >= 2   # the layer and the config

    # the same image again: every blob is there (HEAD), nothing uploaded, the same manifest
    p = _dy(src, "push", f"{registry}/push/bb:1")
    assert p.returncode == 0, p.stderr
    assert any(line.endswith(": Layer already exists") for line in p.stdout.splitlines()), p.stdout
    assert p.stdout.splitlines()[-1].split()[2] == digest
    assert _uploads(registry, "push/bb") == uploads

    # into another repository of the same registry: mounted, not uploaded
    c.tag("busybox", f"{registry}/push/other", "2")
    p = _dy(src, "push", f"{registry}/push/other:2")
    assert p.returncode == 0, p.stderr
    assert any(line.endswith(": Mounted from push/bb") for line in p.stdout.splitlines()), p.stdout
    assert _uploads(registry, "push/other") == 0
    c.close()

    dst = fresh_daemon(image=False)
    c2 = docker.APIClient(base_url=dst.host, version="1.41")
    c2.pull(f"{registry}/push/bb", tag="1")
    assert c2.inspect_image(f"{registry}/push/bb:1")["Id"] == iid
    c2.pull(f"{registry}/push/other", tag="2")
    assert c2.inspect_image(f"{registry}/push/other:2")["Id"] == iid
    ctr = c2.create_container(f"{registry}/push/bb:1", ["echo", "pushed"])
    c2.start(ctr)
    assert c2.wait(ctr)["StatusCode"] == 0
    assert c2.logs(ctr) == b"pushed\n"
    c2.remove_container(ctr)
    c2.close()


def test_a_pulled_image_re_pushed_uploads_nothing(registry, fresh_daemon):
    """Distribution metadata: the compressed digest of each layer is remembered from the pull."""
    src = fresh_daemon()
    c = docker.APIClient(base_url=src.host, version="1.41")
    c.tag("busybox", f"{registry}/meta/a", "1")
    assert _dy(src, "push", "-q", f"{registry}/meta/a:1").returncode == 0
    c.close()
    d = fresh_daemon(image=False)
    c = docker.APIClient(base_url=d.host, version="1.41")
    c.pull(f"{registry}/meta/a", tag="1")
    c.tag(f"{registry}/meta/a:1", f"{registry}/meta/b", "1")
    out = [json.loads(x) for x in c.push(f"{registry}/meta/b", tag="1", stream=True)]
    assert not [m for m in out if "error" in m], out
    assert {m["status"] for m in out if m.get("id") and m.get("status", "").startswith("Mounted")} == \
        {"Mounted from meta/a"}
    assert _uploads(registry, "meta/b") == 0
    aux = [m["aux"] for m in out if "aux" in m]
    assert aux and aux[0]["Tag"] == "1" and aux[0]["Digest"].startswith("sha256:")
    c.close()


def test_docker_cli_push_all_tags_and_errors(registry, fresh_daemon):
    if not DOCKER:
        pytest.skip("Debian's docker CLI is not installed")
    d = fresh_daemon()
    env = d.env()
    for t in ("a", "b"):
        subprocess.run([DOCKER, "tag", "busybox", f"{registry}/cli/bb:{t}"], env=env, check=True)
    p = subprocess.run([DOCKER, "push", "--all-tags", f"{registry}/cli/bb"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "a: digest: sha256:" in p.stdout and "b: digest: sha256:" in p.stdout, p.stdout
    assert sorted(json.loads(_get(f"http://{registry}/v2/cli/bb/tags/list"))["tags"]) == ["a", "b"]
    fresh = fresh_daemon(image=False)
    p = _dy(fresh, "pull", "--all-tags", f"{registry}/cli/bb")
    assert p.returncode == 0, p.stderr
    with docker.APIClient(base_url=fresh.host, version="1.41") as c:
        assert sorted(t for i in c.images() for t in i["RepoTags"] or []) == [f"{registry}/cli/bb:a",
                                                                               f"{registry}/cli/bb:b"]
    p = subprocess.run([DOCKER, "push", f"{registry}/cli/none:1"], env=env, capture_output=True, text=True)
    assert p.returncode != 0
    assert f"An image does not exist locally with the tag: {registry}/cli/none" in p.stderr, p.stderr
    p = _dy(d, "push", f"{registry}/cli/none:1")
    assert p.returncode != 0 and "An image does not exist locally with the tag" in p.stderr, p.stderr


def test_push_with_basic_auth(auth_registry, fresh_daemon):
    d = fresh_daemon()
    c = docker.APIClient(base_url=d.host, version="1.41")
    c.tag("busybox", f"{auth_registry}/secret/bb", "1")
    out = [json.loads(x) for x in c.push(f"{auth_registry}/secret/bb", tag="1", stream=True)]
    assert out[-1].get("error", "").endswith("denied: requested access to the resource is denied") \
        or "no basic auth credentials" in out[-1].get("error", ""), out[-1]
    out = [json.loads(x) for x in c.push(f"{auth_registry}/secret/bb", tag="1", stream=True,
                                         auth_config={"username": USER, "password": PASSWORD})]
    assert not [m for m in out if "error" in m], out
    assert any("aux" in m for m in out)
    c.close()
    assert PASSWORD not in d.log.read_text()


def test_docker_pull_of_dockyard_push_and_dockyard_pull_of_docker_push(registry, fresh_daemon, real_docker,
                                                                        busybox_tar):
    d = fresh_daemon()
    c = docker.APIClient(base_url=d.host, version="1.41")
    iid = c.inspect_image("busybox")["Id"]
    c.tag("busybox", f"{registry}/peer/ours", "1")
    assert _dy(d, "push", f"{registry}/peer/ours:1").returncode == 0
    real_docker.docker("pull", f"{registry}/peer/ours:1")
    got = real_docker.docker("image", "inspect", "-f", "{{.Id}}", f"{registry}/peer/ours:1").stdout.decode().strip()
    assert got == iid
    run = real_docker.docker("run", "--rm", "--network", "none", f"{registry}/peer/ours:1", "echo", "in-docker")
    assert run.stdout == b"in-docker\n"

    real_docker.docker("import", "-c", 'CMD ["echo", "from-docker"]', str(busybox_tar), f"{registry}/peer/theirs:1")
    theirs = real_docker.docker("image", "inspect", "-f", "{{.Id}}", f"{registry}/peer/theirs:1").stdout.decode().strip()
    real_docker.docker("push", f"{registry}/peer/theirs:1")
    c.pull(f"{registry}/peer/theirs", tag="1")
    assert c.inspect_image(f"{registry}/peer/theirs:1")["Id"] == theirs
    ctr = c.create_container(f"{registry}/peer/theirs:1")
    c.start(ctr)
    c.wait(ctr)
    assert c.logs(ctr) == b"from-docker\n"
    c.remove_container(ctr)
    c.close()
    real_docker.docker("rmi", f"{registry}/peer/ours:1", f"{registry}/peer/theirs:1")


def _get(url: str) -> bytes:
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as r:
        return bytes(r.read())


@pytest.fixture
def cutting_proxy(registry):
    """In front of the registry: the first chunk PATCH of a blob upload is cut after half its
    body (that half reaches the registry, the client gets no answer). Records each request as
    (method, path, Content-Range)."""
    import http.server
    import urllib.error
    import urllib.request
    seen: list[tuple[str, str, str]] = []
    cut: list[int] = []

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            crange = self.headers.get("Content-Range", "")
            seen.append((self.command, self.path, crange))
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("accept", "content-type", "content-range", "range")}
            if self.command == "PATCH" and crange and not cut and n > 1 << 20:
                half = n // 2
                body = self.rfile.read(half)
                start = int(crange.split("-")[0])
                headers["Content-Range"] = f"{start}-{start + half - 1}"
                req = urllib.request.Request(f"http://{registry}{self.path}", data=body, method="PATCH",
                                             headers=headers)
                urllib.request.urlopen(req).close()
                cut.append(half)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = self.rfile.read(n) if n else None
            if self.command in ("PUT", "PATCH", "POST") and body is None:
                body = b""
            req = urllib.request.Request(f"http://{registry}{self.path}", data=body, method=self.command,
                                         headers=headers)
            try:
                r = urllib.request.urlopen(req)
            except urllib.error.HTTPError as e:
                r = e
            data = r.read()
            self.send_response(r.status if hasattr(r, "status") else r.code)
            for k, v in r.headers.items():
                if k.lower() in ("content-type", "docker-content-digest", "range", "docker-upload-uuid",
                                 "content-range"):
                    self.send_header(k, v)
                elif k.lower() == "location":   # keep the client talking to the proxy
                    self.send_header(k, v.replace(f"http://{registry}", ""))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay  # noqa: N815

        def log_message(self, *_: object) -> None:
            pass
    addr, stop = serve_http(H)
    yield addr, seen, cut
    stop()


def test_a_push_cut_mid_chunk_is_tried_again(cutting_proxy, fresh_daemon):
    """A 40 MiB random layer goes up in 16 MiB chunks (Content-Range), the small config in one
    PUT. The connection drops in the middle of a chunk: the upload's status is asked for, to
    send only the rest; Distribution 2.8 cannot answer it (the offset is signed into the
    upload URL it last gave, and that answer was lost), so the layer starts over in a new upload
    session, and the push completes with the same image."""
    import io
    import os
    import tarfile
    addr, seen, cut = cutting_proxy
    d = fresh_daemon(image=False)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        info = tarfile.TarInfo("big.bin")
        info.size = 40 << 20
        t.addfile(info, io.BytesIO(os.urandom(40 << 20)))
    c = docker.APIClient(base_url=d.host, version="1.41", timeout=300)
    c.import_image_from_data(out.getvalue(), repository=f"{addr}/chunked/big", tag="1")
    iid = c.inspect_image(f"{addr}/chunked/big:1")["Id"]
    msgs = [json.loads(x) for x in c.push(f"{addr}/chunked/big", tag="1", stream=True)]
    assert any("aux" in m for m in msgs), msgs[-3:]
    assert cut, "no chunk was cut"
    assert any(m.get("status", "").startswith("Retrying in") for m in msgs)
    patches = [r for m, _, r in seen if m == "PATCH"]
    assert len(patches) >= 4 and all(r.startswith(("0-", f"{16 << 20}-", f"{32 << 20}-")) for r in patches), patches
    assert any(m == "GET" and "/blobs/uploads/" in p for m, p, _ in seen)   # the status was asked for
    config_put = [p for m, p, _ in seen if m == "PUT" and f"digest={iid}" in p]
    assert config_put, seen   # the config: one PUT with its bytes (monolithic), no PATCH
    c.close()
    other = fresh_daemon(image=False)
    with docker.APIClient(base_url=other.host, version="1.41") as oc:
        oc.pull(f"{addr}/chunked/big", tag="1")
        assert oc.inspect_image(f"{addr}/chunked/big:1")["Id"] == iid
