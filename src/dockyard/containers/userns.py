"""`--userns-remap`: containers' root mapped to an unprivileged range of host ids, as dockerd
does it (the book's 2.4.3). `default` means the `dockremap` user and group, created with
/etc/subuid and /etc/subgid ranges when missing; `user[:group]` names (or numbers) whose first
subordinate ranges are used. The image's layers are shared, not copied: they are mounted through
idmapped mounts below the container's overlay (see idmap_lowers)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
from dataclasses import dataclass

from ..errors import InvalidArgument

DEFAULT_USER = "dockremap"
RANGE = 65536


@dataclass(frozen=True)
class Remap:
    """The host ranges a container's ids 0..N-1 map to."""

    user: str
    group: str
    uid: int
    uid_len: int
    gid: int
    gid_len: int

    def oci_uid_mappings(self) -> list[dict[str, int]]:
        """OCI linux.uidMappings."""
        return [{"containerID": 0, "hostID": self.uid, "size": self.uid_len}]

    def oci_gid_mappings(self) -> list[dict[str, int]]:
        """OCI linux.gidMappings."""
        return [{"containerID": 0, "hostID": self.gid, "size": self.gid_len}]

    def to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """Host owners of a container's files → the container's own ids."""
        return (uid - self.uid if self.uid <= uid < self.uid + self.uid_len else uid,
                gid - self.gid if self.gid <= gid < self.gid + self.gid_len else gid)

    def to_host(self, uid: int, gid: int) -> tuple[int, int]:
        """The container's ids → the host ids its files are stored with (65534 outside the range)."""
        return (uid + self.uid if 0 <= uid < self.uid_len else 65534,
                gid + self.gid if 0 <= gid < self.gid_len else 65534)

    def proc_maps(self) -> tuple[str, str]:
        """uid_map and gid_map texts."""
        return f"0 {self.uid} {self.uid_len}\n", f"0 {self.gid} {self.gid_len}\n"


def _ranges(path: str, names: set[str]) -> list[tuple[int, int]]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in names:
                    out.append((int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def _next_start(path: str) -> int:
    end = 100000
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
    except FileNotFoundError:
        pass
    return end


def ensure_default_user() -> None:
    """Create `dockremap` (a system user and group) and its subordinate ranges, as dockerd."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if not useradd:
            raise InvalidArgument("userns-remap default: useradd is not installed to create the dockremap user") from None
        subprocess.run([useradd, "--system", "--user-group", "--shell", "/bin/false", "--no-create-home",
                        DEFAULT_USER], check=True, capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        if not _ranges(path, {DEFAULT_USER}):
            start = _next_start(path)
            with open(path, "a") as f:
                f.write(f"{DEFAULT_USER}:{start}:{RANGE}\n")


def resolve(spec: str) -> Remap | None:
    """`default`, `user`, `user:group` (names or ids) → the ranges; None when not remapping."""
    if not spec:
        return None
    user, _, group = spec.partition(":")
    if user == "default":
        if group:
            raise InvalidArgument("userns-remap: 'default' takes no group")
        ensure_default_user()
        user = group = DEFAULT_USER
    group = group or user
    unames, gnames = {user}, {group}
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        unames |= {pw.pw_name, str(pw.pw_uid)}
    except (KeyError, ValueError):
        raise InvalidArgument(f"userns-remap: no such user {user}") from None
    import grp
    try:
        gr = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
        gnames |= {gr.gr_name, str(gr.gr_gid)}
    except (KeyError, ValueError):
        raise InvalidArgument(f"userns-remap: no such group {group}") from None
    uids, gids = _ranges("/etc/subuid", unames), _ranges("/etc/subgid", gnames)
    if not uids:
        raise InvalidArgument(f"userns-remap: no subuid ranges found for user {user!r} in /etc/subuid")
    if not gids:
        raise InvalidArgument(f"userns-remap: no subgid ranges found for group {group!r} in /etc/subgid")
    return Remap(pw.pw_name, gr.gr_name, uids[0][0], uids[0][1], gids[0][0], gids[0][1])


def check_create(hc: dict, remap: Remap | None) -> None:
    """What a remapped container cannot have (dockerd's words), unless it asks for --userns=host."""
    if remap is None or hc.get("UsernsMode") == "host":
        return
    if hc.get("Privileged"):
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You must run the container "
                              "in the host namespace when running privileged mode")
    for key, what in (("NetworkMode", "network"), ("PidMode", "PID"), ("IpcMode", "IPC"), ("UTSMode", "UTS")):
        mode = hc.get(key) or ""
        if mode == "host":
            raise InvalidArgument(f"Cannot share the host's {what} namespace when user namespaces are enabled")
        if mode.startswith("container:"):
            raise InvalidArgument(f"{key} {mode}: joining another container's namespaces is not supported with "
                                  "userns-remap yet")


def idmap_lowers(options: tuple[str, ...], remap: Remap, where: str) -> tuple[str, ...]:
    """Overlay options whose lower layers are replaced by idmapped binds under `where` (one per
    layer, shifted into the remapped range): the image stays shared and unchanged on disk."""
    from ..linux import syscalls as sc
    out = []
    fd = _userns_fd(remap)
    for o in options:
        if not o.startswith("lowerdir="):
            out.append(o)
            continue
        mapped = []
        for i, lower in enumerate(o[len("lowerdir="):].split(":")):
            target = os.path.join(where, str(i))
            os.makedirs(target, exist_ok=True)
            sc.idmapped_bind(lower, target, fd)
            mapped.append(target)
        out.append("lowerdir=" + ":".join(mapped))
    return tuple(out)


_FDS: dict[Remap, int] = {}
_FDS_LOCK = threading.Lock()


def _userns_fd(remap: Remap) -> int:
    """One user namespace with the remap's maps for the daemon's lifetime (an idmapped mount
    only needs its maps; making one per start cost a fork)."""
    from ..linux import syscalls as sc
    with _FDS_LOCK:
        if remap not in _FDS:
            _FDS[remap] = sc.userns_fd(*remap.proc_maps())
        return _FDS[remap]


def shifted_copy(lower: str, remap: Remap) -> str:
    """The fallback where idmapped mounts are refused: a copy of a layer beside it with every
    owner shifted into the range, made once per layer and range (and removed with the layer)."""
    target = f"{lower}-remap-{remap.uid}-{remap.gid}"
    if os.path.isdir(target):
        return target
    import uuid
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    subprocess.run(["cp", "-a", "--reflink=auto", lower, tmp], check=True, capture_output=True)
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in [""] + dirnames + filenames:
            p = os.path.join(dirpath, name) if name else dirpath
            if not name and dirpath != tmp:
                continue   # directories are handled as entries of their parent
            st = os.lstat(p)
            uid, gid = remap.to_host(st.st_uid, st.st_gid)
            os.lchown(p, uid, gid)
            if not os.path.islink(p) and st.st_mode & 0o6000:
                os.chmod(p, st.st_mode & 0o7777)   # chown cleared setuid/setgid
    try:
        os.rename(tmp, target)
    except OSError:   # another start made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def copied_lowers(options: tuple[str, ...], remap: Remap) -> tuple[str, ...]:
    """Overlay options whose lower layers are shifted copies (see shifted_copy)."""
    return tuple("lowerdir=" + ":".join(shifted_copy(p, remap) for p in o[len("lowerdir="):].split(":"))
                 if o.startswith("lowerdir=") else o for o in options)


def unmount_idmaps(where: str) -> None:
    """Detach the idmapped layer binds of a container."""
    from ..linux import syscalls as sc
    if not os.path.isdir(where):
        return
    for name in os.listdir(where):
        p = os.path.join(where, name)
        try:
            sc.umount2(p, sc.MNT_DETACH)
        except OSError:
            pass
        try:
            os.rmdir(p)
        except OSError:
            pass
