"""Issue 12, bounded logs: json-file rotates at 10 MB × 3 by default, the `local` driver
(compressed rotation) and `none`, `logs -f` across rotations, attrs from labels/env/tag."""

from __future__ import annotations

import gzip
import json
import os
import subprocess

import docker
import pytest

from ..helpers import DOCKER

pytestmark = pytest.mark.root

# 36.4 MB of 91-byte lines as fast as busybox writes them
FLOOD = ["sh", "-c", "yes 012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 "
         "| head -n 400000; echo END"]


def _sizes(path: str) -> dict[str, int]:
    d = os.path.dirname(path)
    return {n: os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.startswith(os.path.basename(path))}


def test_json_file_bounded_by_default(client):
    c = client.containers.run("busybox", FLOOD, detach=True, network_mode="none")
    try:
        assert c.wait(timeout=120)["StatusCode"] == 0
        info = client.api.inspect_container(c.id)
        # reported as asked (nothing), as dockerd; written with Dockyard's bound, 10m × 3
        assert info["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
        sizes = _sizes(info["LogPath"])
        base = os.path.basename(info["LogPath"])
        assert set(sizes) == {base, base + ".1", base + ".2"}, sizes
        assert all(v <= 10 * 1024 * 1024 for v in sizes.values()) and sum(sizes.values()) > 20 * 1024 * 1024
        assert c.logs(tail=1) == b"END\n"
        lines = c.logs(stdout=True, stderr=False).splitlines()   # read back in order across the files
        assert lines[-1] == b"END" and len(lines) > 130_000 and all(len(x) == 90 for x in lines[:-1])
    finally:
        c.remove(force=True)


def test_local_driver_compresses_and_follows(client):
    lc = docker.types.LogConfig(type="local", config={"max-size": "20k", "max-file": "4"})
    script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); [ $((i % 100)) = 0 ] && sleep 0.02; done"
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True, network_mode="none", log_config=lc)
    try:
        got = [x.decode() for x in c.logs(stream=True, follow=True)]   # follows across ~10 rotations
        lines = "".join(got).splitlines()
        assert lines == [f"line{i}" for i in range(3000)], (len(lines), lines[:3], lines[-3:])
        info = client.api.inspect_container(c.id)
        assert info["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {"max-size": "20k", "max-file": "4"}}
        path = info["LogPath"]
        assert path.endswith("/local-logs/container.log")
        for _ in range(50):   # the compressor thread may still be at work
            sizes = _sizes(path)
            if not any(".rotating." in n for n in sizes):
                break
            import time
            time.sleep(0.1)
        assert set(sizes) == {"container.log", "container.log.1.gz", "container.log.2.gz", "container.log.3.gz"}, sizes
        with gzip.open(path + ".1.gz") as f:
            first = json.loads(f.readline())
        assert first["stream"] == "stdout" and first["log"].startswith("line")
        kept = c.logs().decode().splitlines()
        assert kept[-1] == "line2999" and kept == [f"line{i}" for i in range(3000 - len(kept), 3000)]
        assert c.logs(tail=2) == b"line2998\nline2999\n"
    finally:
        c.remove(force=True)


def test_json_file_follow_across_rotation_and_attrs(client):
    lc = docker.types.LogConfig(type="json-file", config={"max-size": "8k", "max-file": "2", "labels": "app",
                                                         "env": "STAGE", "tag": "{{.Name}}"})
    # bursts of ~2 KB: a follower keeps up (one that falls two files behind loses lines, as with dockerd)
    script = "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); [ $((i % 10)) = 0 ] && sleep 0.01; done"
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True, network_mode="none", log_config=lc,
                              labels={"app": "web", "other": "x"}, environment={"STAGE": "prod"}, name="tagged")
    try:
        lines = b"".join(c.logs(stream=True, follow=True)).decode().splitlines()
        assert lines == [f"line{i}" for i in range(1000)], (len(lines), lines[:3], lines[-3:])
        path = client.api.inspect_container(c.id)["LogPath"]
        with open(path) as f:
            rec = json.loads(f.readline())
        assert rec["attrs"] == {"app": "web", "STAGE": "prod", "tag": "tagged"}
        # --details: the attrs first, sorted and query-escaped, then the line (after the timestamp)
        api = client.api   # docker-py's logs() has no `details`: ask the endpoint itself
        res = api._get(api._url("/containers/{0}/logs", c.id),
                       params={"stdout": 1, "stderr": 1, "details": 1, "tail": 1, "timestamps": 1})
        last = api._get_result(c.id, False, res).decode()
        assert last.split(" ", 1)[1] == "STAGE=prod,app=web,tag=tagged line999\n", last
    finally:
        c.remove(force=True)


def test_none_driver_and_refusals(client):
    c = client.containers.run("busybox", ["echo", "hi"], detach=True, network_mode="none",
                              log_config=docker.types.LogConfig(type="none"))
    try:
        assert c.wait()["StatusCode"] == 0
        with pytest.raises(docker.errors.APIError) as e:
            c.logs()
        assert e.value.status_code == 501 and "configured logging driver does not support reading" in str(e.value)
        assert client.api.inspect_container(c.id)["LogPath"] == ""
        assert not any(n.endswith(".log") for n in os.listdir(os.path.dirname(
            client.api.inspect_container(c.id)["ResolvConfPath"])))
    finally:
        c.remove(force=True)
    for lc, msg in ((docker.types.LogConfig(type="gelf"), "gelf"),
                    (docker.types.LogConfig(type="none", config={"max-size": "1m"}), "unknown log opt 'max-size'"),
                    (docker.types.LogConfig(type="local", config={"compress": "maybe"}), "not a boolean")):
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create("busybox", ["true"], log_config=lc)
        assert e.value.status_code == 400 and msg in str(e.value)


@pytest.mark.skipif(not DOCKER, reason="Debian's docker CLI is not installed")
def test_docker_cli_logs_of_none_driver(daemon, client):
    env = daemon.env()
    run = subprocess.run([DOCKER, "run", "-d", "--log-driver", "none", "--network", "none", "busybox", "echo", "x"],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        out = subprocess.run([DOCKER, "logs", cid], env=env, capture_output=True, text=True)
        assert out.returncode == 1
        assert "configured logging driver does not support reading" in out.stderr, out.stderr
    finally:
        client.api.remove_container(cid, force=True)


def test_daemon_default_driver(fresh_daemon):
    d = fresh_daemon("--log-driver", "local", "--log-opt", "max-size=1m")
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        assert c.info()["LoggingDriver"] == "local"
        out = c.containers.run("busybox", ["echo", "hello"], network_mode="none", detach=True)
        out.wait()
        assert c.api.inspect_container(out.id)["HostConfig"]["LogConfig"] == {"Type": "local",
                                                                               "Config": {"max-size": "1m"}}
        assert out.logs() == b"hello\n"
        out.remove()
    finally:
        c.close()
