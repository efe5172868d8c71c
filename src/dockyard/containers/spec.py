"""Turn a container's config into an OCI runtime spec, with Docker's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .seccomp_profile import default_profile, to_oci

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
           ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]
DEVICE_RULES = [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},
                {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
                *({"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"} for _, ma, mi in DEVICES),
                {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rwm"},
                {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]


@dataclass(frozen=True)
class SpecInput:
    """Everything the spec needs, already resolved (user ids, paths)."""

    cid: str
    rootfs: str
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    hostname: str
    domainname: str
    network_mode: str          # none | host | default
    files: dict[str, str]      # /etc/hosts etc. → host path
    cgroup_parent: str = "dockyard"
    readonly_rootfs: bool = False
    privileged: bool = False


def build(si: SpecInput) -> dict[str, Any]:
    """The config.json for a container."""
    caps = DEFAULT_CAPS
    if si.uid == 0:
        capsets = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    else:
        capsets = {"bounding": list(caps), "effective": [], "permitted": []}
    ns = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if si.network_mode != "host":
        ns.append({"type": "network"})
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
    ]
    for dest, src in si.files.items():
        mounts.append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
    hostname = si.hostname if si.network_mode != "host" else ""
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": si.uid, "gid": si.gid, "additionalGids": si.additional_gids},
            "args": si.args, "env": si.env, "cwd": si.cwd or "/",
            "capabilities": capsets,
            "noNewPrivileges": False,
            "oomScoreAdj": 0,
        },
        "root": {"path": si.rootfs, "readonly": si.readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": f"/{si.cgroup_parent}/{si.cid}",
            "resources": {"devices": DEVICE_RULES},
            "namespaces": ns,
            "devices": [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                        for p, ma, mi in DEVICES],
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
            "seccomp": to_oci(default_profile(), capsets["bounding"]),
        },
    }
    if si.domainname and hostname:
        spec["domainname"] = si.domainname
    return spec
