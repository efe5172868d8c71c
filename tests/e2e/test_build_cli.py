"""`docker build` (Debian's CLI, the classic builder protocol) and `dockyard build` against
dockyardd: contexts from a directory, stdin and a Dockerfile elsewhere; -q, --iidfile, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time

import pytest

from ..helpers import BIN, DOCKER

pytestmark = pytest.mark.root


@pytest.fixture(params=["docker", "dockyard"])
def cli(request, daemon):
    if request.param == "docker" and not DOCKER:
        pytest.skip("Debian's docker CLI (docker.io) is not installed")
    exe = DOCKER if request.param == "docker" else str(BIN / "dockyard")
    env = {**daemon.env(), "DOCKER_BUILDKIT": "0"}

    def run(*args: str, input: bytes | None = None, cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([exe, *args], env=env, capture_output=True, input=input, timeout=180, cwd=cwd)
    run.name = request.param  # type: ignore[attr-defined]
    return run


def _ctx(tmp_path, files: dict[str, str]):
    for name, data in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(data)
    return tmp_path


def test_directory_context_tags_and_output(cli, tmp_path, client):
    d = _ctx(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY . /app/\nRUN echo building-now && ls /app\n",
                                ".dockerignore": "ignored/\n", "keep.txt": "k", "ignored/big.bin": "x"})
    p = cli("build", "-t", f"cli-{cli.name}:1", "-t", f"cli-{cli.name}:2", "--build-arg", "UNUSED=1", str(d))
    out = p.stdout.decode()
    assert p.returncode == 0, p.stderr
    assert "Step 1/3 : FROM busybox" in out and "building-now" in out and "keep.txt" in out
    assert "ignored" not in out.split("building-now")[1]
    assert f"Successfully tagged cli-{cli.name}:1" in out and f"Successfully tagged cli-{cli.name}:2" in out
    img = client.images.get(f"cli-{cli.name}:1")
    assert f"cli-{cli.name}:2" in img.tags
    # quiet: the ID only; --iidfile: the same ID in a file
    iid = tmp_path / "iid"
    q = cli("build", "-q", "--iidfile", str(iid), str(d))
    assert q.returncode == 0, q.stderr
    assert q.stdout.decode().strip() == img.id == iid.read_text().strip()
    client.images.remove(f"cli-{cli.name}:1")
    client.images.remove(f"cli-{cli.name}:2")


def test_dockerfile_outside_context_and_from_stdin(cli, tmp_path, client):
    d = _ctx(tmp_path / "ctx", {"data.txt": "payload\n"})
    other = tmp_path / "elsewhere.Dockerfile"
    other.write_text("FROM busybox\nCOPY data.txt /d\nCMD cat /d\n")
    p = cli("build", "-q", "-f", str(other), str(d))
    assert p.returncode == 0, p.stderr
    iid = p.stdout.decode().strip()
    assert client.containers.run(iid, remove=True, network_mode="none") == b"payload\n"
    p = cli("build", "-q", "-f", "-", str(d), input=b"FROM busybox\nCOPY data.txt /e\nCMD cat /e\n")
    assert p.returncode == 0, p.stderr
    assert client.containers.run(p.stdout.decode().strip(), remove=True, network_mode="none") == b"payload\n"
    # the context as a tar on stdin
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in {"Dockerfile": b"FROM busybox\nCOPY t.txt /t\nCMD cat /t\n", "t.txt": b"from-tar\n"}.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    p = cli("build", "-q", "-", input=buf.getvalue())
    assert p.returncode == 0, p.stderr
    assert client.containers.run(p.stdout.decode().strip(), remove=True, network_mode="none") == b"from-tar\n"
    # a bare Dockerfile on stdin (no context)
    p = cli("build", "-q", "-", input=b"FROM busybox\nCMD echo bare\n")
    assert p.returncode == 0, p.stderr
    assert client.containers.run(p.stdout.decode().strip(), remove=True, network_mode="none") == b"bare\n"


def test_failures_exit_with_the_run_code(cli, tmp_path, client):
    d = _ctx(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo visible-output; exit 4\n"})
    before = {c.id for c in client.containers.list(all=True)}
    p = cli("build", "--force-rm", str(d))
    assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
    assert b"visible-output" in p.stdout
    assert b"The command '/bin/sh -c echo visible-output; exit 4' returned a non-zero code: 4" in p.stderr
    assert {c.id for c in client.containers.list(all=True)} == before
    bad = _ctx(tmp_path / "bad", {"Dockerfile": "FROM busybox\nNOPE x\n"})
    p = cli("build", str(bad))
    assert p.returncode == 1 and b"Dockerfile:2: unknown instruction: NOPE" in p.stderr, p.stderr


def test_context_sync_sends_only_what_changed(daemon, tmp_path, client):
    """dockyard build against dockyardd: the second build sends only changed files; edits that
    keep size and mtime, deletions, and a daemon that lost the base are all seen."""
    import os
    env = {**daemon.env(), "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def dy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "dockyard"), *args], env=env, capture_output=True, text=True, timeout=120)
    d = _ctx(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY . /c/\nRUN cat /c/a.txt; ls /c/sub\n",
                                "a.txt": "one\n", "sub/b.txt": "b\n", "sub/c.txt": "c\n"})
    old = time.time() - 100   # not "racy": older than the walk that records it
    for f in ("a.txt", "sub/b.txt", "sub/c.txt", "Dockerfile"):
        os.utime(d / f, (old, old))
    time.sleep(1.1)   # their ctimes too must be older than a second when the walk records them
    p = dy("build", str(d))
    assert p.returncode == 0, p.stderr
    assert "Context sync: 4 of 4 files sent" in p.stdout
    p = dy("build", str(d))
    assert "Context sync: 0 of 4 files sent" in p.stdout and p.stdout.count("Using cache") == 2, p.stdout
    (d / "a.txt").write_text("two\n")   # same size, same mtime: the inode's ctime tells
    os.utime(d / "a.txt", (old, old))
    time.sleep(1.1)
    p = dy("build", str(d))
    assert "Context sync: 1 of 4 files sent" in p.stdout and "\ntwo\n" in p.stdout, p.stdout
    (d / "sub" / "c.txt").unlink()
    p = dy("build", str(d))
    assert "Context sync: 0 of 3 files sent" in p.stdout and "b.txt\n" in p.stdout and "c.txt" not in \
        p.stdout.split("ls /c/sub")[1], p.stdout
    # the daemon no longer holds the base (a key of another daemon's): the whole context goes again
    state = next((tmp_path / "cache" / "dockyard" / "contexts").iterdir())
    st = json.loads(state.read_text())
    st["base"] = "0" * 16
    state.write_text(json.dumps(st))
    p = dy("build", str(d))
    assert p.returncode == 0, p.stderr
    assert "Context sync: 3 of 3 files sent" in p.stdout, p.stdout
