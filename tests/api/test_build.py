"""`POST /build` through docker-py: every instruction, multi-stage, the cache, RUN failures,
heredocs, RUN --mount, contexts in every compression and from a URL, bad Dockerfiles."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import tarfile
import time

import docker
import pytest

from ..helpers import serve_http

pytestmark = pytest.mark.root


def ctx_tar(files: dict[str, bytes | str], mode: int = 0o644) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            if isinstance(data, str):
                data = data.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, 1_700_000_000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build(client, files: dict[str, bytes | str], encoding: str | None = None, **kw):
    """(image id or None, stream messages, error message or "") of one build."""
    data = ctx_tar(files)
    if encoding == "gzip":
        data = gzip.compress(data)
    elif encoding == "bzip2":
        data = bz2.compress(data)
    elif encoding == "xz":
        data = lzma.compress(data)
    kw.setdefault("rm", True)   # what `docker build` asks (the API's and docker-py's default is false)
    msgs = list(client.api.build(fileobj=io.BytesIO(data), custom_context=True, decode=True,
                                 encoding=encoding, **kw))
    err = next((m["error"] for m in msgs if "error" in m), "")
    iid = next((m["aux"]["ID"] for m in msgs if "aux" in m), None)
    return iid, msgs, err


def text(msgs) -> str:
    return "".join(m.get("stream", "") for m in msgs)


def run(client, image: str, cmd: str, **kw) -> str:
    return client.containers.run(image, ["sh", "-c", cmd], remove=True, network_mode="none", **kw).decode()


def test_every_instruction(client):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        ti = tarfile.TarInfo("pkg/inside.txt")
        ti.size, ti.uid = 7, 1234
        tf.addfile(ti, io.BytesIO(b"inside\n"))
    dockerfile = r"""# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS base
MAINTAINER someone@example.com
ARG GREETING=hello
ARG FROM_CLI
ENV PLAIN plain value
ENV A=1 B="two words" C=${GREETING:-x}-${UNSET:-dflt}-${GREETING:+alt}
LABEL org.example.a="x y" b=$A
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data"]
WORKDIR /srv
WORKDIR sub
COPY --chown=10:20 --chmod=751 tool.sh ./
COPY a.txt b.txt /multi/
COPY *.md /docs/
ADD pkg.tgz /unpacked/
RUN echo "$GREETING $FROM_CLI $A" > /srv/sub/run.txt && id -u > /srv/sub/uid.txt
SHELL ["/bin/sh", "-ec"]
RUN echo shell-form > /srv/sub/shell.txt
RUN ["/bin/sh", "-c", "echo exec-form > /srv/sub/exec.txt"]
USER 1000:1000
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD true
STOPSIGNAL SIGUSR1
ONBUILD RUN echo triggered > /tmp/trigger.txt
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/sub/run.txt"]
"""
    files = {"Dockerfile": dockerfile, "tool.sh": "#!/bin/sh\necho tool\n", "a.txt": "a\n", "b.txt": "b\n",
             "x.md": "x\n", "y.md": "y\n", "pkg.tgz": inner.getvalue()}
    iid, msgs, err = build(client, files, buildargs={"FROM_CLI": "cli", "NEVER_USED": "1"}, tag="every:1")
    assert not err, text(msgs) + err
    out = text(msgs)
    assert "Step 1/26 : ARG BASE=busybox\nStep 2/26 : FROM ${BASE} AS base" in out and "Successfully tagged every:1" in out
    assert "[Warning] One or more build-args [NEVER_USED] were not consumed" in out
    img = client.images.get("every:1")
    assert img.id == iid
    cfg = img.attrs["Config"]
    assert "PLAIN=plain value" in cfg["Env"] and "B=two words" in cfg["Env"] and "C=hello-dflt-alt" in cfg["Env"]
    assert not any(e.startswith(("GREETING=", "FROM_CLI=")) for e in cfg["Env"])   # ARGs are not ENV
    assert cfg["Labels"] == {"org.example.a": "x y", "b": "1"}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert cfg["Volumes"] == {"/data": {}} and cfg["WorkingDir"] == "/srv/sub" and cfg["User"] == "1000:1000"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
                                  "StartPeriod": 1_000_000_000, "Retries": 4}
    assert cfg["StopSignal"] == "SIGUSR1" and cfg["OnBuild"] == ["RUN echo triggered > /tmp/trigger.txt"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["cat /srv/sub/run.txt"]
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert img.attrs["Author"] == "someone@example.com"
    hist = [h["CreatedBy"] for h in img.history()]
    assert any(h.startswith("|2 FROM_CLI=cli GREETING=hello /bin/sh -c echo") for h in hist), hist
    # what is in the image
    got = client.containers.run("every:1", ["echo done"], remove=True, network_mode="none", user="0").decode()
    assert got == "done\n"
    listing = run(client, "every:1",
                  "cd /srv/sub && cat run.txt uid.txt shell.txt exec.txt && stat -c '%a %u %g %n' tool.sh && "
                  "ls /multi && ls /docs && cat /unpacked/pkg/inside.txt && stat -c '%u' /unpacked/pkg/inside.txt",
                  entrypoint=[], user="0")
    assert listing.split("\n") == ["hello cli 1", "0", "shell-form", "exec-form", "751 10 20 tool.sh",
                                   "a.txt", "b.txt", "x.md", "y.md", "inside", "1234", ""]
    # ONBUILD runs in a build FROM this image
    iid2, msgs2, err2 = build(client, {"Dockerfile": "FROM every:1\n"}, tag="child:1")
    assert not err2, text(msgs2) + err2
    assert "# Executing 1 build trigger" in text(msgs2)
    assert run(client, "child:1", "cat /tmp/trigger.txt", entrypoint=[], user="0") == "triggered\n"
    assert client.images.get("child:1").attrs["Config"]["OnBuild"] in (None, [])
    client.images.remove("child:1")
    client.images.remove("every:1")


def test_multistage_target_skip_and_copy_from(client):
    dockerfile = """FROM busybox AS one
RUN echo one > /one.txt
FROM busybox AS broken
RUN echo this stage is not needed && exit 7
FROM busybox AS two
RUN echo two > /two.txt
FROM scratch
COPY --from=one /one.txt /
COPY --from=2 /two.txt /
COPY --from=busybox /bin/busybox /bin/sh
"""
    iid, msgs, err = build(client, {"Dockerfile": dockerfile}, tag="multi:1")
    assert not err, text(msgs) + err
    out = text(msgs)
    assert "not needed" not in out and "Step 1/8 : FROM busybox AS one" in out, out
    img = client.images.get("multi:1")
    assert len(img.attrs["RootFS"]["Layers"]) == 3
    c = client.containers.create("multi:1", ["/bin/sh", "-c", "true"], network_mode="none")
    try:
        bits, _ = c.get_archive("/one.txt")
        assert b"one\n" in b"".join(bits)
        bits, _ = c.get_archive("/two.txt")
        assert b"two\n" in b"".join(bits)
    finally:
        c.remove()
    # --target builds that stage (and what it needs) only
    iid_t, msgs_t, err_t = build(client, {"Dockerfile": dockerfile}, target="broken")
    assert "returned a non-zero code: 7" in err_t
    iid_t, msgs_t, err_t = build(client, {"Dockerfile": dockerfile}, target="two")
    assert not err_t and run(client, iid_t, "cat /two.txt; ls /one.txt 2>&1 || true").startswith("two\n")
    client.images.remove("multi:1")


def test_cache_hits_and_misses(client):
    df = "FROM busybox\nENV X=1\nCOPY f.txt /f.txt\nRUN cat /f.txt > /copy.txt\nCMD cat /copy.txt\n"
    iid1, m1, e1 = build(client, {"Dockerfile": df, "f.txt": "v1\n"})
    assert not e1, e1
    iid2, m2, _ = build(client, {"Dockerfile": df, "f.txt": "v1\n"})
    print(text(m2))
    assert iid2 == iid1 and text(m2).count("Using cache") == 4
    iid3, m3, _ = build(client, {"Dockerfile": df, "f.txt": "v2\n"})   # COPY and what follows miss
    assert iid3 != iid1 and text(m3).count("Using cache") == 1
    assert client.containers.run(iid3, remove=True, network_mode="none") == b"v2\n"
    iid4, m4, _ = build(client, {"Dockerfile": df, "f.txt": "v1\n"}, nocache=True)
    print(text(m4))
    assert iid4 != iid1 and "Using cache" not in text(m4)
    # build args that a RUN sees are part of its key
    dfa = "FROM busybox\nARG V\nRUN echo $V > /v\n"
    a1, _, _ = build(client, {"Dockerfile": dfa}, buildargs={"V": "1"})
    a2, ma2, _ = build(client, {"Dockerfile": dfa}, buildargs={"V": "2"})
    a3, ma3, _ = build(client, {"Dockerfile": dfa}, buildargs={"V": "1"})
    assert a1 != a2 and a3 == a1 and text(ma3).count("Using cache") == 2


def test_failed_run_reports_code_output_and_containers(client):
    df = "FROM busybox\nRUN echo before\nRUN echo oops-output && exit 3\n"   # rm: as `docker build`
    before = {c.id for c in client.containers.list(all=True)}
    with pytest.raises(docker.errors.BuildError) as e:
        client.images.build(fileobj=io.BytesIO(ctx_tar({"Dockerfile": df})), custom_context=True, rm=True)
    assert "The command '/bin/sh -c echo oops-output && exit 3' returned a non-zero code: 3" in str(e.value)
    assert any("oops-output" in (m.get("stream") or "") for m in e.value.build_log)
    err = [m for m in e.value.build_log if "errorDetail" in m][0]
    assert err["errorDetail"]["code"] == 3
    left = [c for c in client.containers.list(all=True) if c.id not in before]
    assert len(left) == 1 and left[0].attrs["State"]["ExitCode"] == 3   # kept for a look, as Docker's --rm
    left[0].remove()
    _, _, err2 = build(client, {"Dockerfile": df}, forcerm=True)
    assert "non-zero code: 3" in err2
    assert {c.id for c in client.containers.list(all=True)} == before   # --force-rm: none left


def test_heredocs_and_run_mounts(client):
    df = """FROM busybox
ARG WHO=world
RUN <<EOF
echo "hello $WHO" > /greeting
echo second line >> /greeting
EOF
RUN <<EOF
#!/bin/sh
echo from-script > /script.txt
EOF
RUN cat <<A > /a.txt && cat <<B > /b.txt
first
A
second
B
COPY <<EOF /etc/app.conf
name=$WHO
EOF
COPY <<"EOF" /etc/raw.conf
name=$WHO
EOF
RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/count; wc -l < /cache/count > /count.txt'
RUN --mount=type=bind,source=data,target=/src cat /src/d.txt > /bound.txt
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && grep -q tmpfs /proc/mounts && ls /scratch > /tmpfs.txt
RUN --mount=type=secret,id=token cat /run/secrets/token 2>/dev/null || echo no-secret > /secret.txt
RUN --network=none sh -c 'ls /sys/class/net > /nets.txt'
"""
    files = {"Dockerfile": df, "data/d.txt": "bound\n"}
    iid, msgs, err = build(client, files, nocache=True)
    assert not err, text(msgs) + err
    out = run(client, iid, "cat /greeting /script.txt /a.txt /b.txt /etc/app.conf /etc/raw.conf /count.txt "
                           "/bound.txt /tmpfs.txt /secret.txt /nets.txt; ls /cache /src /scratch 2>&1 | wc -l")
    assert out.split("\n") == ["hello world", "second line", "from-script", "first", "second", "name=world",
                               "name=$WHO", "1", "bound", "t", "no-secret", "lo", "3", ""], out
    assert run(client, iid, "ls -a / | grep -c dockyard-heredoc || true") == "0\n"
    iid2, msgs2, err2 = build(client, files, nocache=True)   # the cache mount keeps its content
    assert not err2
    assert run(client, iid2, "cat /count.txt") == "2\n"
    _, _, err3 = build(client, {"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=t,required=true true\n"})
    assert "secret t not found" in err3


@pytest.mark.parametrize("encoding", [None, "gzip", "bzip2", "xz"])
def test_context_encodings_and_dockerignore(client, encoding):
    files = {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort > /list\n",
             ".dockerignore": "*.log\n!keep.log\nsecret/\n**/*.tmp\nDockerfile\n",
             "a.txt": "a", "x.log": "x", "keep.log": "k", "secret/key": "k", "d/e/f.tmp": "t", "d/e/g.txt": "g"}
    iid, msgs, err = build(client, files, encoding=encoding)
    assert not err, text(msgs) + err
    assert run(client, iid, "cat /list").split() == ["./.dockerignore", "./a.txt", "./d/e/g.txt", "./keep.log"]


def test_dockerfile_elsewhere_and_remote_context(client):
    iid, msgs, err = build(client, {"build/My.Dockerfile": "FROM busybox\nCOPY x /x\n", "x": "from-x\n"},
                           dockerfile="build/My.Dockerfile")
    assert not err and run(client, iid, "cat /x") == "from-x\n"
    with pytest.raises(docker.errors.APIError) as e:
        build(client, {"x": "1"}, dockerfile="nope")
    assert e.value.status_code == 400 and "Cannot locate specified Dockerfile: nope" in str(e.value)
    tar = ctx_tar({"Dockerfile": "FROM busybox\nCOPY r.txt /r.txt\n", "r.txt": "remote\n"})
    dockerfile_only = b"FROM busybox\nRUN echo plain > /p\n"
    from http.server import BaseHTTPRequestHandler

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = tar if self.path == "/ctx.tar" else dockerfile_only
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    host, stop = serve_http(H)
    url = f"http://{host}"
    try:
        msgs = list(client.api.build(path=f"{url}/ctx.tar", decode=True))
        iid = next(m["aux"]["ID"] for m in msgs if "aux" in m)
        assert run(client, iid, "cat /r.txt") == "remote\n"
        msgs = list(client.api.build(path=f"{url}/Dockerfile", decode=True))
        iid = next(m["aux"]["ID"] for m in msgs if "aux" in m)
        assert run(client, iid, "cat /p") == "plain\n"
    finally:
        stop()


@pytest.mark.parametrize("dockerfile,status,what", [
    ("FROM busybox\nRUN true\nBOGUS x\n", 400, "Dockerfile:3: unknown instruction: BOGUS"),
    ("RUN true\n", 400, "before the first FROM"),
    ("FROM busybox\nCOPY --frm=x a b\n", 400, "unknown flag: --frm"),
    ("FROM busybox\nRUN <<EOF\necho\n", 400, "unterminated heredoc"),
])
def test_bad_dockerfiles(client, dockerfile, status, what):
    iid, msgs, err = (None, [], "")
    try:
        iid, msgs, err = build(client, {"Dockerfile": dockerfile})
    except docker.errors.APIError as e:
        assert e.status_code == status and what in str(e), str(e)
        return
    assert what in err, (msgs, err)


def test_unknown_and_buildkit_parameters_are_refused(client):
    with pytest.raises(docker.errors.APIError) as e:
        list(client.api._stream_helper(client.api._post(client.api._url("/build"), params={"bogus": "1"},
                                                        data=ctx_tar({"Dockerfile": "FROM busybox\n"}))))
        client.api._raise_for_status(None)
    del e
    res = client.api._post(client.api._url("/build"), params={"bogus": "1"},
                           data=ctx_tar({"Dockerfile": "FROM busybox\n"}), headers={"Content-Type": "application/x-tar"})
    assert res.status_code == 400 and "bogus" in res.json()["message"]
    res = client.api._post(client.api._url("/build"), params={"version": "2"},
                           data=ctx_tar({"Dockerfile": "FROM busybox\n"}), headers={"Content-Type": "application/x-tar"})
    assert res.status_code == 501 and "BuildKit" in res.json()["message"]


def test_limits_network_and_labels_apply_to_run(client):
    df = "FROM busybox\nRUN cat /sys/fs/cgroup/memory/memory.limit_in_bytes > /mem 2>/dev/null || " \
         "cat /sys/fs/cgroup/memory.max > /mem; grep myhost /etc/hosts > /hosts; ls /sys/class/net > /nets\n"
    iid, msgs, err = build(client, {"Dockerfile": df}, container_limits={"memory": 64 * 1024 * 1024},
                           extra_hosts={"myhost": "10.1.2.3"}, network_mode="none", labels={"built": "yes"},
                           nocache=True)
    assert not err, text(msgs) + err
    out = run(client, iid, "cat /mem /hosts /nets")
    assert out.split("\n")[0] == str(64 * 1024 * 1024) and "10.1.2.3\tmyhost" in out and out.endswith("lo\n"), out
    assert client.images.get(iid).labels == {"built": "yes"}


def _ids(client, all: bool = False) -> set[str]:
    """Container ids in one call (docker-py's containers.list inspects each in a second call,
    which a container removed in between turns into a 404)."""
    return {c["Id"] for c in client.api.containers(all=all)}


def test_client_that_goes_away_leaves_no_container(client, daemon):
    import socket
    before = _ids(client, all=True)
    body = ctx_tar({"Dockerfile": "FROM busybox\nRUN sleep 60\n"})
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(daemon.sock))
    s.sendall(b"POST /v1.41/build?nocache=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body)
    deadline = time.time() + 20
    while time.time() < deadline and not _ids(client) - before:
        time.sleep(0.05)
    assert _ids(client) - before, "the RUN never started"
    s.close()
    deadline = time.time() + 20
    while time.time() < deadline and _ids(client, all=True) != before:
        time.sleep(0.1)
    assert _ids(client, all=True) == before


def test_squash(client):
    df = "FROM busybox\nRUN echo 1 > /a && echo 2 > /b\nRUN rm /a && echo 3 > /c\nENV Z=1\n"
    iid, msgs, err = build(client, {"Dockerfile": df}, squash=True)
    assert not err, text(msgs) + err
    img = client.images.get(iid)
    base = client.images.get("busybox")
    assert len(img.attrs["RootFS"]["Layers"]) == len(base.attrs["RootFS"]["Layers"]) + 1
    assert run(client, iid, "ls /a 2>/dev/null; cat /b /c; echo $Z") == "2\n3\n1\n"
    assert json.dumps(img.attrs["Config"]["Env"]).count("Z=1") == 1


def test_independent_stages_run_at_once(client):
    # each stage's RUN waits for the other's mark in a shared cache mount: built one after the
    # other, the first would give up (exit 1) before the second started
    wait = ("--mount=type=cache,id=rendezvous-{n},target=/r sh -c 'touch /r/{me}; i=0; "
            "while [ ! -e /r/{other} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.05; done'")
    df = (f"FROM busybox AS a\nRUN {wait.format(n='{N}', me='a', other='b')}\n"
          f"FROM busybox AS b\nRUN {wait.format(n='{N}', me='b', other='a')}\n"
          "FROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n")
    df = df.replace("{N}", str(time.time_ns()))
    iid, msgs, err = build(client, {"Dockerfile": df}, nocache=True)
    assert not err, text(msgs) + err


def test_cache_from_an_image_without_parents(client, tmp_path):
    df = "FROM busybox\nENV A=1\nCOPY f /f\nRUN echo ran > /r\nCMD cat /r\n"
    files = {"Dockerfile": df, "f": "content\n"}
    iid, _, err = build(client, files, tag="cachesrc:1")
    assert not err
    layers = client.images.get(iid).attrs["RootFS"]["Layers"]
    data = b"".join(client.images.get("cachesrc:1").save(named=True))
    client.images.remove("cachesrc:1")   # its intermediate images go with it: no parent links left
    client.images.load(data)
    assert client.images.get("cachesrc:1").attrs["Parent"] == ""   # loaded: no parent links to follow
    iid2, m2, err2 = build(client, files, cache_from=["cachesrc:1"])
    assert not err2
    assert text(m2).count("Using cache") == 4, text(m2)   # every step, from the image's history
    assert client.images.get(iid2).attrs["RootFS"]["Layers"] == layers
    assert client.containers.run(iid2, remove=True, network_mode="none") == b"ran\n"
    client.images.remove("cachesrc:1", force=True)


def test_add_from_a_url(client):
    from http.server import BaseHTTPRequestHandler

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"downloaded\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    host, stop = serve_http(H)
    try:
        df = f"FROM busybox\nADD http://{host}/files/data.txt /dl/\nADD http://{host}/x /named.txt\n"
        iid, msgs, err = build(client, {"Dockerfile": df})
        assert not err, text(msgs) + err
        out = run(client, iid, "cat /dl/data.txt /named.txt; stat -c '%a %Y' /dl/data.txt")
        assert out == "downloaded\ndownloaded\n600 1445412480\n", out
    finally:
        stop()


def test_context_spooled_to_disk(fresh_daemon):
    d = fresh_daemon(env={"DOCKYARD_BUILD_MEM_SPOOL": "1000"})
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        big = bytes(range(256)) * 64   # 16 KiB: past the 1000-byte memory spool
        files = {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN --mount=type=bind,target=/b md5sum /b/big.bin > /m\n",
                 "big.bin": big, "small.txt": "s\n"}
        iid, msgs, err = build(c, files)
        assert not err, text(msgs) + err
        import hashlib
        out = run(c, iid, "md5sum /ctx/big.bin; cat /m /ctx/small.txt")
        want = hashlib.md5(big).hexdigest()
        assert out == f"{want}  /ctx/big.bin\n{want}  /b/big.bin\ns\n", out
    finally:
        c.close()


def test_cache_from_and_stderr_as_dockerd(client):
    """docker-py's own cases: with cache_from the classic builder's cache is those images (and
    their ancestors) only — a local chain hits through them, and through no other; RUN's stderr is
    in the stream, wrapped in red as dockerd writes it."""
    import io as _io
    api = client.api
    script = b"\n".join([b"FROM busybox", b"ENV FOO=bar", b"RUN touch baz", b"RUN touch bax"])
    for _ in api.build(fileobj=_io.BytesIO(script), tag="cf-build1", decode=True):
        pass
    hits = sum("Using cache" in ch.get("stream", "") for ch in
               api.build(fileobj=_io.BytesIO(script), tag="cf-build2", cache_from=["cf-build1"], decode=True))
    assert hits == 3
    api.remove_image("cf-build2")
    hits = sum("Using cache" in ch.get("stream", "") for ch in
               api.build(fileobj=_io.BytesIO(script), tag="cf-build2", cache_from=["nosuchtag"], decode=True))
    assert hits == 0
    hits = sum("Using cache" in ch.get("stream", "") for ch in
               api.build(fileobj=_io.BytesIO(script), tag="cf-build3", decode=True))
    assert hits == 3   # without cache_from: the local cache
    for t in ("cf-build1", "cf-build2", "cf-build3"):
        api.remove_image(t)
    snippet = "Ancient Temple (Mystic Oriental Dream ~ Ancient Temple)"
    df = b"FROM busybox\n" + f"RUN sh -c \">&2 echo '{snippet}'\"".encode()
    lines = [ch.get("stream") for ch in api.build(fileobj=_io.BytesIO(df), decode=True, nocache=True, rm=True)]
    assert f"\x1b[91m{snippet}\n\x1b[0m" in lines, lines
