"""Regression tests for known engine CVE classes, against Dockyard's runtime (and runc where the
same holds): CVE-2019-5736 (a container reaching the runtime's host binary through
/proc/PID/exe), CVE-2024-21626 (descriptors leaked into the container, WORKDIR /proc/self/fd/N),
CVE-2019-19921 (procfs mounted over a symlink)."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile

import docker
import pytest

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard", pytest.param("runc", marks=pytest.mark.skipif(not shutil.which("runc"), reason="no runc"))]


def test_entering_processes_are_out_of_the_containers_reach(client):
    """CVE-2019-5736: while `exec` enters a container, its helper runs the host's interpreter;
    a container process that could open /proc/PID/exe of it could overwrite that binary. The
    helper is not dumpable until it execs, so /proc/PID/exe cannot be resolved from inside."""
    c = client.containers.run("busybox", ["sh", "-c", "while :; do for p in /proc/[0-9]*; do readlink $p/exe; done; "
                                                      "done > /tmp/seen 2>/dev/null"], detach=True)
    try:
        for _ in range(25):
            assert c.exec_run(["true"]).exit_code == 0
        seen = set(c.exec_run(["sort", "-u", "/tmp/seen"]).output.decode().split())
    finally:
        c.remove(force=True)
    host_bins = {os.path.realpath(sys.executable), sys.executable}
    assert "/bin/busybox" in seen
    assert not seen & host_bins and not any("python" in s for s in seen), seen


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_descriptors_leak_into_the_container(client, runtime):
    """CVE-2024-21626: the init and exec'd processes get only stdio."""
    # the shell's descriptors, listed by another process (a listing's own directory fd is no leak)
    script = "ls /proc/$$/fd; true"   # `; true` keeps the shell from exec'ing ls
    init_fds = client.containers.run("busybox", ["sh", "-c", script], remove=True, runtime=runtime).split()
    assert set(init_fds) <= {b"0", b"1", b"2", b"255"}, init_fds
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, runtime=runtime)
    try:
        exec_fds = c.exec_run(["sh", "-c", script]).output.split()
        assert set(exec_fds) <= {b"0", b"1", b"2", b"255"}, exec_fds
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_workdir_through_proc_self_fd_cannot_escape(client, runtime):
    """CVE-2024-21626: a working directory of /proc/self/fd/N must never be a host directory."""
    for n in range(3, 12):
        try:
            out = client.containers.run("busybox", ["sh", "-c", "pwd; ls / | head -50"], remove=True, runtime=runtime,
                                        working_dir=f"/proc/self/fd/{n}")
        except (docker.errors.APIError, docker.errors.ContainerError):
            continue   # refused: fine
        listing = out.decode().split()
        assert "bin" in listing and "proc" in listing, listing   # the container's own root
        assert "work" not in listing   # /work is the host's, not the image's


def _busybox_with_proc_symlink(busybox_tar) -> bytes:
    """The busybox rootfs, with /proc a symlink into /tmp."""
    out = io.BytesIO()
    with tarfile.open(busybox_tar) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            name = m.name.lstrip("./")
            if name == "proc" or name.startswith("proc/"):
                continue
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        link = tarfile.TarInfo("proc")
        link.type, link.linkname = tarfile.SYMTYPE, "tmp/fakeproc"
        dst.addfile(link)
        d = tarfile.TarInfo("tmp/fakeproc")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(d)
    return out.getvalue()


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_proc_is_never_mounted_over_a_symlink(client, busybox_tar, runtime):
    """CVE-2019-19921: an image whose /proc is a symlink still gets procfs on a real /proc (the
    init layer puts a directory there); the runtime itself refuses a symlink (tests/runtime)."""
    client.api.import_image_from_data(_busybox_with_proc_symlink(busybox_tar), repository="procsym", tag="1")
    try:
        out = client.containers.run("procsym:1", ["sh", "-c", "ls -ld /proc; ls /tmp/fakeproc | wc -l; "
                                                 "mount | grep -c '^proc on /proc type proc'"],
                                    remove=True, runtime=runtime).decode().split("\n")
        assert out[0].startswith("dr") and out[1].strip() == "0" and out[2].strip() == "1", out
    finally:
        client.images.remove("procsym:1")
