"""export/import, commit/diff/history, cp, system df, image housekeeping (issue 3)."""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import tarfile
import threading
import time

import pytest

from ..helpers import tar_bytes as _tar

pytestmark = pytest.mark.root



def test_diff_commit_history_and_whiteouts(docker_cli, dy_cli):
    docker_cli("run", "--name", "cm1", "busybox", "sh", "-c",
               "mkdir /data; echo v > /data/f; rm /bin/vi; rm -rf /home; mkdir /home; echo only > /home/only")
    diff = docker_cli("diff", "cm1").stdout.splitlines()
    assert "D /bin/vi" in diff and "A /data" in diff and "A /data/f" in diff and "C /bin" in diff
    assert not any("hosts" in ln or "hostname" in ln or "resolv" in ln or "dockerenv" in ln for ln in diff)
    assert dy_cli("diff", "cm1").stdout.splitlines() == diff
    iid = docker_cli("commit", "-a", "me <me@x>", "-m", "my change", "-c", 'CMD ["cat", "/data/f"]', "cm1",
                     "committed:v1").stdout.strip()
    assert iid.startswith("sha256:")
    assert docker_cli("run", "--rm", "committed:v1").stdout == "v\n"
    p = docker_cli("run", "--rm", "committed:v1", "ls", "/bin/vi", check=False)
    assert p.returncode != 0
    assert docker_cli("run", "--rm", "committed:v1", "ls", "/home").stdout.split() == ["only"]
    ins = json.loads(docker_cli("image", "inspect", "committed:v1").stdout)[0]
    base = docker_cli("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    assert ins["Parent"] == base and ins["Author"] == "me <me@x>" and ins["Comment"] == "my change"
    assert ins["Config"]["Cmd"] == ["cat", "/data/f"] and len(ins["RootFS"]["Layers"]) == 2
    assert ins["ContainerConfig"]["Cmd"][0] == "sh"
    hist = dy_cli("history", "--no-trunc", "committed:v1").stdout
    assert "my change" in hist and "mkdir /data" in hist
    # rmi rules with a child image
    p = docker_cli("rmi", base[7:19], check=False)
    assert p.returncode == 1 and "conflict" in p.stderr
    docker_cli("rm", "cm1")
    docker_cli("rmi", "committed:v1")


def test_commit_layer_has_whiteouts_and_book_example(dy_cli, tmp_path):
    # Book 3.4: concrete and marble in the image; the container deletes marble; commit; a fresh
    # container sees only concrete, and the new layer records the deletion as .wh.marble.
    src = tmp_path / "base.tar"
    src.write_bytes(_tar({"concrete": b"c", "marble": b"m"}))
    dy_cli("import", "-c", 'CMD ["/bin/sh"]', str(src), "book:base")
    bb = tmp_path / "bb"
    dy_cli("save", "-o", str(bb), "busybox")
    dy_cli("run", "--name", "bk", "busybox", "sh", "-c", "true")
    # build an image with busybox + concrete/marble by copying files in, then commit
    dy_cli("cp", str(tmp_path / "base.tar"), "bk:/")
    dy_cli("start", "-a", "bk")
    dy_cli("commit", "bk", "book:step")
    dy_cli("rm", "bk")
    dy_cli("run", "--name", "bk2", "book:step", "sh", "-c", "cd / && tar -xf base.tar && rm base.tar")
    dy_cli("commit", "bk2", "book:lower")
    dy_cli("rm", "bk2")
    dy_cli("run", "--name", "bk3", "book:lower", "rm", "/marble")
    assert dy_cli("diff", "bk3").stdout.splitlines() == ["D /marble"]
    dy_cli("commit", "bk3", "book:upper")
    dy_cli("rm", "bk3")
    out = dy_cli("run", "--rm", "book:upper", "ls", "/").stdout.split()
    assert "concrete" in out and "marble" not in out
    arch = tmp_path / "upper.tar"
    dy_cli("save", "-o", str(arch), "book:upper")
    with tarfile.open(arch) as tf:
        man = json.load(tf.extractfile("manifest.json"))
        top = tf.extractfile(man[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(top)) as lt:
        assert lt.getnames() == [".wh.marble"]
    for t in ("book:upper", "book:lower", "book:step", "book:base"):
        dy_cli("rmi", t)


def test_export_and_import_roundtrip(docker_cli, tmp_path):
    docker_cli("run", "--name", "ex1", "busybox", "sh", "-c", "echo exported > /marker")
    out = tmp_path / "ex.tar"
    docker_cli("export", "-o", str(out), "ex1")
    with tarfile.open(out) as tf:
        names = tf.getnames()
    assert "marker" in names and "bin/busybox" in names
    docker_cli("import", "-c", "CMD [\"cat\", \"/marker\"]", str(out), "exported:1")
    assert docker_cli("run", "--rm", "exported:1").stdout == "exported\n"
    docker_cli("rm", "ex1")
    docker_cli("rmi", "exported:1")


def test_import_from_url_on_loopback(dy_cli, busybox_tar, tmp_path):
    class H(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(busybox_tar.parent), **kw)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/{busybox_tar.name}"
        iid = dy_cli("import", "-m", "from url", url, "fromurl:1").stdout.strip()
        assert iid.startswith("sha256:")
        assert dy_cli("run", "--rm", "fromurl:1", "echo", "ok").stdout == "ok\n"
        p = dy_cli("import", f"http://127.0.0.1:{srv.server_address[1]}/missing.tar", check=False)
        assert p.returncode == 1 and "404" in p.stderr
    finally:
        srv.shutdown()
    dy_cli("rmi", "fromurl:1")


def test_cp_both_ways_and_containment(docker_cli, dy_cli, daemon, tmp_path):
    docker_cli("run", "--name", "cp1", "busybox", "sh", "-c",
               "mkdir -p /d/sub; echo a > /d/a; echo b > /d/sub/b; ln -s / /hostroot; ln -s /etc/passwd /pw")
    dst = tmp_path / "out"
    dst.mkdir()
    docker_cli("cp", "cp1:/d", str(dst))
    assert (dst / "d" / "a").read_text() == "a\n" and (dst / "d" / "sub" / "b").read_text() == "b\n"
    dy_cli("cp", "cp1:/d/a", str(dst / "renamed"))
    assert (dst / "renamed").read_text() == "a\n"
    # paths that lead out of the container resolve inside it
    with open("/etc/hostname") as f:
        host_hostname = f.read()
    p = subprocess.run(["/usr/bin/docker", "cp", "cp1:/hostroot/etc/hostname", "-"], capture_output=True,
                       env=daemon.env())
    with tarfile.open(fileobj=io.BytesIO(p.stdout)) as tf:
        got = tf.extractfile("hostname").read().decode()
    assert got == "" and got != host_hostname  # the container's (empty) mount point, not the host's
    # into the container, on a stopped container, with docker and dockyard
    (tmp_path / "up.txt").write_text("uploaded")
    docker_cli("cp", str(tmp_path / "up.txt"), "cp1:/d/")
    dy_cli("cp", str(tmp_path / "up.txt"), "cp1:/d/other.txt")
    docker_cli("start", "-a", "cp1", check=False)
    assert "uploaded" in dy_cli("cp", "cp1:/d/other.txt", "-").stdout
    # running container: cp pauses it and reads inside
    cid = docker_cli("run", "-d", "busybox", "sh", "-c", "echo live > /live; sleep 30").stdout.strip()
    time.sleep(0.3)
    assert "live" in dy_cli("cp", f"{cid}:/live", "-").stdout
    assert dy_cli("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
    docker_cli("rm", "-f", cid, "cp1")
    p = dy_cli("cp", "nosuch:/x", "-", check=False)
    assert p.returncode == 1


def test_cp_never_loads_container_libraries(daemon, dy_cli, tmp_path):
    """CVE-2019-14271: the engine must not run code from the container during cp."""
    dy_cli("run", "--name", "lib1", "busybox", "sh", "-c",
           "mkdir -p /lib/x86_64-linux-gnu && echo evil > /lib/x86_64-linux-gnu/libnss_files.so.2")
    dy_cli("cp", "lib1:/etc/passwd", str(tmp_path / "pw"))
    pid = int((daemon.base / "d.pid").read_text())
    maps = open(f"/proc/{pid}/maps").read()
    assert "libnss_files" not in maps and str(daemon.data_root / "snapshots") not in maps
    assert str(daemon.data_root / "containers") not in maps
    dy_cli("rm", "lib1")


def test_system_df_and_dangling_cleanup(dy_cli, daemon, tmp_path):
    src = tmp_path / "x.tar"
    src.write_bytes(_tar({"f": b"1"}))
    dy_cli("import", str(src), "dang:1")
    src.write_bytes(_tar({"f": b"2"}))
    dy_cli("import", str(src), "dang:1")   # the first one is now dangling
    ids = dy_cli("images", "--filter", "dangling=true", "-q").stdout.split()
    assert ids
    for i in ids:
        dy_cli("rmi", i)
    assert dy_cli("images", "--filter", "dangling=true", "-q").stdout == ""
    out = dy_cli("system", "df").stdout.splitlines()
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert out[1].startswith("Images")
    v = dy_cli("system", "df", "-v").stdout
    assert "Images space usage:" in v and "Containers space usage:" in v and "dang" in v
    d = json.loads(subprocess.run(["/usr/bin/docker", "system", "df", "--format", "{{json .}}"],
                                  capture_output=True, text=True, env=daemon.env()).stdout.splitlines()[0])
    assert d["Type"] == "Images"
    dy_cli("rmi", "dang:1")


def _untar(chunks) -> dict[str, bytes]:
    tf = tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))
    return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}   # type: ignore[union-attr]


def test_archives_through_volumes_binds_and_tmpfs(client, tmp_path, docker_cli, dy_cli):
    """GET/HEAD/PUT /archive see what the container sees at a path: its volumes (anonymous and
    named), binds and (running) tmpfs mounts — running, exited and never started; read-only mounts
    and a read-only root refuse a copy into them, with dockerd's words."""
    import docker
    host = tmp_path / "bound"
    host.mkdir()
    (host / "h.txt").write_text("from-host")
    c = client.containers.run("busybox", ["sh", "-c", "echo anon > /vol1/data.txt; echo named > /named/n.txt; "
                                          "echo tmp > /t/t.txt; ln -s /etc /vol1/etc; sleep 300"],
                              detach=True, network_mode="none", volumes=["/vol1", "arcvol:/named", f"{host}:/b"],
                              tmpfs={"/t": ""})
    try:
        from ..helpers import until
        until(lambda: c.exec_run(["cat", "/t/t.txt"]).exit_code == 0, "the container's files")
        api = client.api
        for path, name, want in (("/vol1/data.txt", "data.txt", b"anon\n"), ("/named/n.txt", "n.txt", b"named\n"),
                                 ("/b/h.txt", "h.txt", b"from-host"), ("/t/t.txt", "t.txt", b"tmp\n")):
            strm, st = api.get_archive(c.id, path)
            assert st["name"] == name and st["size"] == len(want)
            assert _untar(strm) == {name: want}, path
        # a symlink inside a volume resolves inside the container, never on the host
        strm, st = api.get_archive(c.id, "/vol1/etc/passwd")
        assert b"root:x:0:0" in _untar(strm)["passwd"] and st["name"] == "passwd"
        assert api.put_archive(c.id, "/vol1", _tar({"in.txt": b"put-into-volume"}))
        assert api.put_archive(c.id, "/b", _tar({"in.txt": b"put-into-bind"}))
        assert api.put_archive(c.id, "/t", _tar({"in.txt": b"put-into-tmpfs"}))
        out = c.exec_run(["sh", "-c", "cat /vol1/in.txt /b/in.txt /t/in.txt"]).output
        assert out == b"put-into-volumeput-into-bindput-into-tmpfs"
        assert (host / "in.txt").read_text() == "put-into-bind"
        assert not any(d["Path"].startswith(("/vol1/", "/b/")) for d in (c.diff() or []))   # not the container layer
        c.stop(timeout=1)
        strm, _ = api.get_archive(c.id, "/named/n.txt")   # exited: the volume mounted into our view
        assert _untar(strm) == {"n.txt": b"named\n"}
        assert api.put_archive(c.id, "/named", _tar({"late.txt": b"late"}))
        strm, _ = api.get_archive(c.id, "/b/in.txt")
        assert _untar(strm) == {"in.txt": b"put-into-bind"}
        # the docker CLI and ours: cp out of a volume of an exited container
        for run in (docker_cli, dy_cli):
            run("cp", f"{c.id}:/named/late.txt", str(tmp_path / "late.txt"))
            assert (tmp_path / "late.txt").read_text() == "late"
            (tmp_path / "late.txt").unlink()
    finally:
        c.remove(force=True, v=True)
    # never started: a copy into a volume lands in the volume (docker-py's test_copy_file_to_container)
    n = client.api.create_container("busybox", ["cat", "/vol1/f.txt"], volumes=["/vol1"],
                                    host_config=client.api.create_host_config(network_mode="none"))
    assert client.api.put_archive(n["Id"], "/vol1", _tar({"f.txt": b"Deaf To All But The Song"}))
    client.api.start(n["Id"])
    assert client.api.wait(n["Id"])["StatusCode"] == 0
    assert client.api.logs(n["Id"]) == b"Deaf To All But The Song"
    client.api.remove_container(n["Id"], v=True)
    n = client.api.create_container("busybox", ["true"], host_config=client.api.create_host_config(
        network_mode="none", read_only=True, binds={str(host): {"bind": "/ro", "mode": "ro"}}))
    try:
        for path, msg in (("/ro", "mounted volume is marked read-only"), ("/tmp", "container rootfs is marked read-only")):
            with pytest.raises(docker.errors.APIError) as e:
                client.api.put_archive(n["Id"], path, _tar({"x": b"x"}))
            assert msg in str(e.value.explanation)
        assert not (host / "x").exists()
    finally:
        client.api.remove_container(n["Id"])
        client.volumes.get("arcvol").remove()
