"""Test helpers: isolated daemons, the busybox image, host leak checks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKER = shutil.which("docker", path="/usr/bin") or shutil.which("docker")


def wait_gone(pid: int, seconds: float) -> bool:
    """Whether the process exits within `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def until(pred: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll a condition (things that happen on the engine's own schedule); fail with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """An in-memory tar of regular files."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_busybox_tar(dest: Path) -> Path:
    """A busybox rootfs tar from Debian's busybox-static."""
    if not dest.exists():
        subprocess.run([str(REPO / "scripts" / "make-busybox-rootfs.sh"), str(dest)], check=True)
    return dest


class Daemon:
    """A dockyardd with its own data root, exec root and socket."""

    def __init__(self, base: Path, *args: str, config: dict | None = None, env: dict | None = None) -> None:
        self.base = base
        self.extra_env = dict(env or {})
        base.mkdir(parents=True, exist_ok=True)
        self.sock = base / "d.sock"
        self.data_root = base / "data"
        self.exec_root = base / "run"
        self.cfg_file = base / "daemon.json"
        self.cfg_file.write_text(json.dumps(config or {}))
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "daemon.log"
        self.launcher: list[str] = []   # what runs dockyardd (nsenter into a rig host, say)

    @property
    def host(self) -> str:
        """DOCKER_HOST value."""
        return f"unix://{self.sock}"

    def start(self) -> "Daemon":
        """Start and wait until /_ping answers."""
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [*self.launcher, str(BIN / "dockyardd"), "-H", self.host, "--data-root", str(self.data_root), "--exec-root",
             str(self.exec_root), "--pidfile", str(self.base / "d.pid"), "--config-file", str(self.cfg_file),
             *self.bridge_args(), *self.args], stdout=logf, stderr=logf,
            env={**os.environ, "DOCKYARD_LOOPBACK_ONLY": "1", **self.extra_env})
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockyardd exited: {self.log.read_text()[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError("dockyardd did not answer in time")

    def bridge_args(self) -> list[str]:
        """No default bridge unless the test asks for one (`--bridge`, `-b`, or daemon.json's
        `bridge`): most tests need no network, and daemons side by side must not share a bridge."""
        if any(a.startswith(("--bridge", "-b")) for a in self.args) or "bridge" in json.loads(self.cfg_file.read_text()):
            return []
        return ["--bridge=none"]

    def ping(self) -> bool:
        """Whether the API answers."""
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(self.sock))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False
        finally:
            s.close()

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (stops containers without live-restore) and wait; every thread's and task's
        stack is dumped into the log first (SIGUSR1), to find what a stuck operation waited on."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.1)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)

    def kill9(self) -> None:
        """Simulate a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def monitor_pid(self) -> int | None:
        """The monitor's pid, if any."""
        try:
            return int((self.exec_root / "monitor.pid").read_text())
        except (OSError, ValueError):
            return None

    def cleanup(self) -> None:
        """Stop the daemon and the monitor, whatever state they are in (a daemon that does not
        stop is killed, and the test still fails)."""
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            if self.proc is not None:
                self.proc.kill()
                self.proc.wait(10)
            raise
        finally:
            for pid in dict.fromkeys([*self.monitor_pids(), *self.monitor_processes()]):
                if not wait_gone(pid, 5.0):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self._kill_container_processes()

    def monitor_pids(self) -> list[int]:
        """The pids of every monitor group's monitor (containers/monitors.py): group 0 at the
        exec root, the others under monitors/N."""
        pids = [self.monitor_pid()]
        for f in sorted(self.exec_root.glob("monitors/*/monitor.pid")):
            try:
                pids.append(int(f.read_text()))
            except (OSError, ValueError):
                pass
        return [p for p in pids if p]

    def monitor_processes(self) -> list[int]:
        """Every monitor process serving this exec root, found in /proc (also one no pid file
        names, as a bug that started two monitors for one group would leave)."""
        found = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                argv = open(f"/proc/{p}/cmdline").read().split("\0")
                if open(f"/proc/{p}/comm").read().strip() == "dy-runtime" or "dockyard.monitor" not in argv:
                    continue
                root = argv[argv.index("--exec-root") + 1]
            except (OSError, ValueError, IndexError):
                continue
            if root == str(self.exec_root) or root.startswith(f"{self.exec_root}/"):
                found.append(int(p))
        return found

    def _kill_container_processes(self) -> None:
        """What a failed test left running of this daemon's containers (e.g. ones a lost monitor
        no longer parents): killed, so one failure does not leak into the next tests."""
        try:
            ids = [p.name for p in (self.data_root / "containers").iterdir()]
        except OSError:
            return
        if not ids:
            return
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                text = open(f"/proc/{p}/cgroup").read()
            except OSError:
                continue
            if any(i in text for i in ids):
                try:
                    os.kill(int(p), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def env(self) -> dict[str, str]:
        """Environment for CLI clients."""
        return {**os.environ, "DOCKER_HOST": self.host}


def mounts_under(path: Path) -> list[str]:
    """Mount points below a directory."""
    p = str(path.resolve())
    return [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(p)]


def engine_cgroup_parents() -> list[Path]:
    """The engines' parent cgroups (dockyard/, the peer dockerd's docker/, and the parents tests
    name: the runtime tests' dockyard-test/, --cgroup-parent's dytest-parent/) in every hierarchy."""
    base = Path("/sys/fs/cgroup")
    return [h / n for h in base.iterdir() for n in ("dockyard", "docker", "dockyard-test", "dytest-parent")
            if (h / n).is_dir()]


def dockyard_cgroups() -> list[str]:
    """Container cgroups the engine left on the host."""
    out = []
    base = Path("/sys/fs/cgroup")
    for hier in base.iterdir():
        d = hier / "dockyard"
        if d.is_dir():
            out += [str(x) for x in d.iterdir() if x.is_dir()]
    if (base / "dockyard").is_dir():
        out += [str(x) for x in (base / "dockyard").iterdir() if x.is_dir()]
    return out


class DockerDaemon:
    """Debian's dockerd as a peer, with its own roots and socket (no iptables changes)."""

    def __init__(self, base: Path, network_args: list[str] | None = None) -> None:
        """`network_args` replace the default "no network of its own, no iptables" flags."""
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.sock = base / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.network_args = network_args if network_args is not None else [
            "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none"]

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def start(self) -> "DockerDaemon | None":
        dockerd = shutil.which("dockerd")
        if not dockerd:
            return None
        (self.base / "daemon.json").write_text("{}")
        self.proc = subprocess.Popen(
            [dockerd, "-H", self.host, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "run"),
             "--pidfile", str(self.base / "docker.pid"), *self.network_args,
             "--config-file", str(self.base / "daemon.json")],
            stdout=open(self.base / "dockerd.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return None
            if DOCKER and subprocess.run([DOCKER, "-H", self.host, "version"], capture_output=True).returncode == 0:
                return self
            time.sleep(0.3)
        self.stop()
        return None

    def docker(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[bytes]:
        assert DOCKER
        return subprocess.run([DOCKER, "-H", self.host, *args], check=check, capture_output=True, timeout=300, **kw)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        subprocess.run(["umount", "-R", str(self.base)], capture_output=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


@contextlib.contextmanager
def small_data_root(tmp_path: Path, size: str = "48m") -> Iterator[Path]:
    """A tmpfs of `size` where the first daemon `fresh_daemon` makes keeps its data."""
    data_root = tmp_path / "d0" / "data"
    data_root.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(data_root)], check=True)
    try:
        yield data_root
    finally:
        subprocess.run(["umount", "-l", str(data_root)], check=False)


def serve_http(handler: type) -> tuple[str, Callable[[], None]]:
    """A threaded HTTP server on 127.0.0.1 for a handler class: (host:port, stop)."""
    import http.server
    import threading
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()

    def stop() -> None:
        srv.shutdown()
        srv.server_close()
    return f"127.0.0.1:{srv.server_address[1]}", stop


def rootfs_with_file(base_tar: Path, name: str, data: bytes) -> bytes:
    """A rootfs tar: `base_tar`'s members plus the file `name` (a layer no other image has)."""
    import io
    import tarfile
    out = io.BytesIO()
    with tarfile.open(base_tar) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
    return out.getvalue()
