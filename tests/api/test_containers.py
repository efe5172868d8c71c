"""Container endpoints via docker-py."""

from __future__ import annotations

import time

import docker
import pytest

pytestmark = pytest.mark.root


def test_run_output_and_exit_code(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo hello; echo oops >&2"], remove=True,
                                stdout=True, stderr=True)
    assert b"hello" in out and b"oops" in out
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("busybox", ["sh", "-c", "exit 7"], remove=True)
    assert e.value.exit_status == 7


def test_create_options_reach_the_process(client):
    c = client.containers.run(
        "busybox", ["sh", "-c", "echo $FOO; pwd; id -u; id -g; hostname; cat /etc/hostname; echo $PATH"],
        environment={"FOO": "bar"}, working_dir="/tmp", user="33:33", hostname="myhost", detach=True,
        labels={"app": "t"}, stop_signal="SIGUSR1")
    assert c.wait()["StatusCode"] == 0
    lines = c.logs().decode().split()
    assert lines[:6] == ["bar", "/tmp", "33", "33", "myhost", "myhost"]
    assert lines[6] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    c.reload()
    a = c.attrs
    assert a["Config"]["Labels"] == {"app": "t"}
    assert a["Config"]["StopSignal"] == "SIGUSR1"
    assert a["Config"]["User"] == "33:33"
    assert a["Config"]["Env"] == ["FOO=bar"]   # the default PATH is the process's only, as dockerd
    c.remove()


def test_user_by_name_and_groups(client):
    out = client.containers.run("busybox", ["id"], user="www-data", remove=True)
    assert out.split()[:2] == [b"uid=33(www-data)", b"gid=33(www-data)"]
    out = client.containers.run("busybox", ["id"], user="root", remove=True)
    assert b"uid=0(root) gid=0(root)" in out and b"10(wheel)" in out
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.run("busybox", ["id"], user="nosuchuser", remove=True)
    assert "no matching entries in passwd file" in str(e.value)


def test_entrypoint_and_cmd_merge(client):
    out = client.containers.run("busybox", ["a", "b"], entrypoint=["echo", "ep"], remove=True)
    assert out.strip() == b"ep a b"
    c = client.containers.create("busybox", entrypoint=["echo"], command=["x"])
    assert c.attrs["Path"] == "echo" and c.attrs["Args"] == ["x"]
    c.remove()


def test_inspect_shape(client):
    c = client.containers.create("busybox", ["sleep", "30"], name="shape")
    a = client.api.inspect_container(c.id)
    for k in ("Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount", "Config", "HostConfig",
              "Mounts", "GraphDriver", "LogPath", "NetworkSettings"):
        assert k in a, k
    assert a["Name"] == "/shape"
    assert a["State"]["Status"] == "created" and a["State"]["Running"] is False
    assert a["State"]["StartedAt"].startswith("0001-")
    c.start()
    a = client.api.inspect_container(c.id)
    assert a["State"]["Status"] == "running" and a["State"]["Running"] and a["State"]["Pid"] > 0
    assert a["GraphDriver"]["Data"]["MergedDir"].endswith("rootfs")
    c.stop(timeout=1)
    a = client.api.inspect_container(c.id)
    assert a["State"]["Status"] == "exited" and a["State"]["ExitCode"] == 137
    assert not a["State"]["FinishedAt"].startswith("0001-")
    c.remove()


def test_stop_uses_stop_signal_and_timeout(client):
    c = client.containers.run("busybox", ["sh", "-c", "trap 'echo got TERM; exit 5' TERM; while true; do sleep 0.1; done"],
                              detach=True)
    time.sleep(0.5)
    c.stop(timeout=5)
    assert c.wait()["StatusCode"] == 5
    assert b"got TERM" in c.logs()
    c.remove()


def test_kill_signal_and_exit_code_128_plus_n(client):
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    c.kill(signal="SIGKILL")
    assert c.wait()["StatusCode"] == 137
    with pytest.raises(docker.errors.APIError) as e:
        c.kill()
    assert e.value.status_code == 409
    c.remove()


def test_bad_signal_is_400(client):
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    with pytest.raises(docker.errors.APIError) as e:
        c.kill(signal="SIGNOPE")
    assert e.value.status_code == 400
    c.remove(force=True)


def test_start_stop_not_modified(client):
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    r = client.api._post(client.api._url("/containers/{0}/start", c.id))
    assert r.status_code == 304
    c.kill()
    c.wait()
    r = client.api._post(client.api._url("/containers/{0}/stop", c.id))
    assert r.status_code == 304
    c.remove()


def test_restart(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo run; sleep 30"], detach=True)
    time.sleep(0.3)
    pid1 = client.api.inspect_container(c.id)["State"]["Pid"]
    c.restart(timeout=0)
    a = client.api.inspect_container(c.id)
    assert a["State"]["Running"] and a["State"]["Pid"] != pid1
    time.sleep(0.3)
    assert c.logs().count(b"run") == 2
    c.remove(force=True)


def test_wait_conditions(client):
    c = client.containers.create("busybox", ["sh", "-c", "exit 3"])
    c.start()
    assert c.wait(condition="not-running")["StatusCode"] == 3
    c.remove()


def test_autoremove(client):
    c = client.containers.run("busybox", ["true"], detach=True, auto_remove=True)
    client.api.wait(c.id, condition="removed")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c.id)


def test_remove_running_needs_force(client):
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    with pytest.raises(docker.errors.APIError) as e:
        c.remove()
    assert e.value.status_code == 409
    c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(c.id)


def test_list_filters(client):
    a = client.containers.run("busybox", ["sh", "-c", "exit 2"], detach=True, name="fa", labels={"grp": "x"})
    b = client.containers.run("busybox", ["sleep", "30"], detach=True, name="fb", labels={"grp": "y"})
    a.wait()
    ids = lambda **kw: {c.id for c in client.containers.list(all=True, **kw)}  # noqa: E731
    assert b.id in {c.id for c in client.containers.list()} and a.id not in {c.id for c in client.containers.list()}
    assert ids(filters={"label": "grp=x"}) == {a.id}
    assert ids(filters={"name": "fb"}) == {b.id}
    assert ids(filters={"status": "exited"}) >= {a.id} and b.id not in ids(filters={"status": "exited"})
    assert ids(filters={"exited": 2}) == {a.id}
    assert ids(filters={"id": a.id[:10]}) == {a.id}
    assert {a.id, b.id} <= ids(filters={"ancestor": "busybox"})
    assert a.id in ids(filters={"before": "fb"}) and b.id not in ids(filters={"before": "fb"})
    assert ids(filters={"since": "fa"}) == {b.id}
    assert len(client.containers.list(all=True, limit=1)) == 1
    assert client.containers.list(all=True, limit=1)[0].id == b.id
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.list(filters={"bogus": "1"})
    assert e.value.status_code == 400
    b.remove(force=True)
    a.remove()


def test_logs_options(client):
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo e >&2"],
                              detach=True)
    c.wait()
    assert c.logs(stdout=True, stderr=False).decode().split() == [f"line{i}" for i in range(1, 6)]
    assert c.logs(stdout=False, stderr=True) == b"e\n"
    assert c.logs(tail=2).decode().split() == ["line5", "e"]
    ts = c.logs(timestamps=True, tail=1).decode()
    assert ts[:4].isdigit() and "T" in ts.split()[0] and ts.strip().endswith("e")
    future = int(time.time()) + 100
    assert c.logs(since=future) == b""
    assert c.logs(until=1) == b""
    c.remove()


def test_logs_follow_streams_until_exit(client):
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.2; done"], detach=True)
    got = b"".join(c.logs(stream=True, follow=True))
    assert got.split() == [b"n1", b"n2", b"n3"]
    c.remove()


def test_rename_and_name_rules(client):
    c = client.containers.create("busybox", ["true"], name="oldname")
    c.rename("newname")
    assert client.containers.get("newname").id == c.id
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("oldname")
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], name="newname")
    assert e.value.status_code == 409
    for bad in ("-bad", "a", "bad name", "bad/name", "x$"):
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create("busybox", ["true"], name=bad)
        assert e.value.status_code == 400, bad
    c.remove()


def test_prune(client):
    a = client.containers.run("busybox", ["true"], detach=True, labels={"p": "1"})
    b = client.containers.run("busybox", ["sleep", "30"], detach=True)
    a.wait()
    res = client.containers.prune(filters={"label": "p=1"})
    assert res["ContainersDeleted"] == [a.id]
    assert client.containers.get(b.id)
    b.remove(force=True)


def test_bad_inputs(client, daemon):
    api = client.api
    r = api._post(api._url("/containers/create"), data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "invalid JSON" in r.json()["message"]
    r = api._post_json(api._url("/containers/create"), data={"Image": "nosuchimage"})
    assert r.status_code == 404 and "No such image" in r.json()["message"]
    r = api._post_json(api._url("/containers/create"), data={"Image": "busybox", "Cmd": 5})
    assert r.status_code == 400
    r = api._post_json(api._url("/containers/create"), data={"Image": "busybox", "Cmd": ["true"],
                                                              "HostConfig": {"NetworkMode": "nosuchnet"}})
    assert r.status_code == 201   # as dockerd: made, and its start fails while the network is missing
    with pytest.raises(docker.errors.NotFound) as e:
        api.start(r.json()["Id"])
    assert "network nosuchnet not found" in str(e.value.explanation)
    api.remove_container(r.json()["Id"])
    r = api._post_json(api._url("/containers/create"), data={"Image": "busybox", "Cmd": ["true"], "StopSignal": "BAD"})
    assert r.status_code == 400
    for path in ("/containers/nosuch/json", "/containers/nosuch/logs?stdout=1"):
        r = api._get(api._url(path))
        assert r.status_code == 404 and r.json()["message"].startswith("No such container")
    r = api._post(api._url("/containers/nosuch/start"))
    assert r.status_code == 404
    r = api._post(api._url("/containers/nosuch/wait"))
    assert r.status_code == 404
    r = api.delete(api._url("/containers/nosuch"))
    assert r.status_code == 404
    r = api._get(api._url("/containers/json"), params={"filters": "{bad"})
    assert r.status_code == 400


def test_missing_command_is_start_error(client):
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.run("busybox", ["/nonexistent"], remove=True)
    assert e.value.status_code == 400
    assert "no such file or directory" in str(e.value)


def test_network_modes(client):
    out = client.containers.run("busybox", ["cat", "/proc/net/dev"], network_mode="none", remove=True).decode()
    assert "lo:" in out and "eth0" not in out
    import socket
    out = client.containers.run("busybox", ["hostname"], network_mode="host", remove=True).decode().strip()
    assert out == socket.gethostname()


def test_log_config_rotation_and_bad_options(client):
    import docker as _docker
    c = client.containers.run("busybox", ["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line$i; i=$((i+1)); done"],
                              detach=True, log_config=_docker.types.LogConfig(
                                  type="json-file", config={"max-size": "4k", "max-file": "2"}))
    assert c.wait()["StatusCode"] == 0
    path = client.api.inspect_container(c.id)["LogPath"]
    import os
    assert os.path.getsize(path) <= 4096 and os.path.exists(path + ".1") and not os.path.exists(path + ".2")
    lines = c.logs().decode().splitlines()
    assert lines and lines[-1] == "line399" and len(lines) < 400   # the oldest fell off
    assert [int(x[4:]) for x in lines] == list(range(400 - len(lines), 400))
    assert client.api.inspect_container(c.id)["HostConfig"]["LogConfig"] == \
        {"Type": "json-file", "Config": {"max-size": "4k", "max-file": "2"}}
    c.remove()
    with pytest.raises(_docker.errors.APIError) as e:
        client.containers.create("busybox", ["true"], log_config=_docker.types.LogConfig(type="json-file",
                                                                                config={"max-size": "huge"}))
    assert e.value.status_code == 400 and "invalid size" in str(e.value)


def test_daemon_log_opts_are_the_default(fresh_daemon):
    import docker as _docker
    d = fresh_daemon("--log-opt", "max-file=3", config={"log-opts": {"max-size": "8k"}})
    c = _docker.DockerClient(base_url=d.host, version="auto")
    ctr = c.containers.create("busybox", ["true"])
    assert c.api.inspect_container(ctr.id)["HostConfig"]["LogConfig"] == \
        {"Type": "json-file", "Config": {"max-size": "8k", "max-file": "3"}}
    ctr.remove()
    c.close()
    with pytest.raises(RuntimeError, match="invalid size: .lots."):
        fresh_daemon(config={"log-opts": {"max-size": "lots"}}, image=False)


def test_cli_log_opts(dy_cli):
    cid = dy_cli("create", "--log-opt", "max-size=1m", "--log-opt", "max-file=2", "busybox", "true").stdout.strip()
    import json
    out = json.loads(dy_cli("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert out == {"Type": "json-file", "Config": {"max-file": "2", "max-size": "1m"}}
    dy_cli("rm", cid)
    p = dy_cli("run", "--log-driver", "syslog", "busybox", "true", check=False)
    assert p.returncode == 125 and "syslog" in p.stderr


def test_pause_unpause(client, docker_cli, tmp_path):
    c = client.containers.run("busybox", ["sh", "-c", "i=0; while true; do echo $i > /tmp/n; i=$((i+1)); sleep 0.05; done"],
                              detach=True)
    time.sleep(0.3)
    c.pause()
    st = client.api.inspect_container(c.id)["State"]
    assert st["Status"] == "paused" and st["Paused"] and st["Running"]
    pid = st["Pid"]
    n1 = open(f"/proc/{pid}/root/tmp/n").read()
    time.sleep(0.4)
    assert open(f"/proc/{pid}/root/tmp/n").read() == n1, "a paused container does not run"
    assert "(Paused)" in docker_cli("ps", "--filter", f"id={c.id}", "--format", "{{.Status}}").stdout
    with pytest.raises(docker.errors.APIError) as e:
        c.pause()
    assert e.value.status_code == 409 and "already paused" in str(e.value)
    # cp/commit on a paused container leave it paused
    docker_cli("cp", f"{c.id}:/tmp/n", str(tmp_path / "n"))
    assert (tmp_path / "n").read_text() == n1
    assert client.api.inspect_container(c.id)["State"]["Status"] == "paused"
    docker_cli("unpause", c.id)
    time.sleep(0.4)
    assert open(f"/proc/{pid}/root/tmp/n").read() != n1
    with pytest.raises(docker.errors.APIError) as e:
        c.unpause()
    assert e.value.status_code == 409 and "is not paused" in str(e.value)
    docker_cli("pause", c.id)
    c.stop(timeout=1)   # a paused container can be stopped (it is thawed to receive the signal)
    st = client.api.inspect_container(c.id)["State"]
    assert st["Status"] == "exited" and not st["Paused"]
    c.remove()


def test_top(client, docker_cli, dy_cli):
    c = client.containers.run("busybox", ["sh", "-c", "sleep 1000 & sleep 1001; echo"], detach=True)
    time.sleep(0.3)
    t = c.top()
    assert t["Titles"][:2] == ["UID", "PID"] and t["Titles"][-1] == "CMD"
    cmds = sorted(p[-1] for p in t["Processes"])
    # (ps, run without a terminal as dockerd runs it, cuts lines at 80 columns)
    assert cmds[0].startswith("sh -c sleep 1000 &") and cmds[1:] == ["sleep 1000", "sleep 1001"], cmds
    t = client.api.top(c.id, ps_args="-o pid,comm")
    assert t["Titles"] == ["PID", "COMMAND"] and sorted(p[1] for p in t["Processes"]) == ["sh", "sleep", "sleep"]
    ours = dy_cli("top", c.id, "-o", "pid,comm").stdout
    theirs = docker_cli("top", c.id, "-o", "pid,comm").stdout
    assert ours == theirs and ours.startswith("PID" + " " * 17 + "COMMAND\n")
    c.kill()
    with pytest.raises(docker.errors.APIError) as e:
        c.top()
    assert e.value.status_code == 409 and "is not running" in str(e.value)
    c.remove()


def test_stats(client, docker_cli, dy_cli):
    c = client.containers.run("busybox", ["sh", "-c", "head -c 20000000 /dev/zero > /tmp/f; while :; do :; done"],
                              detach=True, name="statsbusy")
    time.sleep(1.0)
    s = c.stats(stream=False)
    assert s["id"] == c.id and s["name"] == "/statsbusy"
    assert s["pids_stats"]["current"] == 1
    assert s["memory_stats"]["usage"] > 20_000_000 > 0 < s["memory_stats"]["limit"]   # /tmp is in the container's memory
    cpu, pre = s["cpu_stats"], s["precpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > pre["cpu_usage"]["total_usage"] > 0
    assert cpu["system_cpu_usage"] > pre["system_cpu_usage"] > 0 and cpu["online_cpus"] >= 1
    pct = (cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]) / (
        cpu["system_cpu_usage"] - pre["system_cpu_usage"]) * cpu["online_cpus"] * 100
    assert pct > 30, pct   # a busy loop: most of a CPU
    one = client.api.stats(c.id, stream=False, one_shot=True)
    assert one["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and one["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    theirs = docker_cli("stats", "--no-stream", "statsbusy").stdout.splitlines()
    ours = dy_cli("stats", "--no-stream", "statsbusy").stdout.splitlines()
    # (column widths follow the values, which move between the two calls: compare the titles)
    assert ours[0].split() == theirs[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                                                    "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    for line in (theirs[1], ours[1]):
        f = line.split()
        assert f[0] == c.id[:12] and f[1] == "statsbusy" and float(f[2].rstrip("%")) > 30 and f[-1] == "1"
    stream = client.api.stats(c.id, stream=True, decode=True)
    a, b = next(stream), next(stream)
    assert b["preread"] == a["read"] and b["precpu_stats"] == a["cpu_stats"]
    stream.close()
    c.kill()
    s = c.stats(stream=False)
    assert s["read"].startswith("0001") and s["pids_stats"] == {} and s["memory_stats"] == {}
    c.remove()
