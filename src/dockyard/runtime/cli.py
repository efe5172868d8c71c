"""`dockyard-runtime`: runc's command line (create, start, state, kill, delete, run, exec, pause,
resume, list)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

from ..signals import parse_signal

DEFAULT_ROOT = "/run/dockyard-runtime"


class UsageError(ValueError):
    """Bad command line."""


_GLOBAL_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}
_GLOBAL_BOOL = {"--systemd-cgroup", "--debug"}
_CMD_VALUE = {"--bundle": "bundle", "-b": "bundle", "--pid-file": "pid_file", "--console-socket": "console_socket",
              "--preserve-fds": "preserve_fds", "--process": "process", "-p": "process",
              "--resources": "resources", "-r": "resources"}
_CMD_BOOL = {"--no-pivot": "no_pivot", "--no-new-keyring": "no_new_keyring", "--detach": "detach", "-d": "detach",
             "--all": "all", "-a": "all", "--force": "force", "-f": "force"}
_POSITIONALS = {"create": ["id"], "run": ["id"], "start": ["id"], "state": ["id"], "delete": ["id"],
                "pause": ["id"], "resume": ["id"], "exec": ["id"], "update": ["id"],
                "kill": ["id", "signal"], "list": [], "features": []}


def _value(name: str, args: list[str]) -> str:
    """The value of a flag given as a separate word."""
    if not args:
        raise UsageError(f"flag needs an argument: {name}")
    return args.pop(0)


def parse_args(argv: list[str]) -> SimpleNamespace:
    """runc's grammar: [global flags] COMMAND [flags] ARGS. Hand-written: argparse costs ~10 ms
    per call (measured), and the runtime runs three times for every container."""
    ns = SimpleNamespace(root=DEFAULT_ROOT, log=None, log_format="text", cmd=None, bundle=".", pid_file=None,
                            console_socket=None, detach=False, all=False, force=False, signal="SIGTERM", id=None,
                            process=None, resources=None)
    args = list(argv)
    while args and args[0].startswith("-"):
        a = args.pop(0)
        name, eq, val = a.partition("=")
        if name in _GLOBAL_VALUE:
            setattr(ns, name[2:].replace("-", "_"), val if eq else _value(name, args))
        elif name not in _GLOBAL_BOOL:
            raise UsageError(f"flag provided but not defined: {name}")
    if not args:
        raise UsageError("a command is required: create, start, state, kill, delete, run, list, features")
    ns.cmd = args.pop(0)
    if ns.cmd not in _POSITIONALS:
        raise UsageError(f"no such command: {ns.cmd}")
    pos = []
    while args:
        a = args.pop(0)
        name, eq, val = a.partition("=")
        if name in _CMD_VALUE:
            setattr(ns, _CMD_VALUE[name], val if eq else _value(name, args))
        elif name in _CMD_BOOL:
            setattr(ns, _CMD_BOOL[name], True)
        elif a.startswith("-") and len(a) > 1 and not a[1:].isdigit():
            raise UsageError(f"flag provided but not defined: {name}")
        else:
            pos.append(a)
    want = _POSITIONALS[ns.cmd]
    need = 1 if want else 0
    if len(pos) < need or len(pos) > len(want):
        raise UsageError(f"{ns.cmd}: expects {' '.join(want).upper() or 'no arguments'}")
    for k, v in zip(want, pos, strict=False):
        setattr(ns, k, v)
    return ns


def _fail(args: SimpleNamespace, msg: str) -> None:
    if args.log:
        try:
            with open(args.log, "a") as f:
                f.write(json.dumps({"level": "error", "msg": msg,
                                    "time": _dt.datetime.now(_dt.UTC).isoformat()}) + "\n")
        except OSError:
            pass
    else:
        print(f"dockyard-runtime: {msg}", file=sys.stderr)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"dockyard-runtime: {e}", file=sys.stderr)
        sys.exit(2)
    root = Path(args.root)
    from .state import StateError
    try:
        rc = _dispatch(args, root)
    except (StateError, ValueError) as e:
        _fail(args, str(e))
    except Exception as e:  # noqa: BLE001 - every failure becomes runc-style stderr + exit 1
        _fail(args, str(e) if type(e).__name__ == "CreateError" else f"{type(e).__name__}: {e}")
    sys.exit(rc or 0)


def _dispatch(args: SimpleNamespace, root: Path) -> int:
    from . import state as st_mod
    from .state import StateError
    if args.cmd in ("create", "run"):
        return _create(args, root)
    if args.cmd == "start":
        return _start(root, args.id)
    if args.cmd == "exec":
        if not args.process:
            raise UsageError("exec: --process FILE is required (a command line is not supported)")
        from .exec import run_exec
        return run_exec(root, args.id, args.process, args.pid_file, args.detach, args.console_socket)
    if args.cmd == "state":
        st = st_mod.load(root, args.id)
        print(json.dumps({"ociVersion": "1.0.2", "id": st.id, "pid": st.pid, "status": st_mod.status(root, st),
                          "bundle": st.bundle, "rootfs": st.rootfs, "created": st.created,
                          "annotations": st.annotations, "owner": ""}, indent=2))
        return 0
    if args.cmd == "kill":
        st = st_mod.load(root, args.id)
        sig = parse_signal(args.signal)
        if st_mod.status(root, st) == "stopped":
            raise StateError("container not running")
        targets = [st.pid]
        if args.all:
            from .cgroups import Manager
            targets = Manager("/", st.cgroup_paths).pids() or targets
        for pid in targets:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return 0
    if args.cmd == "delete":
        return _delete(root, args.id, args.force)
    if args.cmd in ("pause", "resume"):
        st = st_mod.load(root, args.id)
        if st_mod.status(root, st) == "stopped":
            raise StateError("container not running")
        from .cgroups import Manager
        Manager("/", st.cgroup_paths).freeze(args.cmd == "pause")
        return 0
    if args.cmd == "update":
        # runc's `update --resources FILE|- ID`: OCI linux.resources applied to the live cgroups
        st = st_mod.load(root, args.id)
        if not args.resources:
            raise UsageError("update: --resources FILE is required (single-value flags are not supported)")
        text = sys.stdin.read() if args.resources == "-" else Path(args.resources).read_text()
        from .cgroups import Manager
        Manager("/", st.cgroup_paths).set(json.loads(text))
        return 0
    if args.cmd == "list":
        print(f"{'ID':<20}{'PID':<10}{'STATUS':<10}BUNDLE")
        if root.exists():
            for d in sorted(root.iterdir()):
                try:
                    st = st_mod.load(root, d.name)
                except StateError:
                    continue
                print(f"{st.id:<20}{st.pid:<10}{st_mod.status(root, st):<10}{st.bundle}")
        return 0
    if args.cmd == "features":
        print(json.dumps({"ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0",
                          "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"]}))
        return 0
    return 2


def _create(args: SimpleNamespace, root: Path) -> int:
    from . import init, spec
    bundle = Path(args.bundle).resolve()
    try:
        sp = spec.load(bundle)
    except spec.SpecError as e:
        raise ValueError(str(e)) from None
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.cmd == "run":
        from ..linux import syscalls as sc
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    try:
        st = init.create(root, args.id, bundle, sp, args.pid_file, args.console_socket)
    except init.CreateError as e:
        raise ValueError(str(e)) from None
    if args.cmd == "create":
        return 0
    _start(root, args.id)
    if args.detach:
        return 0
    status = 0
    while True:
        pid, status = os.wait()
        if pid == st.pid:
            break
    _delete(root, args.id, True)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _start(root: Path, cid: str) -> int:
    from . import state as st_mod
    st = st_mod.load(root, cid)
    fifo = st_mod.container_dir(root, cid) / "exec.fifo"
    s = st_mod.status(root, st)
    if s != "created":
        raise st_mod.StateError(f"cannot start a container that has {'stopped' if s == 'stopped' else 'already started'}")
    fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 1)
    finally:
        os.close(fd)
    fifo.unlink(missing_ok=True)
    if data != b"0":
        raise st_mod.StateError("cannot start an already running container")
    return 0


def _delete(root: Path, cid: str, force: bool) -> int:
    delete(root, cid, force)
    return 0


def delete(root: Path, cid: str, force: bool = False, wait: bool = True) -> bool:
    """`delete`: a stopped container's cgroups and state directory; with `force`, one that still
    runs is killed first and waited for. Without `wait` (the monitor, right after the init's
    exit) nothing blocks or kills: False when the container is not stopped or a cgroup is still
    busy, for the caller to run `delete --force` then. An unknown container is an error only for
    a plain `delete`."""
    from . import state as st_mod
    from .cgroups import Manager
    try:
        st = st_mod.load(root, cid)
    except st_mod.StateError:
        if force or not wait:
            return True
        raise
    s = st_mod.status(root, st)
    cg = Manager("/", st.cgroup_paths)
    if s != "stopped":
        if not wait:
            return False
        if not force and s == "running":
            raise st_mod.StateError(f"cannot delete container {cid} that is not stopped: {s}")
        for pid in cg.pids() or [st.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        import time
        for _ in range(200):
            if st_mod.status(root, st) == "stopped" and not cg.pids():
                break
            time.sleep(0.005)
    if not cg.destroy(wait) and not wait:
        return False
    shutil.rmtree(st_mod.container_dir(root, cid), ignore_errors=True)
    return True
