"""What the benchmarks share: where the engines keep their data, waiting for a daemon, and
leaving the host's cgroup tree as it was found."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _byte_compile() -> None:
    """Measure the project as installed: scripts/install.sh byte-compiles it, but a tree edited
    since then has stale .pyc files, and with PYTHONDONTWRITEBYTECODE set (as on this machine)
    every CLI command would recompile the edited modules (measured: 78 -> 52 ms per
    `dockyard run --rm`). Only what is stale is compiled."""
    repo = Path(__file__).resolve().parent.parent
    py = repo / ".venv" / "bin" / "python"   # the engine's interpreter: its .pyc tag
    subprocess.run([str(py) if py.exists() else "python3", "-m", "compileall", "-q", "-o", "0", "-o", "2",   # 2: the monitor's
                    str(repo / "src" / "dockyard")],
                   stdout=subprocess.DEVNULL, check=False)


_byte_compile()


def bench_dir() -> str:
    """Where both engines keep their data during a benchmark: under /var/lib, as in real use
    (here, block allocation under /tmp was measured 15x slower than under /var/lib on one disk)."""
    d = os.environ.get("DOCKYARD_BENCH_DIR", "/var/lib/dockyard-bench")
    os.makedirs(d, exist_ok=True)
    return d


def wait_up(cli: list[str], env: dict[str, str], what: str, timeout: float = 60) -> None:
    """Until `cli version` answers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if subprocess.run(cli + ["version"], env=env, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up")


class CgroupParents:
    """The engines' parent cgroups (`docker`, `dockyard`) that did not exist before the benchmark
    are removed after it, once empty (the daemons leave them behind when they stop)."""

    NAMES = ("docker", "dockyard")

    def __init__(self) -> None:
        self.before = set(self._present())

    def _present(self) -> list[Path]:
        if not CGROUP.is_dir():
            return []
        return [h / n for h in CGROUP.iterdir() for n in self.NAMES if (h / n).is_dir()]

    def cleanup(self) -> None:
        """rmdir the new ones; a parent that still has children stays (and is reported)."""
        for p in self._present():
            if p not in self.before:
                for sub in sorted((d for d in p.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                    try:   # what the engine made below it (BuildKit's docker/buildkit)
                        sub.rmdir()
                    except OSError:
                        pass
                try:
                    p.rmdir()
                except OSError as e:
                    print(f"note: cgroup {p} left in place: {e.strerror}")


class Engines:
    """A dockyardd and a Debian dockerd side by side, each with its own data root, exec root
    (on tmpfs, as the defaults are) and socket, both with the same busybox image imported.
    `with Engines() as e:` ... `e.dy_env` / `e.dk_env` for clients; everything is removed after."""

    def __init__(self, prefix: str, dockerd_args: tuple[str, ...] = (), dockyardd_args: tuple[str, ...] = ()) -> None:
        import shutil
        import tempfile
        self.repo = Path(__file__).resolve().parent.parent
        self.venv = self.repo / ".venv" / "bin"
        self.cgroups = CgroupParents()
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=bench_dir()))
        self.run_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/run"))
        self.dy_sock, self.dk_sock = self.tmp / "dy.sock", self.tmp / "dk.sock"
        self.dy_env = {**os.environ, "DOCKER_HOST": f"unix://{self.dy_sock}"}
        self.dk_env = {**os.environ, "DOCKER_HOST": f"unix://{self.dk_sock}"}
        self.docker = shutil.which("docker", path="/usr/bin") or "docker"
        self.dockyard = str(self.venv / "dockyard")
        self.dockerd_args, self.dockyardd_args = dockerd_args, dockyardd_args
        self.dy: subprocess.Popen[bytes] | None = None
        self.dk: subprocess.Popen[bytes] | None = None

    def start_dockyardd(self) -> subprocess.Popen[bytes]:
        self.dy = subprocess.Popen([str(self.venv / "dockyardd"), "-H", f"unix://{self.dy_sock}", "--data-root",
                                    str(self.tmp / "dy-data"), "--exec-root", str(self.run_dir / "dy"),
                                    "--config-file", "/dev/null", *self.dockyardd_args],
                                   stdout=open(self.tmp / "dy.log", "ab"), stderr=subprocess.STDOUT)
        return self.dy

    def start_dockerd(self) -> subprocess.Popen[bytes]:
        import shutil
        dockerd = shutil.which("dockerd")
        if not dockerd:
            raise SystemExit("dockerd (Debian docker.io) is not installed")
        (self.tmp / "daemon.json").write_text("{}")
        self.dk = subprocess.Popen([dockerd, "-H", f"unix://{self.dk_sock}", "--data-root", str(self.tmp / "dk-data"),
                                    "--exec-root", str(self.run_dir / "dk"), "--pidfile", str(self.tmp / "dk.pid"),
                                    "--iptables=false", "--ip-forward=false", "--bridge=none",
                                    "--config-file", str(self.tmp / "daemon.json"), *self.dockerd_args],
                                   stdout=open(self.tmp / "dk.log", "ab"), stderr=subprocess.STDOUT)
        return self.dk

    def __enter__(self) -> Engines:
        try:
            tar = self.tmp / "busybox.tar"
            subprocess.run([str(self.repo / "scripts" / "make-busybox-rootfs.sh"), str(tar)], check=True)
            self.start_dockyardd()
            self.start_dockerd()
            wait_up([self.dockyard], self.dy_env, "dockyardd")
            wait_up([self.docker], self.dk_env, "dockerd")
            for cli, env in ((self.dockyard, self.dy_env), (self.docker, self.dk_env)):
                subprocess.run([cli, "import", str(tar), "busybox:latest"], env=env, check=True, capture_output=True)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        import shutil
        import signal
        for cli, env in ((self.dockyard, self.dy_env), (self.docker, self.dk_env)):
            ids = subprocess.run([cli, "ps", "-aq"], env=env, capture_output=True, text=True).stdout.split()
            if ids:
                subprocess.run([cli, "rm", "-f", *ids], env=env, capture_output=True)
        for p in (self.dy, self.dk):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (self.dy, self.dk):
            if p:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
        # with --live-restore the monitors outlive the daemon, by design: end them too
        for pid_file in monitor_pid_files(self.run_dir / "dy"):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        for d in (self.tmp, self.run_dir):
            for m in mounts_under(d):   # dockerd binds its data root onto itself
                subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(d, ignore_errors=True)
        self.cgroups.cleanup()


def monitor_pid_files(exec_root: Path) -> list[Path]:
    """The pid file of every monitor group's monitor (src/dockyard/containers/monitors.py): group 0
    at the exec root, the others under monitors/N."""
    return [exec_root / "monitor.pid", *sorted(exec_root.glob("monitors/*/monitor.pid"))]


def mounts_under(d: Path) -> list[str]:
    """Mount points at or below `d`, deepest first."""
    root = str(d.resolve())
    found = [line.split()[4] for line in open("/proc/self/mountinfo")
             if line.split()[4] == root or line.split()[4].startswith(root + "/")]
    return sorted(found, key=len, reverse=True)


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(self.path)


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000
