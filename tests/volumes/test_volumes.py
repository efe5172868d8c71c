"""Issue 11, first part: named and anonymous volumes of the local driver, binds, tmpfs,
--volumes-from, copy-up, rm -v, the book's backup recipe — with docker-py, the docker CLI and
dockyard as clients, the effects read inside the containers and on the host."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import docker
import pytest

from ..helpers import BIN, DOCKER, mounts_under

pytestmark = pytest.mark.root


def _run(c: docker.DockerClient, cmd: str, **kw) -> tuple[int, str]:
    ctr = c.containers.run("busybox", ["sh", "-c", cmd], detach=True, **kw)
    code = ctr.wait(timeout=60)["StatusCode"]
    out = ctr.logs().decode()
    ctr.remove()
    return code, out


def _image_with_data(c: docker.DockerClient, busybox_tar) -> str:
    """busybox plus /data/f (uid 1234, gid 99, mode 0640, "payload") and /evil → /hostdir."""
    buf = io.BytesIO()
    with tarfile.open(busybox_tar) as src, tarfile.open(fileobj=buf, mode="w") as t:
        for m in src.getmembers():
            t.addfile(m, src.extractfile(m) if m.isreg() else None)
        d = tarfile.TarInfo("data")
        d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o750, 1234, 99
        t.addfile(d)
        f = tarfile.TarInfo("data/f")
        f.size, f.mode, f.uid, f.gid = 7, 0o640, 1234, 99
        t.addfile(f, io.BytesIO(b"payload"))
        s = tarfile.TarInfo("evil")
        s.type, s.linkname = tarfile.SYMTYPE, "/hostdir"
        t.addfile(s)
    c.api.import_image_from_data(buf.getvalue(), repository="withdata", tag="1")
    return "withdata:1"


def test_named_volumes_outlive_containers_and_are_listed(fresh_daemon):
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    v = c.volumes.create("keep", labels={"app": "db"})
    a = c.api.inspect_volume("keep")
    assert a["Mountpoint"] == str(d.data_root / "volumes" / "keep" / "_data") and a["Scope"] == "local"
    assert a["Driver"] == "local" and a["Labels"] == {"app": "db"} and a["CreatedAt"]
    assert _run(c, "echo kept > /v/file", volumes=["keep:/v"])[0] == 0
    assert _run(c, "cat /v/file", volumes=["keep:/v"]) == (0, "kept\n")
    assert (d.data_root / "volumes" / "keep" / "_data" / "file").read_text() == "kept\n"
    c.volumes.create("other")
    assert [x.name for x in c.volumes.list(filters={"label": "app=db"})] == ["keep"]
    assert sorted(x.name for x in c.volumes.list(filters={"name": "ee"})) == ["keep"]
    user = c.containers.create("busybox", ["true"], volumes=["keep:/v"])
    assert [x.name for x in c.volumes.list(filters={"dangling": True})] == ["other"]
    with pytest.raises(docker.errors.APIError) as e:
        v.remove()
    assert e.value.status_code == 409 and "volume is in use" in str(e.value.explanation) and user.id in str(e.value)
    mounts = c.api.inspect_container(user.id)["Mounts"]
    assert mounts == [{"Type": "volume", "Name": "keep", "Source": a["Mountpoint"], "Destination": "/v",
                       "Mode": "z", "RW": True, "Propagation": "", "Driver": "local"}], mounts
    user.remove()
    for bad, code, msg in (({"Name": "bad/name"}, 400, "invalid characters"),
                           ({"Name": "xx", "Driver": "nosuch"}, 404, "plugin \"nosuch\" not found"),
                           ({"Name": "xx", "DriverOpts": {"bogus": "1"}}, 400, "invalid option key")):
        r = c.api._post_json(c.api._url("/volumes/create"), data=bad)
        assert r.status_code == code and msg in r.json()["message"], r.text
    assert sorted(c.api.prune_volumes()["VolumesDeleted"]) == ["keep", "other"]   # API 1.41: every unused one
    assert c.volumes.list() == []
    assert not (d.data_root / "volumes" / "keep").exists()
    env = d.env()
    dy = [str(BIN / "dockyard")]
    out = subprocess.run([*dy, "volume", "create", "--label", "k=v", "clivol"], env=env, capture_output=True, text=True)
    assert out.stdout == "clivol\n", out.stderr
    out = subprocess.run([*dy, "volume", "ls"], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["DRIVER", "VOLUME", "NAME", "local", "clivol"], out.stdout
    out = subprocess.run([*dy, "volume", "inspect", "-f", "{{.Labels.k}} {{.Driver}}", "clivol"], env=env,
                         capture_output=True, text=True)
    assert out.stdout == "v local\n", out.stdout + out.stderr
    if DOCKER:
        out = subprocess.run([DOCKER, "volume", "ls", "-q"], env=env, capture_output=True, text=True)
        assert out.stdout == "clivol\n", out.stdout + out.stderr
        out = subprocess.run([DOCKER, "run", "--rm", "-v", "clivol:/x", "busybox", "sh", "-c", "echo hi > /x/a"],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    out = subprocess.run([*dy, "volume", "rm", "clivol"], env=env, capture_output=True, text=True)
    assert out.stdout == "clivol\n", out.stderr
    c.close()


def test_copy_up_nocopy_and_symlinked_targets(fresh_daemon, busybox_tar):
    """A new volume is filled from the image (owner, group, mode kept), not with nocopy; a target
    that is a symlink to /hostdir in the image lands in the container's /hostdir, never the host's."""
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    img = _image_with_data(c, busybox_tar)
    ctr = c.containers.run(img, ["sh", "-c", "stat -c '%u %g %a' /data /data/f; cat /data/f"], detach=True,
                           volumes=["fresh:/data"])
    ctr.wait()
    assert ctr.logs().decode() == "1234 99 750\n1234 99 640\npayload", ctr.logs()
    ctr.remove()
    f = d.data_root / "volumes" / "fresh" / "_data" / "f"
    assert f.read_bytes() == b"payload" and os.stat(f).st_uid == 1234 and oct(os.stat(f).st_mode)[-3:] == "640"
    ctr = c.containers.run(img, ["ls", "-A", "/data"], detach=True,
                           mounts=[docker.types.Mount("/data", "empty", no_copy=True)])
    ctr.wait()
    assert ctr.logs() == b""
    ctr.remove()
    assert not os.path.exists("/hostdir")
    ctr = c.containers.run(img, ["sh", "-c", "echo inside > /evil/x; cat /hostdir/x"], detach=True,
                           volumes=["sym:/evil"])
    ctr.wait()
    assert ctr.logs() == b"inside\n"
    ctr.remove()
    assert not os.path.exists("/hostdir"), "a mount target followed a symlink out of the container"
    assert (d.data_root / "volumes" / "sym" / "_data" / "x").read_text() == "inside\n"
    for bad in (["v:/a/../etc"], ["v:relative"], ["/:/"]):
        with pytest.raises(docker.errors.APIError) as e:
            c.containers.create("busybox", ["true"], volumes=bad)
        assert e.value.status_code == 400, bad
    c.close()


def test_binds_tmpfs_and_read_only(fresh_daemon, tmp_path):
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    host = tmp_path / "h"
    host.mkdir()
    (host / "in").write_text("from host")
    code, out = _run(c, "cat /h/in; echo x > /h/out || echo read-only", volumes=[f"{host}:/h:ro"])
    assert "from host" in out and "Read-only file system" in out and "read-only" in out, out
    assert _run(c, "echo back > /h/out", volumes=[f"{host}:/h"])[0] == 0
    assert (host / "out").read_text() == "back\n"
    made = tmp_path / "made" / "here"
    assert _run(c, "true", volumes=[f"{made}:/m"])[0] == 0 and made.is_dir()   # -v makes a missing source
    with pytest.raises(docker.errors.APIError) as e:
        c.containers.create("busybox", ["true"], mounts=[docker.types.Mount("/m", str(tmp_path / "nosuch"), "bind")])
    assert e.value.status_code == 400 and "bind source path does not exist" in str(e.value.explanation)
    code, out = _run(c, "grep ' /t ' /proc/mounts; grep ' /u ' /proc/mounts", tmpfs={"/t": "size=1m,mode=1770"},
                     mounts=[docker.types.Mount("/u", None, "tmpfs", tmpfs_size=2 << 20, tmpfs_mode=0o700)])
    assert "tmpfs /t tmpfs rw,nosuid,nodev,noexec" in out and "size=1024k,mode=1770" in out, out
    assert "size=2048k,mode=700" in out, out
    code, out = _run(c, "echo x > /root-file || echo ro-root; echo y > /v/f && echo vol-ok; echo z > /t/f && echo tmp-ok",
                     read_only=True, volumes=["rw:/v"], tmpfs={"/t": ""})
    assert "ro-root" in out and "vol-ok" in out and "tmp-ok" in out, out
    with pytest.raises(docker.errors.APIError) as e:   # the host's / is private here: dockerd's refusal
        _run(c, "true", volumes=[f"{host}:/h:rshared"])
    assert "is not a shared mount" in str(e.value.explanation)
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        for prop, tag in (("rshared", "shared:"), ("rslave", "master:"), ("rprivate", None)):   # as the kernel has it
            code, out = _run(c, "grep ' /s ' /proc/self/mountinfo", volumes=[f"{shared}:/s:{prop}"])
            assert (tag in out) if tag else ("shared:" not in out and "master:" not in out), (prop, out)
    finally:
        subprocess.run(["umount", str(shared)], check=True)
    for ctr in c.containers.list(all=True):
        ctr.remove(force=True)
    ctr = c.containers.create("busybox", ["true"], volumes=[f"{host}:/h:ro,rslave"])
    m = c.api.inspect_container(ctr.id)["Mounts"][0]
    assert m == {"Type": "bind", "Source": str(host), "Destination": "/h", "Mode": "ro,rslave", "RW": False,
                 "Propagation": "rslave"}, m
    ctr.remove()
    with pytest.raises(docker.errors.NotFound):
        c.containers.create("busybox", ["true"], volume_driver="nosuch", volumes=["xx:/x"])
    c.close()
    assert not mounts_under(tmp_path / "h")


def test_anonymous_volumes_volumes_from_and_rm_v(fresh_daemon):
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    data = c.containers.create("busybox", ["true"], name="data", volumes=["/anon", "named:/named"])
    mounts = {m["Destination"]: m for m in c.api.inspect_container(data.id)["Mounts"]}
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64 and mounts["/anon"]["Type"] == "volume" and mounts["/named"]["Name"] == "named"
    assert c.api.inspect_volume(anon)["Labels"] == {"com.docker.volume.anonymous": ""}
    assert _run(c, "echo a > /anon/f; echo n > /named/f", volumes_from=["data"])[0] == 0
    code, out = _run(c, "cat /anon/f /named/f; echo x > /anon/g || echo ro", volumes_from=["data:ro"])
    assert out.startswith("a\nn\n") and "\nro\n" in out and "Read-only file system" in out, out
    data.remove(v=True)
    names = [v.name for v in c.volumes.list()]
    assert anon not in names and "named" in names   # rm -v: anonymous ones only
    c.volumes.get("named").remove()
    c.close()


@pytest.mark.parametrize("cli", ["dockyard", "docker"])
def test_the_book_s_backup_and_restore_recipe(fresh_daemon, tmp_path, cli):
    """The book's 6.x recipe, line for line: a data-volume container, a backup through
    --volumes-from into $(pwd), a restore into a new container's volume."""
    if cli == "docker" and not DOCKER:
        pytest.skip("no docker CLI")
    d = fresh_daemon()
    exe = str(BIN / "dockyard") if cli == "dockyard" else DOCKER
    env = d.env()

    def sh(*args: str) -> str:
        p = subprocess.run([exe, *args], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout
    sh("create", "-v", "/dbdata", "--name", "dbstore", "busybox", "/bin/sh")
    sh("run", "--rm", "--volumes-from", "dbstore", "busybox", "sh", "-c", "echo precious > /dbdata/db.txt")
    sh("run", "--rm", "--volumes-from", "dbstore", "-v", f"{tmp_path}:/backup", "busybox", "tar", "cvf",
       "/backup/backup.tar", "/dbdata")
    assert (tmp_path / "backup.tar").exists()
    sh("run", "-v", "/dbdata", "--name", "dbstore2", "busybox", "/bin/sh")
    sh("run", "--rm", "--volumes-from", "dbstore2", "-v", f"{tmp_path}:/backup", "busybox", "sh", "-c",
       "cd /dbdata && tar xvf /backup/backup.tar --strip 1")
    assert sh("run", "--rm", "--volumes-from", "dbstore2", "busybox", "cat", "/dbdata/db.txt") == "precious\n"
    sh("rm", "-v", "dbstore", "dbstore2")
    assert sh("volume", "ls", "-q") == ""


def test_local_driver_options_mount_a_tmpfs_while_used(fresh_daemon):
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    c.volumes.create("small", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=5m"})
    mp = c.api.inspect_volume("small")["Mountpoint"]
    code, out = _run(c, "grep ' /s ' /proc/mounts", volumes=["small:/s"])
    assert out.startswith("tmpfs /s tmpfs") and "size=5120k" in out, out
    assert mp not in mounts_under(d.data_root), "unmounted when its last container stopped"
    c.volumes.get("small").remove()
    c.close()


def test_volumes_in_system_df_and_prune_and_across_kill9(fresh_daemon):
    d = fresh_daemon()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    ctr = c.containers.run("busybox", ["sh", "-c", "head -c 100000 /dev/zero > /n/f; sleep 300"], detach=True,
                           volumes=["named:/n", "/anon"])
    anon = next(m["Name"] for m in c.api.inspect_container(ctr.id)["Mounts"] if m["Destination"] == "/anon")
    df = {v["Name"]: v["UsageData"] for v in c.api.df()["Volumes"]}
    assert df["named"]["RefCount"] == 1 and df["named"]["Size"] >= 100000 and anon in df, df
    env = d.env()
    out = subprocess.run([str(BIN / "dockyard"), "system", "df"], env=env, capture_output=True, text=True).stdout
    assert [ln.split()[:4] for ln in out.splitlines() if ln.startswith("Local")] == [["Local", "Volumes", "2", "2"]]
    d.kill9()   # volumes and their data survive a crash; the container keeps using them
    d.start()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    assert sorted(v.name for v in c.volumes.list()) == sorted(["named", anon])
    assert ctr.exec_run(["wc", "-c", "/n/f"]).output.split()[0] == b"100000"
    half = d.data_root / "volumes" / "half"   # a create cut short before its record: not a volume, data kept
    (half / "_data").mkdir(parents=True)
    (half / "_data" / "keep").write_text("x")
    ctr.remove(force=True)
    c.close()
    d.stop()
    d.start()
    c = docker.DockerClient(base_url=d.host, version="1.41")
    assert "half" not in [v.name for v in c.volumes.list()] and (half / "_data" / "keep").exists()
    out = subprocess.run([str(BIN / "dockyard"), "system", "prune", "-f", "--volumes"], env=env, capture_output=True,
                         text=True)
    assert f"Deleted Volumes:\n{anon}\n" in out.stdout, out.stdout + out.stderr
    assert [v.name for v in c.volumes.list()] == ["named"]   # named volumes are kept by system prune
    c.volumes.get("named").remove()
    c.close()


@pytest.fixture
def dirplugin(tmp_path):
    """The test plugin, discovered as dockerd finds plugins: /run/docker/plugins/<name>.sock."""
    import random

    from .dirplugin import DirPlugin
    name = f"dytest{random.randrange(16 ** 6):06x}"
    p = DirPlugin(f"/run/docker/plugins/{name}.sock", str(tmp_path / "plugin-data")).start()
    p.name = name   # type: ignore[attr-defined]
    yield p
    p.stop()


def test_a_volume_plugin_through_its_whole_cycle(fresh_daemon, dirplugin):
    """volume create -d PLUGIN, -v with --volume-driver, Mount/Unmount with the container's ID as
    mount ID at start and stop, Remove; the plugin's errors reach the client with its words."""
    d = fresh_daemon(env={"DOCKYARD_PLUGIN_TIMEOUT": "3"})
    c = docker.DockerClient(base_url=d.host, version="1.41")
    name = dirplugin.name
    v = c.volumes.create("pv", driver=name, driver_opts={"size": "1"})
    assert v.attrs["Driver"] == name and dirplugin.volumes == {"pv": {"size": "1"}}
    ctr = c.containers.run("busybox", ["sh", "-c", "echo via-plugin > /p/f; sleep 300"], detach=True,
                           volumes=["pv:/p"])
    assert dirplugin.mounts["pv"] == {ctr.id}
    assert c.api.inspect_container(ctr.id)["Mounts"][0]["Driver"] == name
    import time
    deadline = time.time() + 5
    while not os.path.exists(os.path.join(dirplugin.base, "pv", "f")) and time.time() < deadline:
        time.sleep(0.1)
    assert open(os.path.join(dirplugin.base, "pv", "f")).read() == "via-plugin\n"
    ctr.remove(force=True)
    assert dirplugin.mounts["pv"] == set(), "Unmount with the same mount ID at stop"
    out = c.containers.run("busybox", ["cat", "/q/f"], remove=True, volumes=["pv:/q"])
    assert out == b"via-plugin\n"
    out = c.containers.run("busybox", ["sh", "-c", "echo x > /a/g"], remove=True, volume_driver=name,
                           volumes=["auto:/a"])
    assert "auto" in dirplugin.volumes and c.api.inspect_volume("auto")["Driver"] == name
    dirplugin.volumes["outside"] = {}   # made behind our back: listed (VolumeDriver.List) and inspected (Get)
    assert "outside" in [x.name for x in c.volumes.list()]
    assert c.api.inspect_volume("outside")["Driver"] == name
    v.remove()
    assert "pv" not in dirplugin.volumes and ("VolumeDriver.Remove", {"Name": "pv"}) in dirplugin.calls
    dirplugin.mode = "error"
    with pytest.raises(docker.errors.APIError) as e:
        c.volumes.create("refused", driver=name)
    assert "dirplugin refuses VolumeDriver.Create" in str(e.value.explanation)
    assert "refused" not in [x.name for x in c.volumes.list()]
    with pytest.raises(docker.errors.APIError) as e:
        c.containers.run("busybox", ["true"], volumes=["auto:/a"])
    assert "dirplugin refuses VolumeDriver.Mount" in str(e.value.explanation), e.value
    with pytest.raises(docker.errors.NotFound):
        c.volumes.create("x1", driver="nosuchplugin")
    for ctr in c.containers.list(all=True):
        ctr.remove(force=True)
    dirplugin.mode = "ok"
    c.volumes.get("auto").remove()
    c.close()


def test_a_plugin_that_hangs_or_goes_away_wedges_nothing(fresh_daemon, dirplugin):
    d = fresh_daemon(env={"DOCKYARD_PLUGIN_TIMEOUT": "4"})
    c = docker.DockerClient(base_url=d.host, version="1.41")
    c.volumes.create("hv", driver=dirplugin.name)
    dirplugin.mode = "hang"
    import threading
    import time
    errors: list[str] = []

    def start_hung() -> None:
        try:
            c.containers.run("busybox", ["true"], volumes=["hv:/h"], remove=True)
        except docker.errors.APIError as e:
            errors.append(str(e.explanation))
    t = threading.Thread(target=start_hung)
    t.start()
    time.sleep(0.5)
    assert c.containers.run("busybox", ["echo", "others-run"], remove=True) == b"others-run\n"
    assert t.is_alive() and not errors, "the other container ran while the plugin's Mount still hung"
    t.join(30)
    assert errors and "did not answer within 4s" in errors[0], errors
    dirplugin.mode = "ok"
    ctr = c.containers.run("busybox", ["sleep", "300"], detach=True, volumes=["hv:/h"])
    dirplugin.stop()   # the plugin goes away while the volume is in use
    ctr.remove(force=True)   # its Unmount fails: logged, the removal completes
    assert c.containers.list(all=True) == [] or all(x.id != ctr.id for x in c.containers.list(all=True))
    assert "releasing volume hv" in d.log.read_text()
    c.close()


def test_mounts_in_inspect_as_dockerd_reports_them(fresh_daemon, real_docker, busybox_tar, tmp_path):
    """The same `docker create` (named, bind ro+rslave, anonymous, --mount tmpfs and volume
    nocopy) against dockerd and dockyardd: the same Mounts, but for the paths under each data root."""
    d = fresh_daemon()
    host = tmp_path / "hostdir"
    host.mkdir()
    args = ["create", "-v", "cmpnamed:/n", "-v", f"{host}:/h:ro,rslave", "-v", "/anon", "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m", "--mount", "type=volume,src=cmpmv,dst=/m,volume-nocopy",
            "busybox", "true"]
    seen = []
    for engine in ("dockerd", "dockyard"):
        if engine == "dockerd":
            real_docker.docker("import", str(busybox_tar), "busybox:latest")

            def run(*a: str) -> str:
                return real_docker.docker(*a).stdout.decode()
        else:
            def run(*a: str) -> str:
                return subprocess.run([DOCKER, *a], env=d.env(), check=True, capture_output=True).stdout.decode()
        cid = run(*args).strip()
        import json
        mounts = json.loads(run("inspect", "-f", "{{json .Mounts}}", cid))
        for m in mounts:
            if m["Type"] == "volume":
                assert m["Source"].endswith(f"/volumes/{m['Name']}/_data"), m
                m["Source"] = "<data-root>/volumes/NAME/_data"
                if len(m["Name"]) == 64:
                    m["Name"] = "<anonymous>"
        seen.append(sorted(mounts, key=lambda m: m["Destination"]))
        run("rm", "-v", cid)
        run("volume", "rm", "cmpnamed", "cmpmv")
    for a, b in zip(seen[0], seen[1], strict=True):
        assert a == b, (a, b)
