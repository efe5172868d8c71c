"""Capabilities: names ↔ numbers, and applying a process's sets."""

from __future__ import annotations

import errno
import functools

from ..linux import syscalls as sc

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
NUMBER = {n: i for i, n in enumerate(NAMES)}


@functools.lru_cache(maxsize=1)
def last_cap() -> int:
    """Highest capability the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def mask(names: tuple[str, ...] | list[str]) -> int:
    """Bit mask of capability names (unknown names are ignored, as runc warns and skips)."""
    m = 0
    top = last_cap()
    for n in names:
        i = NUMBER.get(n.upper() if n.upper().startswith("CAP_") else "CAP_" + n.upper())
        if i is not None and i <= top:
            m |= 1 << i
    return m


def drop_bounding(caps: dict[str, tuple[str, ...]]) -> None:
    """Drop what the bounding set leaves out. Needs CAP_SETPCAP in the effective set: call it
    before the process changes to a non-root user (which clears the effective set)."""
    bounding = mask(caps.get("bounding", ()))
    for i in range(last_cap() + 1):
        if not bounding & (1 << i):
            try:
                sc.prctl(sc.PR_CAPBSET_DROP, i)
            except OSError as e:
                if e.errno != errno.EINVAL:   # EINVAL: a capability this kernel does not have
                    raise


def apply(caps: dict[str, tuple[str, ...]]) -> None:
    """Set effective/permitted/inheritable and ambient (the bounding set was dropped before the change of
    user: `drop_bounding`)."""
    sc.capset(mask(caps.get("effective", ())), mask(caps.get("permitted", ())), mask(caps.get("inheritable", ())))
    try:
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
        amb = mask(caps.get("ambient", ()))
        for i in range(last_cap() + 1):
            if amb & (1 << i):
                sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, i)
    except OSError:
        pass
