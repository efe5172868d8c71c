"""--userns-remap (issue 7, the book's 2.4.3): containers' root is an unprivileged host range.
`default` creates the dockremap user and its /etc/subuid and /etc/subgid ranges as dockerd does;
the image's layers are shared through idmapped mounts (nothing copied, nothing chowned on disk).
Proven for our runtime and runc: the map inside, file owners outside, root's powers over the
image's files inside, exec, commit and cp translated back, and what a remapped container refuses."""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
import pytest

from ..helpers import Daemon

pytestmark = pytest.mark.root


def _lines(path: str, user: str) -> list[str]:
    try:
        return [ln for ln in Path(path).read_text().splitlines() if ln.startswith(user + ":")]
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def remapped(busybox_tar):
    """A daemon with --userns-remap default, under a directory the remapped root may traverse;
    dockremap and its ranges are removed afterwards if this test made them."""
    had_user = True
    try:
        pwd.getpwnam("dockremap")
    except KeyError:
        had_user = False
    had = {p: _lines(p, "dockremap") for p in ("/etc/subuid", "/etc/subgid")}
    base = Path(tempfile.mkdtemp(prefix="dockyard-userns-", dir="/var/tmp"))
    os.chmod(base, 0o711)
    d = Daemon(base / "d", config={"userns-remap": "default"})
    try:
        d.start()
        c = docker.DockerClient(base_url=d.host, version="auto")
        c.api.import_image_from_data(busybox_tar.read_bytes(), repository="busybox", tag="latest")
        yield d, c
        c.close()
    finally:
        d.cleanup()
        subprocess.run(["umount", "-R", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        if not had_user:
            subprocess.run(["userdel", "dockremap"], capture_output=True)
            subprocess.run(["groupdel", "dockremap"], capture_output=True)
        for p, before in had.items():
            if not before and os.path.exists(p):
                kept = [ln for ln in Path(p).read_text().splitlines() if not ln.startswith("dockremap:")]
                Path(p).write_text("".join(ln + "\n" for ln in kept))


def _range(path: str) -> tuple[int, int]:
    _, start, size = _lines(path, "dockremap")[0].split(":")
    return int(start), int(size)


def test_default_creates_dockremap_with_subordinate_ranges(remapped):
    pwd.getpwnam("dockremap")
    start, size = _range("/etc/subuid")
    assert start >= 100000 and size == 65536 and _range("/etc/subgid")[1] == 65536


@pytest.mark.parametrize("runtime", ["dockyard", pytest.param("runc", marks=pytest.mark.skipif(
    not shutil.which("runc"), reason="no runc"))])
def test_root_inside_is_a_host_range_outside(remapped, runtime):
    d, client = remapped
    start, size = _range("/etc/subuid")
    gstart, _ = _range("/etc/subgid")
    c = client.containers.run("busybox", ["sh", "-c", "cat /proc/self/uid_map; id -u; touch /etc/made-here && "
                                          "echo touched; echo data > /root/mine; sleep 30"],
                              detach=True, runtime=runtime)
    try:
        import time
        for _ in range(50):
            if b"touched" in c.logs():
                break
            time.sleep(0.1)
        out = c.logs().decode().split("\n")
        assert out[0].split() == ["0", str(start), str(size)] and out[1] == "0" and out[2] == "touched", out
        upper = Path(client.api.inspect_container(c.id)["GraphDriver"]["Data"]["UpperDir"])
        st = os.stat(upper / "root" / "mine")
        assert (st.st_uid, st.st_gid) == (start, gstart)       # outside: the remapped range
        r = c.exec_run(["sh", "-c", "cat /proc/self/uid_map; ls -ln /root/mine"])
        assert r.output.split()[:3] == [b"0", str(start).encode(), str(size).encode()]
        assert r.output.split()[5:7] == [b"0", b"0"]            # inside: root's own file
        # the image's layers are shared, not chowned: still root's on disk
        lower = upper.parent.parent
        owners = {os.stat(p / "fs" / "bin").st_uid for p in lower.iterdir() if (p / "fs" / "bin").exists()}
        assert owners == {0}
        # commit and cp translate owners back to the container's own ids
        img = c.commit("remapped", "1")
        tar = b"".join(c.get_archive("/root/mine")[0])
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            m = tf.getmember("mine")
            assert (m.uid, m.gid) == (0, 0)
        out = client.containers.run(img.id, ["ls", "-ln", "/root/mine"], remove=True, userns_mode="host").split()
        assert out[2:4] == [b"0", b"0"]
        client.images.remove(img.id, force=True)
    finally:
        c.remove(force=True)


def test_what_a_remapped_container_refuses(remapped):
    _, client = remapped
    for kw, msg in (({"privileged": True}, "privileged mode is incompatible with user namespaces"),
                    ({"network_mode": "host"}, "Cannot share the host's network namespace"),
                    ({"pid_mode": "host"}, "Cannot share the host's PID namespace")):
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create("busybox", ["true"], **kw)
        assert e.value.status_code == 400 and msg in str(e.value)
    out = client.containers.run("busybox", ["cat", "/proc/self/uid_map"], remove=True, userns_mode="host")
    assert out.split() == [b"0", b"0", b"4294967295"]


def test_shifted_copies_where_idmapped_mounts_are_not_used(remapped, busybox_tar):
    """The fallback (forced here with DOCKYARD_USERNS_LAYERS=copy): each layer is copied once,
    beside itself, with owners shifted into the range; the container sees the same thing."""
    d0, _ = remapped
    start, _ = _range("/etc/subuid")
    base = d0.base.parent / "copy"
    os.environ["DOCKYARD_USERNS_LAYERS"] = "copy"
    try:
        d = Daemon(base, config={"userns-remap": "default"})
        d.start()
    finally:
        del os.environ["DOCKYARD_USERNS_LAYERS"]
    c = docker.DockerClient(base_url=d.host, version="auto")
    try:
        c.api.import_image_from_data(busybox_tar.read_bytes(), repository="busybox", tag="latest")
        out = c.containers.run("busybox", ["sh", "-c", "touch /etc/x && id -u && stat -c %u /bin/busybox"], remove=True)
        assert out.split() == [b"0", b"0"]
        copies = list((d.data_root / "snapshots").glob(f"*/fs-remap-{start}-*"))
        assert copies and all(os.stat(p / "bin").st_uid == start for p in copies if (p / "bin").exists())
    finally:
        c.close()
        d.cleanup()
