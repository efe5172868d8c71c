"""Syscalls via ctypes (Python 3.11 has no os.unshare/os.setns/openat2/pivot_root)."""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL("libc.so.6", use_errno=True)  # find_library would run ldconfig
libc.syscall.restype = ctypes.c_long

SYS_pivot_root = 155
SYS_openat2 = 437
SYS_capget = 125
SYS_capset = 126

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _check(rc: int, what: str) -> int:
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return rc


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dirfd` with RESOLVE_* restrictions."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    while True:
        rc = libc.syscall(SYS_openat2, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
        if rc >= 0:
            return int(rc)
        e = ctypes.get_errno()
        if e != 11:  # EAGAIN: a rename raced the lookup; try again
            raise OSError(e, os.strerror(e), path)


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    """Open `path` as if `rootfd` were `/`: symlinks and `..` cannot leave the root."""
    return openat2(rootfd, path or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, mode)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2)."""
    _check(libc.mount(source.encode() if source else None, target.encode(),
                      fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                      data.encode() if data else None), f"mount {source} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(libc.umount2(target.encode(), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _check(libc.syscall(SYS_pivot_root, new_root.encode(), put_old.encode()), "pivot_root")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    """setns(2)."""
    _check(libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    """sethostname(2)."""
    b = name.encode()
    _check(libc.sethostname(b, len(b)), "sethostname")


def setdomainname(name: str) -> None:
    """setdomainname(2)."""
    b = name.encode()
    _check(libc.setdomainname(b, len(b)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                             ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f"prctl {option}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) with 64-bit masks (_LINUX_CAPABILITY_VERSION_3)."""
    hdr = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    for i in range(2):
        sh = 32 * i
        data[i].effective = (effective >> sh) & 0xFFFFFFFF
        data[i].permitted = (permitted >> sh) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> sh) & 0xFFFFFFFF
    _check(libc.syscall(SYS_capset, ctypes.byref(hdr), ctypes.byref(data)), "capset")


def setgroups(gids: list[int]) -> None:
    """setgroups(2)."""
    os.setgroups(gids)


# --- the new mount API (idmapped mounts) --------------------------------------------------
SYS_open_tree = 428
SYS_move_mount = 429
SYS_mount_setattr = 442
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def idmapped_bind(source: str, target: str, userns_fd: int) -> None:
    """Bind `source` onto `target` with its owners shifted through the user namespace's maps
    (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount)."""
    fd = _check(libc.syscall(SYS_open_tree, -100, source.encode(), OPEN_TREE_CLONE | os.O_CLOEXEC), f"open_tree {source}")
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(libc.syscall(SYS_mount_setattr, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)),
               f"idmap {source}")
        _check(libc.syscall(SYS_move_mount, fd, b"", -100, target.encode(), MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount {source} to {target}")
    finally:
        os.close(fd)


def userns_fd(uid_map: str, gid_map: str) -> int:
    """An fd of a new user namespace with these maps ("inside outside count" lines): a helper
    (util-linux `unshare --user`, spawned, never forked from this possibly threaded process)
    holds it while the maps are written and the fd opened, then ends."""
    import shutil
    import subprocess
    import time
    exe = shutil.which("unshare")
    if not exe:
        raise OSError(2, "util-linux unshare is needed to make the user namespace of an idmapped mount")
    p = subprocess.Popen([exe, "--user", "--", "cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, close_fds=True)
    try:
        me = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{p.pid}/ns/user") == me or os.readlink(f"/proc/{p.pid}/exe").endswith("unshare"):
            if p.poll() is not None or time.monotonic() > deadline:
                raise OSError(1, "unshare --user did not start")
            time.sleep(0.001)
        with open(f"/proc/{p.pid}/uid_map", "w") as f:
            f.write(uid_map)
        with open(f"/proc/{p.pid}/gid_map", "w") as f:
            f.write(gid_map)
        return os.open(f"/proc/{p.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        if p.stdin:
            p.stdin.close()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


SYS_clone3 = 435
CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("pidfd", ctypes.c_uint64), ("child_tid", ctypes.c_uint64),
                ("parent_tid", ctypes.c_uint64), ("exit_signal", ctypes.c_uint64), ("stack", ctypes.c_uint64),
                ("stack_size", ctypes.c_uint64), ("tls", ctypes.c_uint64), ("set_tid", ctypes.c_uint64),
                ("set_tid_size", ctypes.c_uint64), ("cgroup", ctypes.c_uint64)]


_pylibc = ctypes.PyDLL("libc.so.6", use_errno=True)   # called with the GIL held, as os.fork is
_pylibc.syscall.restype = ctypes.c_long


def fork_into_cgroup(cgroup_fd: int, flags: int = 0) -> int:
    """os.fork(), with the child born in the cgroup v2 directory `cgroup_fd` (clone3 with
    CLONE_INTO_CGROUP; -1: where the caller is) and in the new namespaces `flags` (CLONE_NEW*).
    Joining a cgroup by writing cgroup.procs takes the kernel's global
    threadgroup lock, which waits for an RCU grace period (5-15 ms measured here); a child
    placed at birth does not. Only for a single-threaded caller (as os.fork, Python's fork
    hooks run; glibc's do not, so nothing may be running in another thread). Raises OSError
    (ENOSYS, EINVAL, …) when the kernel cannot: the caller then forks and joins the slow way."""
    import signal
    args = _CloneArgs(flags=flags | (CLONE_INTO_CGROUP if cgroup_fd >= 0 else 0), exit_signal=signal.SIGCHLD,
                      cgroup=max(cgroup_fd, 0))
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = _pylibc.syscall(SYS_clone3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return int(pid)
