"""Turn a container's config into an OCI runtime spec, with Docker's defaults. Every HostConfig
field that fields.py marks "applied" and that lives in the spec is placed here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import resources, security
from .seccomp_profile import default_profile, to_oci
from .userns import Remap

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
DEFAULT_SHM = 64 * 1024 * 1024


@dataclass(frozen=True)
class SpecInput:
    """Everything the spec needs, already resolved (user ids, paths, namespaces to join)."""

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
    files: dict[str, str]      # /etc/hosts etc. → host path
    host_config: dict[str, Any] = field(default_factory=dict)
    cgroup_parent: str = "dockyard"
    join: dict[str, str] = field(default_factory=dict)   # namespace type → /proc/<pid>/ns/<type>
    default_ulimits: dict[str, dict[str, Any]] = field(default_factory=dict)
    shm_source: str = ""       # host tmpfs bound as /dev/shm (IpcMode shareable, container:<id>)
    userns: Remap | None = None   # userns-remap: a user namespace with these maps
    mounts: list[dict[str, Any]] = field(default_factory=list)   # volumes, binds, tmpfs (OCI mounts)
    terminal: bool = False     # Tty: the process gets a pty (process.terminal)


def _namespaces(si: SpecInput) -> list[dict[str, str]]:
    hc = si.host_config
    ns: list[dict[str, str]] = [{"type": "mount"}]
    modes = {"pid": hc.get("PidMode") or "", "ipc": hc.get("IpcMode") or "private",
             "uts": hc.get("UTSMode") or "", "cgroup": hc.get("CgroupnsMode") or "private",
             "network": hc.get("NetworkMode") or "default"}
    for t, mode in modes.items():
        if mode == "host" or (t == "cgroup" and mode != "private"):
            continue
        if t in si.join:
            ns.append({"type": t, "path": si.join[t]})
        else:
            ns.append({"type": t})
    return ns


def _mounts(si: SpecInput, privileged: bool, writable_cgroups: bool) -> list[dict[str, Any]]:
    hc = si.host_config
    ro = [] if privileged else ["ro"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*([] if privileged or writable_cgroups else ["ro"]), "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    ipc = hc.get("IpcMode") or "private"
    if (ipc == "shareable" or ipc.startswith("container:")) and si.shm_source:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": si.shm_source,
                       "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]})
    elif ipc == "host":
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate"]})
    elif ipc != "none" and not ipc.startswith("container:"):
        size = hc.get("ShmSize") or DEFAULT_SHM
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"]})
    for dest, src in si.files.items():
        mounts.append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
    mine = {m["destination"] for m in si.mounts}   # the user's own mounts replace ours at the same place
    return [m for m in mounts if m["destination"] not in mine] + si.mounts


def build(si: SpecInput) -> dict[str, Any]:
    """The config.json for a container."""
    hc = dict(si.host_config)
    privileged = bool(hc.get("Privileged"))
    caps = security.capabilities(hc)
    profile, nnp, writable_cgroups = security.security_opts(hc, default_profile())
    if si.uid == 0:
        capsets = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    else:
        capsets = {"bounding": list(caps), "effective": [], "permitted": []}
    devices = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
               for p, ma, mi in DEVICES]
    rules = list(DEVICE_RULES)
    if privileged:
        devices = security.host_devices()
        rules = [{"allow": True, "access": "rwm"}]
    extra_devs, extra_rules = security.devices(hc)
    devices += [d for d in extra_devs if d["path"] not in {x["path"] for x in devices}]
    rules += extra_rules
    res = resources.to_oci(hc)
    res["devices"] = rules
    uts_host = hc.get("UTSMode") == "host" or hc.get("NetworkMode") == "host"
    hostname = "" if uts_host or "uts" in si.join else si.hostname   # a joined UTS namespace keeps its name
    masked = hc.get("MaskedPaths")
    readonly = hc.get("ReadonlyPaths")
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": si.terminal,
            "user": {"uid": si.uid, "gid": si.gid, "additionalGids": si.additional_gids},
            "args": si.args, "env": si.env, "cwd": si.cwd or "/",
            "capabilities": capsets,
            "noNewPrivileges": nnp,
            "oomScoreAdj": int(hc.get("OomScoreAdj") or 0),
        },
        "root": {"path": si.rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": _mounts(si, privileged, writable_cgroups),
        "linux": {
            "cgroupsPath": f"/{(hc.get('CgroupParent') or si.cgroup_parent).strip('/')}/{si.cid}",
            "resources": res,
            "namespaces": _namespaces(si),
            "devices": devices,
            "maskedPaths": [] if privileged else list(security.MASKED if masked is None else masked),
            "readonlyPaths": [] if privileged else list(security.READONLY if readonly is None else readonly),
        },
    }
    rl = resources.ulimits(hc, si.default_ulimits)
    if rl:
        spec["process"]["rlimits"] = rl
    sysctl = security.sysctls(hc)
    if sysctl:
        spec["linux"]["sysctl"] = sysctl
    if profile is not None:
        spec["linux"]["seccomp"] = to_oci(profile, capsets["bounding"])
    if si.userns is not None:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = si.userns.oci_uid_mappings()
        spec["linux"]["gidMappings"] = si.userns.oci_gid_mappings()
    size = hc.get("ConsoleSize") or [0, 0]
    if si.terminal and size[0] and size[1]:
        spec["process"]["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
    if hc.get("Annotations"):
        spec["annotations"] = {str(k): str(v) for k, v in hc["Annotations"].items()}
    if si.domainname and hostname:
        spec["domainname"] = si.domainname
    return spec
