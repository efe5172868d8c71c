"""Build, Ship and Run: a web server image built from a Dockerfile in the manner of the book's
appendix B (a busybox httpd standing in for nginx), pushed to Debian's docker-registry, pulled by
another daemon and served on 127.0.0.1 (host network: the test daemons have no bridge); FROM pulls
a missing base, and --pull fetches a newer one."""

from __future__ import annotations

import io
import tarfile
import time
import urllib.request

import docker
import pytest

from ..helpers import free_port

pytestmark = pytest.mark.root

WEB = """# A static web server (appendix B's nginx, on busybox)
FROM busybox
LABEL maintainer="dockyard tests"
ENV DOCROOT=/var/www PORT=80
RUN mkdir -p $DOCROOT && addgroup -S www 2>/dev/null; adduser -S -D -H www 2>/dev/null; true
COPY site/ ${DOCROOT}/
RUN echo "built at step 5" > ${DOCROOT}/build.txt
EXPOSE 80
HEALTHCHECK --interval=1s CMD echo | nc -w 1 127.0.0.1 $PORT || exit 1
WORKDIR ${DOCROOT}
CMD ["sh", "-c", "exec httpd -f -p $PORT -h $DOCROOT"]
"""


def _ctx(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            b = data.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(b)
            tf.addfile(ti, io.BytesIO(b))
    return buf.getvalue()


def _build(c: docker.DockerClient, files: dict[str, str], **kw) -> str:
    msgs = list(c.api.build(fileobj=io.BytesIO(_ctx(files)), custom_context=True, decode=True, rm=True, **kw))
    err = [m for m in msgs if "error" in m]
    assert not err, msgs
    return next(m["aux"]["ID"] for m in msgs if "aux" in m)


def test_build_push_pull_and_serve(registry, fresh_daemon):
    builder, runner = fresh_daemon(), fresh_daemon()
    b = docker.DockerClient(base_url=builder.host, version="1.41")
    r = docker.DockerClient(base_url=runner.host, version="1.41")
    ref = f"{registry}/appendix-b/web:1"
    try:
        iid = _build(b, {"Dockerfile": WEB, "site/index.html": "<h1>hello from dockyard</h1>\n"}, tag=ref)
        for line in b.images.push(ref, stream=True, decode=True):
            assert "error" not in line, line
        img = r.images.pull(ref)
        assert img.id == iid
        port = free_port()
        # the test daemons run without a bridge: the server listens in the host's namespace, on a free port
        ctr = r.containers.run(ref, detach=True, network_mode="host", environment={"PORT": str(port)})
        try:
            deadline = time.time() + 20
            body = b""
            while time.time() < deadline:
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.1)
            assert body == b"<h1>hello from dockyard</h1>\n"
            assert urllib.request.urlopen(f"http://127.0.0.1:{port}/build.txt", timeout=2).read() == \
                b"built at step 5\n"
            deadline = time.time() + 20
            while time.time() < deadline and ctr.attrs["State"].get("Health", {}).get("Status") != "healthy":
                time.sleep(0.2)
                ctr.reload()
            assert ctr.attrs["State"]["Health"]["Status"] == "healthy"
        finally:
            ctr.remove(force=True)
    finally:
        b.close()
        r.close()


def test_from_pulls_a_missing_base_and_pull_fetches_a_newer_one(registry, fresh_daemon):
    pusher, builder = fresh_daemon(), fresh_daemon()
    p = docker.DockerClient(base_url=pusher.host, version="1.41")
    b = docker.DockerClient(base_url=builder.host, version="1.41")
    base = f"{registry}/appendix-b/base:latest"
    child = {"Dockerfile": f"FROM {base}\nRUN cat /version > /seen\n"}
    try:
        _build(p, {"Dockerfile": "FROM busybox\nRUN echo v1 > /version\n"}, tag=base)
        for line in p.images.push(base, stream=True, decode=True):
            assert "error" not in line, line
        first = _build(b, child)   # the base is not on the builder: FROM pulls it
        assert b.containers.run(first, ["cat", "/seen"], remove=True, network_mode="none") == b"v1\n"
        _build(p, {"Dockerfile": "FROM busybox\nRUN echo v2 > /version\n"}, tag=base)
        for line in p.images.push(base, stream=True, decode=True):
            assert "error" not in line, line
        again = _build(b, child)   # without --pull the local base serves (and the cache with it)
        assert again == first
        newer = _build(b, child, pull=True)
        assert b.containers.run(newer, ["cat", "/seen"], remove=True, network_mode="none") == b"v2\n"
    finally:
        p.close()
        b.close()
