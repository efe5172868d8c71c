"""Create a container: the parent/child ladder.

    runtime create (P)                 C1 (child)                     C2 (pid 1 of the container)
    make cgroups, fifo  ──fork──▶      join cgroups, setns/unshare
                                       fork ─────────────────────────▶ (new pid ns)
            ◀── {"pid": N} ────────── exit                            mounts, pivot_root, hostname,
                                                                       lo up, sysctl, rlimits
            ◀── {"ready"} | {"error": msg} ─────────────────────────── lookup argv[0]
    write state.json, exit 0                                           block opening exec.fifo
    (runtime start opens the fifo)  ────────────────────────────────▶  seccomp, user, caps, execve

Messages are JSON lines over a socketpair. C2 is re-parented to the caller's subreaper
(the monitor) once C1 and P exit. Every import the child needs happens before fork.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable
from pathlib import Path

from ..linux import syscalls as sc
from ..linux import tty
from . import caps, cgroups, rootfs
from . import seccomp as seccomp_mod
from .spec import Spec
from .state import State, container_dir, proc_start_time, save

_NS_FLAGS = {"mount": sc.CLONE_NEWNS, "uts": sc.CLONE_NEWUTS, "ipc": sc.CLONE_NEWIPC,
             "pid": sc.CLONE_NEWPID, "network": sc.CLONE_NEWNET, "cgroup": sc.CLONE_NEWCGROUP,
             "user": sc.CLONE_NEWUSER}
_RLIMITS = {n: getattr(__import__("resource"), n) for n in dir(__import__("resource")) if n.startswith("RLIMIT_")}


class CreateError(Exception):
    """Container creation failed; the message is the child's."""


def _send(sock: socket.socket, msg: dict) -> None:
    sock.sendall(json.dumps(msg).encode() + b"\n")


def _recv(f) -> dict:
    line = f.readline()
    if not line:
        return {"error": "container init exited unexpectedly"}
    return json.loads(line)


def console_for(terminal: bool, console_socket: str | None) -> socket.socket | None:
    """A connection to the console socket when the process gets a terminal (runc's rules: a
    terminal needs a socket to send its master to, and a socket needs a terminal)."""
    if terminal and not console_socket:
        raise CreateError("cannot allocate tty if runc will detach without setting console socket")
    if console_socket and not terminal:
        raise CreateError("cannot use console socket if runc will not allocate tty")
    if not console_socket:
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(console_socket)
    except OSError as e:
        s.close()
        raise CreateError(f"failed to connect to console socket {console_socket}: {e.strerror}") from None
    return s


def create(root: Path, cid: str, bundle: Path, spec: Spec, pid_file: str | None,
           console_socket: str | None = None) -> State:
    """Run the ladder; on success the container waits on its exec fifo."""
    console = console_for(spec.process.terminal, console_socket)
    d = container_dir(root, cid)
    try:
        d.mkdir(parents=True)
    except FileExistsError:
        raise CreateError(f"container with id {cid} already exists") from None
    fifo = d / "exec.fifo"
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)   # past the umask: a remapped root must be able to write it
    cg = cgroups.Manager(spec.cgroups_path or f"/dockyard/{cid}")
    pid: int | None = None
    direct: int | None = None
    if spec.new_userns and not (spec.uid_mappings and spec.gid_mappings):
        raise CreateError("a new user namespace needs linux.uidMappings and linux.gidMappings")
    # opened here, as real root: the remapped root of a user namespace may not traverse this dir
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    try:
        cg.create(spec.resources)
        filt = seccomp_mod.Filter(spec.seccomp, str(root / ".seccomp")) if spec.seccomp else None
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        direct = _direct_flags(spec)
        if direct is not None:
            try:
                _join_existing(spec)
                c1, placed = cg.fork(direct & ~sc.CLONE_NEWCGROUP)
            except OSError:   # no clone3 here: the ladder
                direct = None
        if direct is None:
            c1, placed = cg.fork()
        if c1 == 0:
            parent_sock.close()
            if direct is None:
                _child1(spec, cg, placed, child_sock, fifo_fd, filt, console)
            else:
                _child_direct(spec, cg, placed, child_sock, fifo_fd, filt, console, direct)
            os._exit(1)
        if direct is not None:
            pid = c1
        child_sock.close()
        if console is not None:
            console.close()
        f = parent_sock.makefile("r")

        def write_maps(target: int) -> None:
            uid_map, gid_map = spec.map_texts()
            with open(f"/proc/{target}/uid_map", "w") as m:
                m.write(uid_map)
            with open(f"/proc/{target}/gid_map", "w") as m:
                m.write(gid_map)
            parent_sock.sendall(b"mapped\n")
        try:
            pid = await_init(lambda: _recv(f), write_maps, pid)
        finally:
            if direct is None:
                os.waitpid(c1, 0)
        st = State(id=cid, pid=pid, bundle=str(bundle), rootfs=str(spec.root),
                   created=_dt.datetime.now(_dt.UTC).isoformat().replace("+00:00", "Z"),
                   start_time=proc_start_time(pid), cgroup_paths=cg.paths, annotations=spec.annotations)
        save(root, st)
        if pid_file:
            tmp = pid_file + ".tmp"
            with open(tmp, "w") as pf:
                pf.write(str(pid))
            os.replace(tmp, pid_file)
        return st
    except BaseException:
        if pid is not None:   # the init is waiting on its fifo: it must not outlive the failure
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if direct is not None:   # our own child (not yet re-parented to the caller)
                os.waitpid(pid, 0)
            else:
                _wait_gone(pid)
        cg.destroy()
        import shutil
        shutil.rmtree(d, ignore_errors=True)
        raise
    finally:
        os.close(fifo_fd)


def await_init(recv: Callable[[], dict], on_map: Callable[[int], None] | None = None,
               pid: int | None = None) -> int:
    """The init's pid once it is ready. Two messages share the socket and may come in either
    order: the middle process's {"pid"} and the init's {"ready"}; an {"error"} from either (or
    the end of the stream) fails the create. With a new user namespace the middle process
    first asks for its id maps ({"map": pid}), which `on_map` writes. An init cloned directly
    (`pid` known) only sends {"ready"}."""
    ready = False
    while pid is None or not ready:
        m = recv()
        if "map" in m and on_map is not None:
            on_map(int(m["map"]))
        elif "pid" in m:
            pid = int(m["pid"])
        elif m.get("ready"):
            ready = True
        else:
            raise CreateError(m.get("error") or f"unexpected message from container init: {m}")
    return pid


def _wait_gone(pid: int, timeout: float = 2.0) -> None:
    """Until a process (not our child: its reaper is the monitor) has exited."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return
        time.sleep(0.01)


def _direct_flags(spec: Spec) -> int | None:
    """The namespaces to create when the init can be cloned straight into them and its cgroup
    (one process less: the middle one forks ~2 ms and exits), or None for the ladder: a new
    user namespace needs the middle process (its maps are written from outside before the
    init is forked), and joining a mount or user namespace would move this process too."""
    if spec.new_userns or any(path and t in ("mount", "user") for t, path in spec.namespaces):
        return None
    return _new_flags(spec)


def _new_flags(spec: Spec) -> int:
    """CLONE_NEW* of the namespaces the spec asks to create (those it names without a path)."""
    flags = 0
    for t, path in spec.namespaces:
        if not path:
            flags |= _NS_FLAGS[t]
    return flags


def _join_existing(spec: Spec) -> None:
    """setns into the namespaces the spec names by path. (Called by the runtime process itself
    only when `_direct_flags` allows: network, ipc, uts, pid and cgroup namespaces change none of
    its files, a pid namespace only its children's.)"""
    for t, path in spec.namespaces:
        if path:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, _NS_FLAGS[t])
            finally:
                os.close(fd)


def _enter(spec: Spec, cg: cgroups.Manager, placed: bool) -> None:
    """The first steps of the process that becomes (or forks) the init, still as real root."""
    # Not dumpable until execve: a process of the container must not reach this host binary
    # (/proc/PID/exe, ptrace) while it runs in the container's namespaces (CVE-2019-5736).
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    cg.join_self(placed)
    if spec.process.oom_score_adj is not None:
        # here, as real root: children inherit it, and inside a user namespace /proc/self
        # of a process that is not dumpable belongs to a root the container is not
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(spec.process.oom_score_adj))


def _child_direct(spec: Spec, cg: cgroups.Manager, placed: bool, sock: socket.socket, fifo_fd: int, filt,
                  console: socket.socket | None, flags: int) -> None:
    """The init, cloned into its new namespaces (all but the cgroup one, made here once the
    cgroup v1 hierarchies are joined, so that it is rooted at the container's cgroups)."""
    try:
        _enter(spec, cg, placed)
        if flags & sc.CLONE_NEWCGROUP:
            sc.unshare(sc.CLONE_NEWCGROUP)
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        try:
            _send(sock, {"error": f"{e}"})
        finally:
            os._exit(1)
    _init(spec, sock, fifo_fd, filt, console, new_net=bool(flags & sc.CLONE_NEWNET))


def _child1(spec: Spec, cg: cgroups.Manager, placed: bool, sock: socket.socket, fifo_fd: int, filt,
            console: socket.socket | None) -> None:
    try:
        _enter(spec, cg, placed)
        _join_existing(spec)
        flags = _new_flags(spec)
        sc.unshare(flags)
        if flags & sc.CLONE_NEWUSER:
            # the runtime (real root) writes our maps; then we are root of the new namespace
            _send(sock, {"map": os.getpid()})
            if sock.recv(64) != b"mapped\n":
                raise OSError("user namespace maps were not written")
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
        c2 = os.fork()
        if c2 == 0:
            if flags & sc.CLONE_NEWUSER and flags & sc.CLONE_NEWPID:
                # Alone in a new PID namespace, and no longer host root: dumpable again, so that
                # /proc/self of the init belongs to the namespace's root (it uses /proc/self/fd)
                sc.prctl(sc.PR_SET_DUMPABLE, 1)
            _init(spec, sock, fifo_fd, filt, console, new_net=bool(flags & sc.CLONE_NEWNET))
            os._exit(1)
        _send(sock, {"pid": c2})
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - report anything to the parent
        try:
            _send(sock, {"error": f"{e}"})
        finally:
            os._exit(1)


def _lo_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, ifr)[:18])[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))       # SIOCSIFFLAGS IFF_UP
    finally:
        s.close()


def lookup(argv0: str, env: tuple[str, ...], cwd: str) -> str:
    """Find the executable as execvp would, inside the (already pivoted) root."""
    if "/" in argv0:
        path = argv0 if argv0.startswith("/") else os.path.join(cwd, argv0)
        if not os.path.exists(path):
            raise FileNotFoundError(f'exec: "{argv0}": stat {argv0}: no such file or directory')
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(f'exec: "{argv0}": permission denied')
        return path
    envd = dict(e.split("=", 1) for e in env if "=" in e)
    for d in envd.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        cand = os.path.join(d or ".", argv0)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError(f'exec: "{argv0}": executable file not found in $PATH')


def setup_console(console: socket.socket | None) -> None:
    """In the container's root: a new pty pair from its devpts; the master goes to the console
    socket, the slave becomes the controlling terminal and stdio."""
    if console is None:
        return
    master, slave = tty.open_pair()
    try:
        tty.send_master(console, master)
    finally:
        os.close(master)
        console.close()
    tty.become_session(slave)


def _init(spec: Spec, sock: socket.socket, fifo_fd: int, filt, console: socket.socket | None,
          new_net: bool) -> None:
    try:
        if any(t == "mount" for t, _ in spec.namespaces):
            rootfs.prepare(spec)
        if spec.hostname and any(t == "uts" for t, _ in spec.namespaces):
            sc.sethostname(spec.hostname)
            if spec.domainname:
                sc.setdomainname(spec.domainname)
        if new_net:
            _lo_up()
        for k, v in spec.sysctl.items():
            with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
                f.write(v)
        if any(t == "mount" for t, _ in spec.namespaces):
            rootfs.finalize(spec)
        setup_console(console)
        for r in spec.process.rlimits:   # checked now, set at the last moment (see _finalize)
            if r.type not in _RLIMITS:
                raise ValueError(f"unknown rlimit {r.type}")
        caps.last_cap()
        enter_cwd(spec.process.cwd)
        path = lookup(spec.process.args[0], spec.process.env, spec.process.cwd)
        _send(sock, {"ready": True})
        # the start gate: blocks until `start` opens the fifo for reading
        wfd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(wfd, b"0")
        os.close(wfd)
        sock.close()
        _finalize(spec, filt)
        env = dict(e.split("=", 1) for e in spec.process.env if "=" in e)
        os.execve(path, list(spec.process.args), env)
    except BaseException as e:  # noqa: BLE001
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.strerror}: {e.filename}"
        try:
            _send(sock, {"error": msg})
        except OSError:
            print(f"dockyard-runtime: {msg}", file=sys.stderr)
        os._exit(127 if isinstance(e, (FileNotFoundError, PermissionError)) else 1)


def enter_cwd(cwd: str) -> None:
    """chdir, then check that the directory is inside the container's root: a cwd such as
    /proc/self/fd/N could name a host directory through an inherited descriptor (CVE-2024-21626)."""
    try:
        os.chdir(cwd)
    except OSError as e:
        raise OSError(f"chdir to cwd (\"{cwd}\") set in config.json failed: {e.strerror}") from None
    try:
        now = os.getcwd()
    except FileNotFoundError:
        now = "(unreachable)"
    if now.startswith("(unreachable)") or not now.startswith("/"):
        raise OSError("current working directory is outside of container mount namespace root -- "
                      "possible container breakout detected")


def _clamp(v: int, hard_now: int) -> int:
    """Never ask for more than the current hard limit (no CAP_SYS_RESOURCE may be held)."""
    import resource
    if hard_now != resource.RLIM_INFINITY and (v < 0 or v > hard_now):
        return hard_now
    return v


def _finalize(spec: Spec, filt) -> None:
    """Close every inherited descriptor, set rlimits (a low nofile limit must not stop the
    runtime's own opens, so it comes after them), then seccomp (while CAP_SYS_ADMIN is held,
    unless no_new_privs), user, capabilities."""
    p = spec.process
    import resource
    os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    for r in p.rlimits:
        res = _RLIMITS.get(r.type)
        if res is not None:
            _, hard_now = resource.getrlimit(res)
            resource.setrlimit(res, (_clamp(r.soft, hard_now), _clamp(r.hard, hard_now)))
    if filt is not None and not p.no_new_privileges:
        filt.load()
    caps.drop_bounding(p.caps)   # while still root: it needs CAP_SETPCAP in effect
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(p.additional_gids))
    os.setresgid(p.gid, p.gid, p.gid)
    os.setresuid(p.uid, p.uid, p.uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    caps.apply(p.caps)
    if p.no_new_privileges:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if filt is not None:
            filt.load()
