"""Issue 21: managed plugins through Debian's docker CLI — `plugin create` from a directory
(config.json + rootfs/), `push` to Debian's docker-registry, `install` (privileges listed and
granted) back from it, `ls`, `inspect`, `set`, `disable`, `enable`, `upgrade`, `rm`; the plugin runs
as a container of its own, and as a volume plugin it serves `volume create -d` and a container's
`-v` (the volume's data lands under the plugin's root filesystem)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from ..helpers import DOCKER, REPO, until

pytestmark = pytest.mark.root

ENTRY = ["/usr/bin/python3", "-c", "import signal, sys, time; sys.path.insert(0, '/plugin'); import dirplugin; "
         "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
         "dirplugin.DirPlugin('/run/docker/plugins/vol.sock', '/data').start(); time.sleep(1e9)"]


def _context(base: Path, description: str) -> Path:
    """A plugin whose program is the test suite's directory volume plugin, run by the host's
    Python (/usr bound read-only: a privilege the user grants)."""
    ctx = base / description.replace(" ", "-")
    root = ctx / "rootfs"
    for d in ("plugin", "data", "run/docker/plugins", "usr", "tmp", "proc", "sys", "dev", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for link in ("lib", "lib64", "bin"):
        if os.path.islink(f"/{link}"):
            (root / link).symlink_to(f"usr/{link}")
    shutil.copy(REPO / "tests" / "volumes" / "dirplugin.py", root / "plugin" / "dirplugin.py")
    (ctx / "config.json").write_text(json.dumps({
        "description": description, "documentation": "https://example.invalid/docs",
        "entrypoint": ENTRY, "interface": {"types": ["docker.volumedriver/1.0"], "socket": "vol.sock"},
        "network": {"type": "none"},
        "mounts": [{"name": "usr", "source": "/usr", "destination": "/usr", "type": "bind", "options": ["ro"]}],
        "env": [{"name": "DEBUG", "description": "verbosity", "settable": ["value"], "value": "0"}],
        "linux": {"capabilities": ["CAP_SYS_ADMIN"]}}))
    return ctx


def _plugin_pids(plugin_id: str):
    """The host pids in the plugin's cgroup (its container's)."""
    def pids() -> list[int]:
        out = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if plugin_id in open(f"/proc/{p}/cgroup").read():
                        out.append(int(p))
                except OSError:
                    pass
        return out
    return pids


def test_plugin_create_push_install_serves_volumes(registry, fresh_daemon, tmp_path):
    if not DOCKER:
        pytest.skip("Debian's docker CLI is not installed")
    d = fresh_daemon()
    env = d.env()

    def dk(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=120)
        if check:
            assert p.returncode == 0, f"docker {' '.join(args)}: {p.stderr}"
        return p

    name = f"{registry}/dy/vol:1"
    dk("plugin", "create", name, str(_context(tmp_path, "dir volumes")))
    ls = dk("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}").stdout.split()
    assert ls == [name, "false"]
    c = docker.DockerClient(base_url=d.host, version="1.41")
    try:
        p = c.api.inspect_plugin(name)
        assert p["Config"]["Interface"]["Types"] == ["docker.volumedriver/1.0"] and p["Enabled"] is False
        assert p["Settings"]["Env"] == ["DEBUG=0"]
        dk("plugin", "push", name)
        dk("plugin", "rm", name)
        assert c.api.plugins() == []
        privs = c.api.plugin_privileges(name)
        assert {"Name": "mount", "Description": "host path to mount", "Value": ["/usr"]} in privs
        assert {"Name": "capabilities", "Description": "list of additional capabilities required",
                "Value": ["CAP_SYS_ADMIN"]} in privs
        # privileges other than the plugin's are refused
        r = c.api._post_json(c.api._url("/plugins/pull"), params={"remote": name}, data=[])
        assert r.status_code == 400 and "privileges" in r.text
        dk("plugin", "install", "--grant-all-permissions", name)
        p = c.api.inspect_plugin(name)
        assert p["Enabled"] is True and p["PluginReference"] == name
        # set refuses an enabled plugin, then applies to a disabled one
        assert "disable" in dk("plugin", "set", name, "DEBUG=1", check=False).stderr
        dk("plugin", "disable", name)
        dk("plugin", "set", name, "DEBUG=1")
        assert c.api.inspect_plugin(name)["Settings"]["Env"] == ["DEBUG=1"]
        assert "no such variable" in dk("plugin", "set", name, "NOPE=1", check=False).stderr
        dk("plugin", "enable", name)
        # the plugin's process runs in a container of its own, with the granted capability
        pid_dir = next(Path(d.data_root, "plugins").glob("*/plugin.json")).parent
        assert json.loads((pid_dir / "plugin.json").read_text())["Enabled"] is True
        # a volume of the plugin, used by a container: its data lands in the plugin's filesystem
        dk("volume", "create", "-d", name, "pvol")
        assert dk("volume", "inspect", "-f", "{{.Driver}}", "pvol").stdout.strip() == name
        out = dk("run", "--rm", "--network", "none", "-v", "pvol:/v", "busybox", "sh", "-c",
                 "echo via-plugin > /v/f; cat /v/f").stdout
        assert out == "via-plugin\n"
        assert (pid_dir / "rootfs" / "data" / "pvol" / "f").read_text() == "via-plugin\n"
        assert "in use" in dk("plugin", "disable", name, check=False).stderr
        dk("volume", "rm", "pvol")
        # upgrade to a second version pushed under another tag
        v2 = f"{registry}/dy/vol:2"
        dk("plugin", "create", v2, str(_context(tmp_path, "dir volumes two")))
        dk("plugin", "push", v2)
        dk("plugin", "rm", v2)
        assert "disable" in dk("plugin", "upgrade", "--grant-all-permissions", name, v2, check=False).stderr
        dk("plugin", "disable", name)
        dk("plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", name, v2)
        p = c.api.inspect_plugin(name)
        assert p["Config"]["Description"] == "dir volumes two" and p["PluginReference"] == v2
        assert p["Settings"]["Env"] == ["DEBUG=1"]   # kept across the upgrade
        dk("plugin", "enable", name)
        until(lambda: c.api.inspect_plugin(name)["Enabled"], "the upgraded plugin to run")
        # a plugin whose process dies while enabled is started again (as dockerd)
        pid_of = _plugin_pids(c.api.inspect_plugin(name)["Id"])
        first = pid_of()
        assert first
        for p in first:
            os.kill(p, 9)
        until(lambda: pid_of() and not set(pid_of()) & set(first), "the plugin to be started again")
        until(lambda: dk("volume", "create", "-d", name, "again", check=False).returncode == 0, "it to serve again")
        dk("volume", "rm", "again")
        assert "enabled" in dk("plugin", "rm", name, check=False).stderr
        dk("plugin", "rm", "-f", name)
        assert c.api.plugins() == [] and not list(Path(d.data_root, "plugins").iterdir())
        # docker-py's create_plugin of a directory with a config.json only (an empty root filesystem)
        dummy = tmp_path / "dummy"
        dummy.mkdir()
        (dummy / "config.json").write_text(json.dumps({
            "description": "dummy", "entrypoint": ["/dummy"], "network": {"type": "host"},
            "interface": {"types": ["docker.volumedriver/1.0"], "socket": "dummy.sock"},
            "env": [{"name": "DEBUG", "settable": ["value"], "value": "0"}]}))
        assert c.api.create_plugin("dy/dummy", str(dummy))
        assert c.api.inspect_plugin("dy/dummy")["Config"]["Entrypoint"] == ["/dummy"]
        c.api.configure_plugin("dy/dummy", {"DEBUG": "1"})
        assert "DEBUG=1" in c.api.inspect_plugin("dy/dummy:latest")["Settings"]["Env"]
        assert c.api.remove_plugin("dy/dummy") is True
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "config.json").write_text(json.dumps({"entrypoint": ["/x"], "interface": {
            "types": ["docker.networkdriver/1.0"], "socket": "x.sock"}}))
        with pytest.raises(docker.errors.APIError) as e:
            c.api.create_plugin("dy/bad", str(bad))
        assert e.value.status_code == 400 and "docker.networkdriver/1.0" in str(e.value.explanation)
    finally:
        for p in c.api.plugins():
            c.api.remove_plugin(p["Name"], force=True)
        c.close()
