"""Build the container's root: mounts (targets resolved inside the rootfs), /dev, pivot_root,
masked and read-only paths. Runs in the container's init, in its new mount namespace."""

from __future__ import annotations

import os
import posixpath
import stat

from ..linux import syscalls as sc
from .spec import Device, MountSpec, Spec

_FLAGS = {
    "ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False),
    "nosuid": (sc.MS_NOSUID, True), "suid": (sc.MS_NOSUID, False),
    "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
    "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False),
    "bind": (sc.MS_BIND, True), "rbind": (sc.MS_BIND | sc.MS_REC, True),
    "strictatime": (sc.MS_STRICTATIME, True), "relatime": (0, True),
    "private": (0, True), "rprivate": (0, True), "slave": (0, True), "rslave": (0, True),
    "shared": (0, True), "rshared": (0, True), "noatime": (1024, True), "nodiratime": (2048, True),
}
_PROP = {"private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC, "slave": sc.MS_SLAVE,
         "rslave": sc.MS_SLAVE | sc.MS_REC, "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC}


def parse_options(options: tuple[str, ...]) -> tuple[int, int, str]:
    """mount flags, propagation flags and the data string from OCI mount options."""
    flags, prop, data = 0, 0, []
    for o in options:
        if o in _FLAGS:
            bit, on = _FLAGS[o]
            flags = flags | bit if on else flags & ~bit
            if o in _PROP:
                prop |= _PROP[o]
        else:
            data.append(o)
    return flags, prop, ",".join(data)


def mkdir_in_root(rootfd: int, rel: str, is_file: bool, _depth: int = 0) -> int:
    """Create `rel` (a dir, or an empty file if `is_file`) inside the root, never following a
    symlink out of it; return an O_PATH fd of the result. A dangling symlink on the way is
    followed as if the root were `/` (its target made inside the root, as runc's securejoin)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    fd = os.dup(rootfd)
    try:
        for i, comp in enumerate(parts):
            last = i == len(parts) - 1
            try:
                nfd = sc.open_in_root(fd, comp, os.O_PATH)
            except FileNotFoundError:
                try:
                    link = os.readlink(comp, dir_fd=fd)
                except OSError:
                    link = None
                if link is not None:   # dangling: resolve it inside the root and go on from there
                    if _depth > 40:
                        raise OSError(40, f"too many levels of symbolic links: {rel}") from None
                    base = "/" if link.startswith("/") else "/" + "/".join(parts[:i])
                    rest = posixpath.normpath(posixpath.join(base, link, *parts[i + 1:]))
                    os.close(fd)
                    fd = -1
                    return mkdir_in_root(rootfd, rest, is_file, _depth + 1)
                if last and is_file:
                    os.close(os.open(comp, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755, dir_fd=fd))
                else:
                    os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = sc.open_in_root(fd, comp, os.O_PATH)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def locked(path: str) -> int:
    """The flags of the mount at `path` that a remount must keep: in a user namespace the kernel
    locks nosuid/nodev/noexec/atime flags of mounts inherited from outside (EPERM otherwise)."""
    f = os.statvfs(path).f_flag
    out = f & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | 1024 | 2048)   # same bits as ST_*; 1024/2048: noatime/nodiratime
    if f & 4096:   # ST_RELATIME
        out |= 1 << 21   # MS_RELATIME
    return out


def do_mount(rootfd: int, m: MountSpec, cgroupns: bool, userns: bool = False, cgroups_path: str = "") -> None:
    """Perform one spec mount inside the rootfs."""
    flags, prop, data = parse_options(m.options)
    is_bind = bool(flags & sc.MS_BIND) or m.type == "bind"
    src_is_file = is_bind and os.path.exists(m.source) and not os.path.isdir(m.source)
    if m.type == "cgroup":
        from . import cgroups
        if userns or (not cgroupns and not cgroups.is_unified()):
            # no cgroup namespace on v1 (dockerd's default there): as runc, the container sees its
            # own cgroup directories, not the host's hierarchies
            return _bind_cgroups(rootfd, m, flags, cgroups_path)
        return _mount_cgroup(rootfd, m, flags, cgroupns)
    if m.type in ("proc", "sysfs"):
        _refuse_symlink(rootfd, m)
    fd = mkdir_in_root(rootfd, m.destination, src_is_file)
    try:
        target = f"/proc/self/fd/{fd}"
        if is_bind:
            sc.mount(m.source, target, None, sc.MS_BIND | (flags & sc.MS_REC))
        else:
            sc.mount(m.source or m.type, target, m.type, flags, data or None)
        if (is_bind and flags & ~(sc.MS_BIND | sc.MS_REC)) or prop:
            os.close(fd)  # the old fd names the covered inode: reopen to reach the new mount
            fd = sc.open_in_root(rootfd, m.destination, os.O_PATH)
            target = f"/proc/self/fd/{fd}"
            if is_bind and flags & ~(sc.MS_BIND | sc.MS_REC):
                sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | (flags & ~sc.MS_REC) | locked(target))
            if prop:
                sc.mount(None, target, None, prop)
    finally:
        os.close(fd)


def _refuse_symlink(rootfd: int, m: MountSpec) -> None:
    """procfs and sysfs go on ordinary directories only: mounted through a symlink they would
    land where the image chose, and the masks meant for them would miss (CVE-2019-19921)."""
    parent, _, base = m.destination.strip("/").rpartition("/")
    pfd = mkdir_in_root(rootfd, parent, False)
    try:
        st = os.lstat(base, dir_fd=pfd)
    except FileNotFoundError:
        return
    finally:
        os.close(pfd)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"filesystem \"{m.type}\" must be mounted on ordinary directory ({m.destination})")


def _bind_cgroups(rootfd: int, m: MountSpec, flags: int, cgroups_path: str) -> None:
    """In a user namespace cgroup v1 cannot be mounted, and without a cgroup namespace a fresh
    mount would show the host's hierarchies: a tmpfs holds binds of the container's own cgroup
    directory in each hierarchy (as runc does)."""
    from . import cgroups
    fd = mkdir_in_root(rootfd, m.destination, False)
    try:
        hier = cgroups.hierarchies()
        if cgroups.is_unified():
            sc.mount(hier.get("", "/sys/fs/cgroup") + cgroups_path, f"/proc/self/fd/{fd}", None, sc.MS_BIND)
            return
        sc.mount("tmpfs", f"/proc/self/fd/{fd}", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
        os.close(fd)
        fd = sc.open_in_root(rootfd, m.destination, os.O_PATH | os.O_DIRECTORY)
        for name, mp in hier.items():
            if name == "":
                continue
            sfd = mkdir_in_root(fd, os.path.basename(mp), False)
            try:
                sc.mount(mp + cgroups_path, f"/proc/self/fd/{sfd}", None, sc.MS_BIND)
                if flags & sc.MS_RDONLY:
                    os.close(sfd)
                    sfd = sc.open_in_root(fd, os.path.basename(mp), os.O_PATH)
                    t = f"/proc/self/fd/{sfd}"
                    sc.mount(None, t, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | locked(t))
            finally:
                os.close(sfd)
    finally:
        os.close(fd)


def _mount_cgroup(rootfd: int, m: MountSpec, flags: int, cgroupns: bool) -> None:
    from . import cgroups
    fd = mkdir_in_root(rootfd, m.destination, False)
    target = f"/proc/self/fd/{fd}"
    try:
        hier = cgroups.hierarchies()
        if cgroups.is_unified():
            sc.mount("cgroup2", target, "cgroup2", flags)
            return
        sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=755")
        os.close(fd)
        fd = sc.open_in_root(rootfd, m.destination, os.O_PATH | os.O_DIRECTORY)  # the new tmpfs
        target = f"/proc/self/fd/{fd}"
        for name, mp in hier.items():
            if name == "":
                continue  # hybrid host: like runc, only the v1 controllers are shown
            sub = os.path.basename(mp)
            sfd = mkdir_in_root(fd, sub, False)
            try:
                opts = ",".join("name=" + n if n == "systemd" else n for n in name.split(","))
                sc.mount("cgroup", f"/proc/self/fd/{sfd}", "cgroup", flags, opts)
            finally:
                os.close(sfd)
        if flags & sc.MS_RDONLY:
            sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    finally:
        os.close(fd)


def create_devices(rootfd: int, devices: tuple[Device, ...]) -> None:
    """mknod the spec's devices (bind-mount from the host if mknod is refused)."""
    for d in devices:
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.type]
        parent, _, base = d.path.strip("/").rpartition("/")
        pfd = mkdir_in_root(rootfd, parent, False)
        try:
            try:
                os.unlink(base, dir_fd=pfd)
            except FileNotFoundError:
                pass
            try:
                os.mknod(base, kind | (d.mode & 0o777), os.makedev(d.major, d.minor), dir_fd=pfd)
            except PermissionError:
                # a user namespace may not make device nodes: bind the host's node instead
                os.close(os.open(base, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd))
                nfd = sc.open_in_root(pfd, base, os.O_PATH)
                try:
                    sc.mount(d.path if os.path.exists(d.path) else "/dev/null", f"/proc/self/fd/{nfd}", None, sc.MS_BIND)
                finally:
                    os.close(nfd)
                continue
            os.chown(base, d.uid, d.gid, dir_fd=pfd, follow_symlinks=False)
            os.chmod(base, d.mode & 0o7777, dir_fd=pfd)   # mknod's mode went through the umask
        finally:
            os.close(pfd)


def default_symlinks(rootfd: int) -> None:
    """/dev/fd, stdin, stdout, stderr, ptmx, core as runc creates them."""
    links = {"dev/fd": "/proc/self/fd", "dev/stdin": "/proc/self/fd/0", "dev/stdout": "/proc/self/fd/1",
             "dev/stderr": "/proc/self/fd/2", "dev/ptmx": "pts/ptmx"}
    if os.path.exists("/proc/kcore"):
        links["dev/core"] = "/proc/kcore"
    dfd = sc.open_in_root(rootfd, "dev", os.O_PATH | os.O_DIRECTORY)
    try:
        for rel, target in links.items():
            try:
                os.symlink(target, rel[4:], dir_fd=dfd)
            except FileExistsError:
                pass
    finally:
        os.close(dfd)


def pivot(root: str) -> None:
    """pivot_root into `root` and detach the old root."""
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def mask_paths(paths: tuple[str, ...]) -> None:
    """Hide paths: /dev/null over files, an empty read-only tmpfs over directories."""
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY, None)
        else:
            sc.mount("/dev/null", p, None, sc.MS_BIND)


def readonly_paths(paths: tuple[str, ...]) -> None:
    """Bind each path onto itself and remount it read-only."""
    for p in paths:
        if not os.path.exists(p):
            continue
        sc.mount(p, p, None, sc.MS_BIND | sc.MS_REC)
        sc.mount(None, p, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_REC | locked(p))


def prepare(spec: Spec) -> None:
    """Everything up to and including pivot_root."""
    sc.mount(None, "/", None, _PROP.get(spec.rootfs_propagation, sc.MS_SLAVE | sc.MS_REC))
    root = str(spec.root)
    sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    cgroupns = any(t == "cgroup" for t, _ in spec.namespaces)
    userns = any(t == "user" for t, _ in spec.namespaces)
    try:
        dev_tmpfs = False
        for m in spec.mounts:
            do_mount(rootfd, m, cgroupns, userns, spec.cgroups_path)
            if m.destination.rstrip("/") == "/dev" and m.type == "tmpfs":
                dev_tmpfs = True
        if dev_tmpfs:
            create_devices(rootfd, spec.devices)
            default_symlinks(rootfd)
    finally:
        os.close(rootfd)
    pivot(root)


def finalize(spec: Spec) -> None:
    """After the sysctls are written (as runc orders it): masked and read-only paths, read-only root."""
    mask_paths(spec.masked_paths)
    readonly_paths(spec.readonly_paths)
    if spec.root_readonly:
        sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_REC | locked("/"))
