"""Debian's docker CLI (API 1.41) against dockyardd, unchanged."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.root


def test_run_rm_echo(docker_cli):
    p = docker_cli("run", "--rm", "busybox", "echo", "hello")
    assert p.stdout == "hello\n"


def test_run_exit_code_and_streams(docker_cli):
    p = docker_cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 42", check=False)
    assert p.returncode == 42
    assert p.stdout == "out\n" and p.stderr == "err\n"


def test_run_missing_command_exit_127(docker_cli):
    p = docker_cli("run", "--rm", "busybox", "nosuchcommand", check=False)
    assert p.returncode == 127
    assert "executable file not found" in p.stderr


def test_lifecycle_ps_logs_inspect_rm(docker_cli):
    cid = docker_cli("run", "-d", "--name", "cli1", "-l", "k=v", "busybox", "sh", "-c", "echo started; sleep 30").stdout.strip()
    assert len(cid) == 64
    ps = docker_cli("ps", "--no-trunc", "--format", "{{.ID}} {{.Names}} {{.Label \"k\"}}").stdout
    assert f"{cid} cli1 v" in ps
    import time
    time.sleep(0.3)
    assert docker_cli("logs", "cli1").stdout == "started\n"
    st = docker_cli("inspect", "-f", "{{.State.Status}} {{.Config.Labels.k}}", "cli1").stdout.strip()
    assert st == "running v"
    docker_cli("stop", "-t", "1", "cli1")
    assert docker_cli("inspect", "-f", "{{.State.ExitCode}}", "cli1").stdout.strip() == "137"
    ps = docker_cli("ps", "-a", "--filter", "name=cli1").stdout
    assert "Exited (137)" in ps
    docker_cli("rename", "cli1", "cli2")
    docker_cli("start", "cli2")
    docker_cli("kill", "-s", "KILL", "cli2")
    assert docker_cli("wait", "cli2").stdout.strip() == "137"
    assert docker_cli("rm", "cli2").stdout.strip() == "cli2"
    p = docker_cli("rm", "cli2", check=False)
    assert p.returncode == 1 and "No such container" in p.stderr


def test_images_tag_rmi_history(docker_cli, busybox_tar):
    out = docker_cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "busybox:latest" in out
    docker_cli("tag", "busybox", "localhost:5000/my/bb:1")
    out = docker_cli("images", "localhost:5000/my/bb").stdout
    assert "localhost:5000/my/bb" in out and "1" in out
    h = docker_cli("history", "busybox").stdout
    assert "IMAGE" in h.splitlines()[0] and "Imported from" in h
    res = docker_cli("rmi", "localhost:5000/my/bb:1").stdout
    assert "Untagged: localhost:5000/my/bb:1" in res
    ins = json.loads(docker_cli("image", "inspect", "busybox").stdout)
    assert ins[0]["RepoTags"] == ["busybox:latest"]


def test_import_with_change(docker_cli, busybox_tar):
    p = docker_cli("import", "-c", "CMD [\"echo\", \"imported\"]", "-m", "msg", str(busybox_tar), "imp:one")
    assert p.stdout.startswith("sha256:")
    assert docker_cli("run", "--rm", "imp:one").stdout == "imported\n"
    docker_cli("rmi", "imp:one")


def test_container_prune_and_image_prune(docker_cli):
    docker_cli("run", "--name", "pr1", "busybox", "true")
    out = docker_cli("container", "prune", "-f").stdout
    assert "Total reclaimed space" in out
    assert docker_cli("ps", "-aq", "--filter", "name=pr1").stdout == ""
    out = docker_cli("image", "prune", "-f").stdout
    assert "Total reclaimed space" in out


def test_error_shapes(docker_cli):
    p = docker_cli("inspect", "nosuchthing", check=False)
    assert p.returncode == 1
    p = docker_cli("run", "--name", "bad name", "busybox", "true", check=False)
    assert p.returncode == 125 and "Invalid container name" in p.stderr
    p = docker_cli("kill", "-s", "NOPE", "nosuch", check=False)
    assert p.returncode == 1


def test_docker_load_save_and_a_bad_archive(docker_cli, tmp_path):
    out = tmp_path / "bb.tar"
    docker_cli("save", "-o", str(out), "busybox")
    assert "Loaded image: busybox:latest" in docker_cli("load", "-i", str(out)).stdout
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    p = docker_cli("load", "-i", str(bad), check=False)
    assert p.returncode == 1 and "invalid tar archive" in p.stderr
