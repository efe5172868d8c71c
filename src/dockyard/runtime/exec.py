"""`dockyard-runtime exec --process FILE [--pid-file F] [-d] ID`: run another process in a running
container, as `runc exec` does. The process joins the init's cgroups and namespaces (a middle
process enters them, then forks so the new process is inside the PID namespace), gets the
container's seccomp profile, user and capabilities from the process file, and is exec'd once it
is known to be runnable. With `-d` the runtime returns at once (the process is re-parented to the
caller's subreaper, e.g. the monitor); without, it waits and exits with the process's code.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..linux import syscalls as sc
from . import caps
from . import seccomp as seccomp_mod
from . import state as st_mod
from .cgroups import Manager
from .init import _NS_FLAGS, _finalize, _recv, _send, await_init, console_for, enter_cwd, lookup, setup_console
from .spec import convert
from .state import StateError

# /proc/PID/ns names; the mount namespace last (paths are resolved before we change root)
_NS_FILES = [("user", "user"), ("ipc", "ipc"), ("uts", "uts"), ("network", "net"), ("pid", "pid"), ("cgroup", "cgroup"),
             ("mount", "mnt")]


def run_exec(root: Path, cid: str, process_file: str, pid_file: str | None, detach: bool,
             console_socket: str | None = None) -> int:
    """Start the process; return 0 (detached) or its exit code."""
    st = st_mod.load(root, cid)
    if st_mod.status(root, st) not in ("running", "created"):
        raise StateError(f"cannot exec in a stopped container {cid}")
    raw = json.loads((Path(st.bundle) / "config.json").read_text())
    try:
        raw["process"] = json.loads(Path(process_file).read_text())
    except (OSError, ValueError) as e:
        raise StateError(f"process file {process_file}: {e}") from None
    spec = convert(raw, Path(st.bundle))
    console = console_for(spec.process.terminal, console_socket)
    filt = seccomp_mod.Filter(spec.seccomp, str(root / ".seccomp")) if spec.seccomp else None
    own = {t for t, _ in spec.namespaces}
    fds = [(t, os.open(f"/proc/{st.pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)) for t, name in _NS_FILES
           if t in own]
    if not detach:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)   # the process comes back to us when the middle one exits
    cg = Manager("/", st.cgroup_paths)
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    c1, placed = cg.fork()
    if c1 == 0:
        parent_sock.close()
        try:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)   # out of the container's reach until execve (CVE-2019-5736)
            cg.join_self(placed)
            for t, fd in fds:
                sc.setns(fd, _NS_FLAGS[t])
            c2 = os.fork()
            if c2 == 0:
                _child(spec, child_sock, filt, console)
                os._exit(1)
            _send(child_sock, {"pid": c2})
            os._exit(0)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            try:
                _send(child_sock, {"error": f"{e}"})
            finally:
                os._exit(1)
    child_sock.close()
    if console is not None:
        console.close()
    for _, fd in fds:
        os.close(fd)
    f = parent_sock.makefile("r")
    try:
        pid = await_init(lambda: _recv(f))
    finally:
        os.waitpid(c1, 0)
        f.close()
        parent_sock.close()
    if pid_file:
        tmp = pid_file + ".tmp"
        with open(tmp, "w") as pf:
            pf.write(str(pid))
        os.replace(tmp, pid_file)
    if detach:
        return 0
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _child(spec, sock: socket.socket, filt, console: socket.socket | None) -> None:
    """In the container's namespaces: cwd, find the program, say ready, rlimits and privileges, exec."""
    p = spec.process
    try:
        caps.last_cap()
        setup_console(console)
        enter_cwd(p.cwd)
        path = lookup(p.args[0], p.env, p.cwd)
        _send(sock, {"ready": True})
        sock.close()
        _finalize(spec, filt)
        env = dict(e.split("=", 1) for e in p.env if "=" in e)
        os.execve(path, list(p.args), env)
    except BaseException as e:  # noqa: BLE001
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.strerror}: {e.filename}"
        try:
            _send(sock, {"error": msg})
        except OSError:
            pass
        os._exit(127 if isinstance(e, FileNotFoundError) else 126 if isinstance(e, PermissionError) else 1)
