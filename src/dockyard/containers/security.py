"""Security options of HostConfig, validated with dockerd's messages and turned into the parts
of the OCI spec they decide: capabilities, seccomp, no_new_privs, devices and their cgroup
rules, sysctls, masked and read-only paths, namespace modes."""

from __future__ import annotations

import functools
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgument
from ..runtime.caps import NAMES as ALL_CAP_NAMES

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced"}
_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


@dataclass
class Security:
    """What the security options decided for one container."""

    caps: list[str]
    seccomp: dict[str, Any] | None        # Docker-format profile, None = unconfined
    no_new_privileges: bool
    privileged: bool
    devices: list[dict[str, Any]] = field(default_factory=list)       # OCI linux.devices
    device_rules: list[dict[str, Any]] = field(default_factory=list)  # OCI resources.devices (allow rules)
    writable_cgroups: bool = False


@functools.lru_cache(maxsize=1)
def host_caps() -> list[str]:
    """The capabilities this daemon's bounding set holds: all that a container can be given."""
    bnd = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                bnd = int(line.split()[1], 16)
    return [n for i, n in enumerate(ALL_CAP_NAMES) if bnd & (1 << i)]


def _cap_name(n: str) -> str:
    u = str(n).upper()
    if u == "ALL":
        return u
    u = u if u.startswith("CAP_") else "CAP_" + u
    if u not in ALL_CAP_NAMES:
        raise InvalidArgument(f'unknown capability: "{u}"')
    return u


def capabilities(hc: dict[str, Any]) -> list[str]:
    """moby's TweakCapabilities, over what the host can grant."""
    avail = host_caps()
    if hc.get("Privileged"):
        return list(avail)
    adds = [_cap_name(c) for c in hc.get("CapAdd") or []]
    drops = [_cap_name(c) for c in hc.get("CapDrop") or []]
    if "ALL" in adds:
        out = [c for c in avail if c not in drops]
    elif "ALL" in drops:
        out = [c for c in adds if c != "ALL"]
    else:
        out = [c for c in DEFAULT_CAPS if c not in drops] + [c for c in adds if c not in DEFAULT_CAPS]
    missing = [c for c in out if c not in avail]
    if missing:
        raise InvalidArgument(f"capability {', '.join(missing)}: the daemon's bounding set lacks it, "
                              "so no container can be given it on this host")
    return list(dict.fromkeys(out))


def security_opts(hc: dict[str, Any], default_profile: dict[str, Any]) -> tuple[dict[str, Any] | None, bool, bool]:
    """(seccomp profile or None, no_new_privileges, writable cgroups) from SecurityOpt, with
    dockerd's parse rules and messages. Systempaths=unconfined clears the masked paths."""
    profile: dict[str, Any] | None = default_profile
    nnp, writable = False, False
    for opt in hc.get("SecurityOpt") or []:
        if not isinstance(opt, str):
            raise InvalidArgument(f"invalid --security-opt 1: {opt!r}")
        k, eq, v = opt.partition("=")
        if not eq:
            k, eq, v = opt.partition(":")
            if not eq and k == "no-new-privileges":
                nnp = True
                continue
        if not eq:
            raise InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        if k == "seccomp":
            if v == "unconfined":
                profile = None
            elif v in ("builtin", ""):
                profile = default_profile
            else:
                try:
                    profile = json.loads(v)
                    if not isinstance(profile, dict):
                        raise ValueError("not an object")
                except ValueError as e:
                    raise InvalidArgument(f"Decoding seccomp profile failed: {e}") from None
        elif k == "no-new-privileges":
            nnp = _bool(v, opt)
        elif k == "writable-cgroups":
            writable = _bool(v, opt)
        elif k == "systempaths":
            if v != "unconfined":
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
            hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
        elif k == "apparmor":
            if v != "unconfined" and not _lsm("apparmor"):
                raise InvalidArgument(f'--security-opt {opt}: AppArmor is not enabled on this host')
            if v != "unconfined":
                raise InvalidArgument(f"--security-opt {opt}: AppArmor profiles are not supported by Dockyard yet")
        elif k == "label":
            if v != "disable" and not _lsm("selinux"):
                raise InvalidArgument(f'--security-opt {opt}: SELinux is not enabled on this host')
            if v != "disable":
                raise InvalidArgument(f"--security-opt {opt}: SELinux labels are not supported by Dockyard yet")
        else:
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    if hc.get("Privileged"):
        profile = None
    return profile, nnp, writable


def _bool(v: str, opt: str) -> bool:
    if v.lower() in ("1", "t", "true"):
        return True
    if v.lower() in ("0", "f", "false"):
        return False
    raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')


def _lsm(name: str) -> bool:
    try:
        with open("/sys/kernel/security/lsm") as f:
            return name in f.read().split(",")
    except OSError:
        return False


def _device(path: str, ctr_path: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        t = "c"
    elif stat.S_ISBLK(st.st_mode):
        t = "b"
    else:
        return None
    ma, mi = os.major(st.st_rdev), os.minor(st.st_rdev)
    return ({"path": ctr_path, "type": t, "major": ma, "minor": mi, "fileMode": stat.S_IMODE(st.st_mode),
             "uid": st.st_uid, "gid": st.st_gid},
            {"allow": True, "type": t, "major": ma, "minor": mi, "access": "rwm"})


def devices(hc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """HostConfig.Devices and DeviceCgroupRules → (OCI devices, cgroup allow rules)."""
    devs: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for d in hc.get("Devices") or []:
        host = str(d.get("PathOnHost") or "")
        ctr = str(d.get("PathInContainer") or host)
        perms = str(d.get("CgroupPermissions") or "rwm")
        if not perms or any(c not in "rwm" for c in perms):
            raise InvalidArgument(f"invalid device mode: {perms}")
        if not ctr.startswith("/"):
            raise InvalidArgument(f"{ctr} is not an absolute path")
        try:
            if os.path.isdir(host):
                found = []
                for dirpath, _, files in os.walk(host):
                    for fn in files:
                        hp = os.path.join(dirpath, fn)
                        got = _device(hp, os.path.join(ctr, os.path.relpath(hp, host)))
                        if got:
                            found.append(got)
            else:
                got = _device(host, ctr)
                if got is None:
                    raise InvalidArgument(f'error gathering device information while adding custom device "{host}": '
                                          "not a device node")
                found = [got]
        except OSError as e:
            raise InvalidArgument(f'error gathering device information while adding custom device "{host}": '
                                  f"{(e.strerror or str(e)).lower()}") from None
        for spec_dev, rule in found:
            rule["access"] = perms
            devs.append(spec_dev)
            rules.append(rule)
    for r in hc.get("DeviceCgroupRules") or []:
        m = _RULE.match(str(r))
        if not m:
            raise InvalidArgument(f"invalid device cgroup format '{r}'")
        t, ma, mi, acc = m.groups()
        rules.append({"allow": True, "type": t, "major": -1 if ma == "*" else int(ma),
                      "minor": -1 if mi == "*" else int(mi), "access": acc})
    return devs, rules


_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices() -> list[dict[str, Any]]:
    """Every device node of the host's /dev, as a privileged container gets them (runc's rules)."""
    out = []
    for dirpath, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        for fn in files:
            p = os.path.join(dirpath, fn)
            if p in ("/dev/console", "/dev/ptmx") or os.path.islink(p):
                continue
            try:
                got = _device(p, p)
            except OSError:
                continue
            if got:
                out.append(got[0])
    return out


def sysctls(hc: dict[str, Any]) -> dict[str, str]:
    """Namespaced sysctls only, as dockerd allows them."""
    out = {}
    ipc_host = hc.get("IpcMode") == "host"
    net_host = hc.get("NetworkMode") == "host"
    for k, v in (hc.get("Sysctls") or {}).items():
        if k in IPC_SYSCTLS or k.startswith("fs.mqueue."):
            if ipc_host:
                raise InvalidArgument(f"sysctl '{k}' is not allowed in the host's IPC namespace (--ipc host)")
        elif k.startswith("net."):
            if net_host:
                raise InvalidArgument(f"sysctl '{k}' is not allowed in the host's network namespace (--network host)")
        elif k in ("kernel.domainname", "kernel.hostname"):
            raise InvalidArgument(f"sysctl '{k}' is not allowed: use --hostname / --domainname")
        else:
            raise InvalidArgument(f"sysctl '{k}' is not whitelisted")
        if not isinstance(v, str):
            raise InvalidArgument(f"sysctl '{k}': the value must be a string")
        out[k] = v
    return out


def default_cgroupns() -> str:
    """dockerd's default: a cgroup namespace of its own on a cgroup v2 host, the host's on v1 (and hybrid)."""
    from ..runtime.cgroups import is_unified
    return "private" if is_unified() else "host"


def namespace_modes(hc: dict[str, Any], config: dict[str, Any]) -> None:
    """Validate IpcMode, PidMode, UTSMode, UsernsMode, CgroupnsMode with dockerd's messages."""
    ipc = hc.get("IpcMode") or "private"
    if ipc not in ("private", "shareable", "host", "none") and not (ipc.startswith("container:") and ipc[10:]):
        raise InvalidArgument(f"invalid IPC mode: {ipc}")
    hc["IpcMode"] = ipc
    pid = hc.get("PidMode") or ""
    if pid not in ("", "host") and not (pid.startswith("container:") and pid[10:]):
        raise InvalidArgument(f"invalid PID mode: {pid}")
    uts = hc.get("UTSMode") or ""
    if uts not in ("", "host"):
        raise InvalidArgument(f"invalid UTS mode: {uts}")
    if uts == "host" and config.get("Hostname"):
        raise InvalidArgument("Conflicting options: hostname and the UTS mode")
    userns = hc.get("UsernsMode") or ""
    if userns not in ("", "host"):
        raise InvalidArgument(f"invalid USER mode: {userns}: user namespaces (userns-remap) are not supported yet")
    cg = hc.get("CgroupnsMode") or default_cgroupns()
    if cg not in ("private", "host"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {cg}")
    hc["CgroupnsMode"] = cg
    iso = hc.get("Isolation") or ""
    if iso not in ("", "default"):
        raise InvalidArgument(f"Invalid isolation: {iso!r} - linux only supports 'default'")
