"""The `dockyard` CLI: Docker's syntax, output and exit codes."""

from __future__ import annotations

import json
import re
import time

import pytest

pytestmark = pytest.mark.root


def test_run_rm_echo_and_exit_code(dy_cli):
    assert dy_cli("run", "--rm", "busybox", "echo", "hello").stdout == "hello\n"
    p = dy_cli("run", "--rm", "busybox", "sh", "-c", "echo o; echo e >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "o\n", "e\n")
    assert dy_cli("run", "--rm", "busybox", "nosuch", check=False).returncode == 127


def test_run_flags(dy_cli, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROMFILE=1\n")
    out = dy_cli("run", "--rm", "-e", "A=b", "--env-file", str(envf), "-w", "/tmp", "-u", "33", "-h", "hx",
                 "--entrypoint", "sh", "busybox", "-c", "echo $A $FROMFILE; pwd; id -u; hostname").stdout.split()
    assert out == ["b", "1", "/tmp", "33", "hx"]


def test_detached_ps_logs_stop_rm(dy_cli):
    cid = dy_cli("run", "-d", "--name", "dy1", "--stop-signal", "USR1", "--stop-timeout", "1", "-l", "a=b",
                 "busybox", "sh", "-c", "echo hi; sleep 30").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    lines = dy_cli("ps").stdout.splitlines()
    assert re.match(r"CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES", lines[0])
    assert any(cid[:12] in ln and "dy1" in ln and "Up " in ln for ln in lines[1:])
    assert dy_cli("ps", "-q").stdout.split()[0] == cid[:12]
    assert dy_cli("ps", "-q", "--no-trunc", "-f", "label=a=b").stdout.strip() == cid
    j = json.loads(dy_cli("ps", "--format", "{{json .}}", "-f", "name=dy1").stdout)
    assert j["Names"] == "dy1" and j["State"] == "running"
    time.sleep(0.3)
    assert dy_cli("logs", "dy1").stdout == "hi\n"
    assert dy_cli("logs", "-t", "dy1").stdout.split()[1] == "hi"
    assert dy_cli("stop", "dy1").stdout.strip() == "dy1"
    assert dy_cli("inspect", "-f", "{{.State.ExitCode}}", "dy1").stdout.strip() == "137"
    t = dy_cli("ps", "-a", "--format", "table {{.Names}}\t{{.Status}}", "-f", "name=dy1").stdout.splitlines()
    assert t[0].startswith("NAMES") and t[1].startswith("dy1") and "Exited (137)" in t[1]
    assert dy_cli("rm", "dy1").stdout.strip() == "dy1"


def test_start_attach_wait_restart_kill(dy_cli):
    dy_cli("create", "--name", "dy2", "busybox", "sh", "-c", "echo again; exit 4")
    p = dy_cli("start", "-a", "dy2", check=False)
    assert p.returncode == 4 and p.stdout == "again\n"
    assert dy_cli("wait", "dy2").stdout.strip() == "4"
    dy_cli("rename", "dy2", "dy3")
    dy_cli("run", "-d", "--name", "dy4", "busybox", "sh", "-c", "trap 'exit 9' TERM; while :; do sleep 0.1; done")
    dy_cli("restart", "-t", "0", "dy4")
    assert dy_cli("inspect", "-f", "{{.State.Running}}", "dy4").stdout.strip() == "true"
    dy_cli("kill", "-s", "TERM", "dy4")
    assert dy_cli("wait", "dy4").stdout.strip() == "9"
    dy_cli("rm", "-f", "dy3", "dy4")
    p = dy_cli("rm", "dy3", check=False)
    assert p.returncode == 1 and "No such container: dy3" in p.stderr


def test_images_commands(dy_cli, busybox_tar):
    out = dy_cli("images").stdout.splitlines()
    assert re.match(r"REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE", out[0])
    assert any(ln.startswith("busybox") and "latest" in ln for ln in out[1:])
    iid = dy_cli("import", "-c", "CMD [\"true\"]", "-m", "note", str(busybox_tar), "dyimg:1").stdout.strip()
    assert iid.startswith("sha256:")
    dy_cli("tag", "dyimg:1", "dyimg:2")
    assert dy_cli("images", "-q", "dyimg").stdout.split() == [iid[7:19]]
    assert "DIGEST" in dy_cli("images", "--digests").stdout.splitlines()[0]
    assert dy_cli("images", "--no-trunc", "-q", "dyimg").stdout.split()[0] == iid
    assert "note" in dy_cli("history", "dyimg:1").stdout
    assert dy_cli("history", "-q", "dyimg:1").stdout.strip() == iid[7:19]
    ins = json.loads(dy_cli("image", "inspect", "dyimg:1").stdout)
    assert ins[0]["Id"] == iid and ins[0]["Comment"] == "note"
    assert dy_cli("rmi", "dyimg:1").stdout.strip() == "Untagged: dyimg:1"
    out = dy_cli("rmi", "dyimg:2").stdout
    assert "Untagged: dyimg:2" in out and f"Deleted: {iid}" in out
    assert "Total reclaimed space" in dy_cli("image", "prune", "-f").stdout
    p = dy_cli("rmi", "dyimg:2", check=False)
    assert p.returncode == 1 and "No such image" in p.stderr


def test_import_from_stdin(dy_cli, busybox_tar, daemon):
    import subprocess

    from ..helpers import BIN
    with open(busybox_tar, "rb") as f:
        p = subprocess.run([str(BIN / "dockyard"), "import", "-", "stdin:img"], stdin=f, capture_output=True,
                           env=daemon.env(), timeout=60)
    assert p.returncode == 0 and p.stdout.startswith(b"sha256:")
    dy_cli("rmi", "stdin:img")


def test_version_info_container_prune(dy_cli):
    assert "API version:       1.41" in dy_cli("version").stdout
    assert "Storage Driver: overlay2" in dy_cli("info").stdout
    dy_cli("run", "--name", "dyp", "busybox", "true")
    out = dy_cli("container", "prune", "-f").stdout
    assert "Deleted Containers:" in out
    assert dy_cli("ps", "-aq", "-f", "name=dyp").stdout == ""
    assert dy_cli("ps", "-n", "1", "-q").returncode == 0


def test_errors_and_usage(dy_cli):
    p = dy_cli("nosuchcommand", check=False)
    assert p.returncode == 125 and "is not a docker command" in p.stderr
    p = dy_cli("rm", check=False)
    assert p.returncode == 1 and "requires at least 1 argument" in p.stderr
    p = dy_cli("run", "--rm", "nosuchimage", check=False)
    assert p.returncode == 125 and "Unable to find image 'nosuchimage:latest' locally" in p.stderr
    p = dy_cli("-H", "unix:///nonexistent.sock", "ps", check=False)
    assert p.returncode == 1 and "Cannot connect" in p.stderr


def test_ps_size_logs_follow_and_images_all(dy_cli, daemon):
    import subprocess

    from ..helpers import BIN
    dy_cli("run", "--name", "sz", "busybox", "sh", "-c", "head -c 3000 /dev/zero > /f")
    lines = dy_cli("ps", "-a", "-s", "-f", "name=sz").stdout.splitlines()
    assert lines[0].rstrip().endswith("SIZE") and "3kB (virtual" in lines[1]
    dy_cli("rm", "sz")
    dy_cli("run", "-d", "--name", "fol", "busybox", "sh", "-c", "for i in 1 2 3; do echo f$i; sleep 0.2; done")
    p = subprocess.run([str(BIN / "dockyard"), "logs", "-f", "fol"], capture_output=True, text=True, env=daemon.env(),
                       timeout=30)
    assert p.stdout.split() == ["f1", "f2", "f3"]
    assert dy_cli("logs", "--tail", "1", "fol").stdout == "f3\n"
    assert dy_cli("logs", "--since", "1h", "fol").stdout.split() == ["f1", "f2", "f3"]
    assert dy_cli("logs", "--until", "2000-01-01T00:00:00Z", "fol").stdout == ""
    dy_cli("rm", "fol")
    assert "busybox" in dy_cli("images", "-a").stdout
    out = dy_cli("images", "--format", "table {{.Repository}}\t{{.Tag}}").stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG"]


def test_system_prune(dy_cli, busybox_tar):
    cid = dy_cli("run", "-d", "busybox", "true").stdout.strip()
    dy_cli("wait", cid)
    first = dy_cli("import", str(busybox_tar), "sysprune:1").stdout.strip()
    dy_cli("import", str(busybox_tar), "sysprune:1")   # the first one is now dangling
    p = dy_cli("system", "prune", check=False, input="n\n")
    assert "all stopped containers" in p.stdout and "Deleted" not in p.stdout
    out = dy_cli("system", "prune", "-f").stdout
    assert f"Deleted Containers:\n{cid}\n" in out
    assert f"deleted: {first}" in out and out.rstrip().splitlines()[-1].startswith("Total reclaimed space: ")
    assert dy_cli("ps", "-aq", "--filter", f"id={cid}").stdout == ""
    assert dy_cli("image", "inspect", "sysprune:1").returncode == 0
    dy_cli("rmi", "sysprune:1")
