"""CRI configuration → the engine's create request: every field of `PodSandboxConfig`,
`ContainerConfig`, their Linux parts, security contexts and resources is **applied** (the table
says how) or **refused** with INVALID_ARGUMENT naming it. A field the project's .proto does not
know (a newer kubelet's) arrives as an unknown field and is refused by number too.

A pod sandbox is an engine container running the pod holder; the pod's containers are engine
containers that join its namespaces (`container:<sandbox>` modes), as dockershim laid pods out —
so they show in `docker ps`, use one request→spec table and survive a daemon restart."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from ..errors import InvalidArgument
from .proto import runtime_v1_pb2 as pb

log = logging.getLogger(__name__)

# field → how it is applied ("refused: …" where it is not). Shown in the README; a test checks that
# every field of these messages in the .proto is listed here.
TABLE: dict[str, dict[str, str]] = {
    "PodSandboxConfig": {
        "metadata": "the engine container's name k8s_POD_<name>_<namespace>_<uid>_<attempt>; echoed in status",
        "hostname": "the holder's UTS namespace, shared by the pod's containers",
        "log_directory": "joined with each container's log_path",
        "dns_config": "the pod's /etc/resolv.conf (servers, searches, options)",
        "port_mappings": "hostPort: DNAT rules to the pod's IP (Dockyard's firewall chains; UDP/TCP; SCTP refused)",
        "labels": "returned as given; also the holder container's Docker labels",
        "annotations": "returned as given",
        "linux": "see LinuxPodSandboxConfig (the holder itself has no masked or read-only /proc paths: it runs nothing else)",
        "windows": "refused: Linux containers only",
    },
    "LinuxPodSandboxConfig": {
        "cgroup_parent": "CgroupParent of the holder and of every container of the pod (cgroupfs layout)",
        "security_context": "see LinuxSandboxSecurityContext",
        "sysctls": "written in the pod's namespaces (namespaced sysctls only)",
        "overhead": "added to `resources`, written with them to the pod's cgroup",
        "resources": "the pod's cgroup (cgroup_parent) limits: CPU shares, CFS period and quota, memory limit (with the "
                     "overhead; kubelet sizes it the same); other fields, or no cgroup_parent: refused",
    },
    "LinuxSandboxSecurityContext": {
        "namespace_options": "network/pid/ipc: POD (the holder's), NODE (the host's); CONTAINER for pid",
        "selinux_options": "refused when set: no SELinux in this kernel",
        "run_as_user": "the holder's uid",
        "run_as_group": "the holder's gid",
        "readonly_rootfs": "the holder's root filesystem read-only",
        "supplemental_groups": "the holder's additional groups",
        "supplemental_groups_policy": "Merge applied; Strict refused",
        "privileged": "the holder runs privileged (and the pod's containers may)",
        "seccomp": "RuntimeDefault: Dockyard's default profile; Unconfined; Localhost: the profile file",
        "apparmor": "Unconfined accepted; other profiles refused: no AppArmor in this kernel",
        "seccomp_profile_path": "the same, in the deprecated string form",
    },
    "ContainerConfig": {
        "metadata": "the engine container's name k8s_<name>_<pod>_<namespace>_<uid>_<attempt>",
        "image": "the image (by ID, reference or digest); image.annotations refused when set",
        "command": "Entrypoint",
        "args": "Cmd",
        "working_dir": "WorkingDir",
        "envs": "Env",
        "mounts": "bind mounts (see Mount)",
        "devices": "HostConfig.Devices",
        "labels": "returned as given; also Docker labels",
        "annotations": "returned as given",
        "log_path": "the CRI log format at log_directory/log_path, written by the monitor",
        "stdin": "OpenStdin", "stdin_once": "StdinOnce", "tty": "Tty",
        "linux": "see LinuxContainerConfig",
        "windows": "refused: Linux containers only",
        "CDI_devices": "refused when set: no CDI registry here",
        "stop_signal": "StopSignal",
    },
    "Mount": {
        "container_path": "target", "host_path": "source (a missing directory is created, as containerd does)",
        "readonly": "ro", "propagation": "private→rprivate, host_to_container→rslave, bidirectional→rshared",
        "selinux_relabel": "a no-op where SELinux is off (this kernel: no label to give the files); refused where it is on",
        "uidMappings": "refused when set: no idmapped mounts", "gidMappings": "refused when set: no idmapped mounts",
        "recursive_read_only": "refused when true (RuntimeHandlerFeatures says so)",
        "image": "refused when set: image volumes not supported", "image_sub_path": "refused when set",
    },
    "LinuxContainerConfig": {"resources": "see LinuxContainerResources",
                             "security_context": "see LinuxContainerSecurityContext"},
    "LinuxContainerSecurityContext": {
        "capabilities": "CapAdd/CapDrop (ALL too); ambient capabilities refused when set",
        "privileged": "Privileged (needs a privileged sandbox)",
        "namespace_options": "pid POD/CONTAINER/NODE/TARGET, ipc POD/NODE, network POD/NODE (as the sandbox's)",
        "selinux_options": "refused when set: no SELinux in this kernel",
        "run_as_user": "User uid", "run_as_group": "User gid", "run_as_username": "User name",
        "readonly_rootfs": "ReadonlyRootfs", "supplemental_groups": "GroupAdd",
        "supplemental_groups_policy": "Merge applied; Strict refused",
        "apparmor_profile": "as apparmor", "seccomp_profile_path": "as seccomp",
        "no_new_privs": "no-new-privileges", "masked_paths": "MaskedPaths", "readonly_paths": "ReadonlyPaths",
        "seccomp": "RuntimeDefault, Unconfined, Localhost", "apparmor": "Unconfined only (no AppArmor here)",
    },
    "LinuxContainerResources": {
        "cpu_period": "CpuPeriod", "cpu_quota": "CpuQuota", "cpu_shares": "CpuShares",
        "memory_limit_in_bytes": "Memory", "memory_swap_limit_in_bytes": "MemorySwap",
        "oom_score_adj": "OomScoreAdj, clamped to what the kernel lets this daemon set (logged)",
        "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems",
        "hugepage_limits": "refused when a limit is set: no hugetlb control here",
        "unified": "refused when set: this host's cgroups are v1",
    },
}

_PROPAGATION = {pb.PROPAGATION_PRIVATE: "rprivate", pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
                pb.PROPAGATION_BIDIRECTIONAL: "rshared"}


def refuse(field: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {why}")


def check_unknown(msg: Message, path: str) -> None:
    """Fields of a newer CRI than this .proto: refused by number, never dropped in silence."""
    from google.protobuf.unknown_fields import UnknownFieldSet
    unknown = UnknownFieldSet(msg)
    if len(unknown):
        nums = sorted({f.field_number for f in unknown})
        raise refuse(path, f"field number(s) {', '.join(map(str, nums))} are not known to Dockyard's CRI")
    for fd, value in msg.ListFields():
        if fd.type != fd.TYPE_MESSAGE:
            continue
        if fd.message_type.GetOptions().map_entry:
            continue
        if getattr(fd, "is_repeated", None) or getattr(fd, "label", 0) == 3:   # protobuf 7 / older
            for i, v in enumerate(value):
                check_unknown(v, f"{path}.{fd.name}[{i}]")
        else:
            check_unknown(value, f"{path}.{fd.name}")


# ---- security --------------------------------------------------------------------------

def _seccomp(opts: list[str], prof: pb.SecurityProfile | None, legacy: str, where: str) -> None:
    """SecurityOpt for a seccomp choice; unset (no message, no path) is Unconfined, as in the CRI."""
    if prof is not None:
        kind = prof.profile_type
        if kind == pb.SecurityProfile.RuntimeDefault:
            return
        if kind == pb.SecurityProfile.Unconfined:
            opts.append("seccomp=unconfined")
            return
        opts.append("seccomp=" + _profile_file(prof.localhost_ref, f"{where}.seccomp.localhost_ref"))
        return
    if legacy in ("runtime/default", "docker/default"):
        return
    if legacy in ("", "unconfined"):
        opts.append("seccomp=unconfined")
        return
    if legacy.startswith("localhost/"):
        opts.append("seccomp=" + _profile_file(legacy[len("localhost/"):], f"{where}.seccomp_profile_path"))
        return
    raise refuse(f"{where}.seccomp_profile_path", f"unknown profile {legacy!r}")


def _profile_file(path: str, field: str) -> str:
    if not os.path.isabs(path):
        raise refuse(field, f"a Localhost profile must be an absolute path, not {path!r}")
    try:
        text = Path(path).read_text()
        json.loads(text)
    except OSError as e:
        raise refuse(field, f"cannot read the seccomp profile: {e.strerror}") from None
    except ValueError as e:
        raise refuse(field, f"the seccomp profile is not JSON: {e}") from None
    return text


def _apparmor(prof: pb.SecurityProfile | None, legacy: str, where: str) -> None:
    if prof is not None and prof.profile_type != pb.SecurityProfile.Unconfined:
        if prof.profile_type == pb.SecurityProfile.RuntimeDefault and not _apparmor_enabled():
            raise refuse(f"{where}.apparmor", "AppArmor is not enabled in this kernel")
        raise refuse(f"{where}.apparmor", "AppArmor profiles are not supported by Dockyard")
    if legacy and legacy != "unconfined":
        raise refuse(f"{where}.apparmor_profile", "AppArmor is not enabled in this kernel"
                     if not _apparmor_enabled() else "AppArmor profiles are not supported by Dockyard")


def _apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def _selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _selinux(opt: pb.SELinuxOption, where: str) -> None:
    if opt.user or opt.role or opt.type or opt.level:
        raise refuse(f"{where}.selinux_options", "SELinux is not enabled in this kernel")


def _user(uid: pb.Int64Value | None, gid: pb.Int64Value | None, name: str, where: str) -> str:
    if gid is not None and uid is None and not name:
        raise refuse(f"{where}.run_as_group", "needs run_as_user or run_as_username")
    who = str(uid.value) if uid is not None else name
    if uid is not None and uid.value < 0:
        raise refuse(f"{where}.run_as_user", "must not be negative")
    if gid is not None:
        if gid.value < 0:
            raise refuse(f"{where}.run_as_group", "must not be negative")
        who += f":{gid.value}"
    return who


def _groups(policy: int, groups: list[int], where: str) -> list[str]:
    if policy == pb.Strict:
        raise refuse(f"{where}.supplemental_groups_policy", "Strict is not supported (Merge is)")
    return [str(g) for g in groups]


def own_oom_score_adj() -> int:
    try:
        return int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        return 0


def _can_lower_oom() -> bool:
    from ..containers.resources import _has_sys_resource
    return _has_sys_resource()


def clamp_oom(value: int, what: str) -> int:
    """A score below the daemon's own needs CAP_SYS_RESOURCE; without it the value is raised to the
    daemon's (containerd's restrict_oom_score_adj), and the log says so."""
    floor = own_oom_score_adj()
    if value < floor and not _can_lower_oom():
        log.info("%s: oom_score_adj %d clamped to %d (this daemon lacks CAP_SYS_RESOURCE)", what, value, floor)
        return floor
    return value


def resources(r: pb.LinuxContainerResources, hc: dict[str, Any], where: str, what: str) -> None:
    """LinuxContainerResources → HostConfig resource fields."""
    if any(h.limit for h in r.hugepage_limits):
        raise refuse(f"{where}.hugepage_limits", "hugetlb limits are not supported by Dockyard")
    if r.unified:
        raise refuse(f"{where}.unified", "cgroup v2 unified settings need a cgroup v2 host; this one is v1")
    for src, dst in (("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"), ("cpu_shares", "CpuShares"),
                     ("memory_limit_in_bytes", "Memory"), ("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems")):
        v = getattr(r, src)
        if v:
            hc[dst] = v
    if r.memory_swap_limit_in_bytes:
        if not r.memory_limit_in_bytes:
            raise refuse(f"{where}.memory_swap_limit_in_bytes", "needs memory_limit_in_bytes")
        hc["MemorySwap"] = r.memory_swap_limit_in_bytes
    if r.oom_score_adj:
        hc["OomScoreAdj"] = clamp_oom(r.oom_score_adj, what)


# ---- sandbox -----------------------------------------------------------------------------

def sandbox_name(md: pb.PodSandboxMetadata) -> str:
    return f"k8s_POD_{md.name}_{md.namespace}_{md.uid}_{md.attempt}"


def sandbox_body(cfg: pb.PodSandboxConfig, image: str, holder: bool) -> dict[str, Any]:
    """The holder container's create request for a sandbox config (refusals raised here)."""
    check_unknown(cfg, "config")
    md = cfg.metadata
    if not md.name or not md.namespace or not md.uid:
        raise refuse("config.metadata", "name, namespace and uid are required")
    if cfg.HasField("windows"):
        raise refuse("config.windows", "Dockyard runs Linux containers only")
    lx = cfg.linux
    sc = lx.security_context
    ns = sc.namespace_options
    hc: dict[str, Any] = {"RestartPolicy": {"Name": "no"}}
    if ns.network == pb.NODE:
        hc["NetworkMode"] = "host"
    elif ns.network == pb.POD:
        hc["NetworkMode"] = "none"   # a namespace of its own, wired by CNI
    else:
        raise refuse("config.linux.security_context.namespace_options.network", "a sandbox's is POD or NODE")
    hc["IpcMode"] = {pb.NODE: "host", pb.POD: "shareable"}.get(ns.ipc, "")
    if not hc["IpcMode"]:
        raise refuse("config.linux.security_context.namespace_options.ipc", "a sandbox's is POD or NODE")
    if ns.pid == pb.NODE:
        hc["PidMode"] = "host"
    elif ns.pid not in (pb.POD, pb.CONTAINER):
        raise refuse("config.linux.security_context.namespace_options.pid", "a sandbox's is POD, CONTAINER or NODE")
    if ns.target_id:
        raise refuse("config.linux.security_context.namespace_options.target_id", "only containers take a target")
    if ns.HasField("userns_options") and (ns.userns_options.mode != pb.NODE or ns.userns_options.uids
                                          or ns.userns_options.gids):
        raise refuse("config.linux.security_context.namespace_options.userns_options",
                     "user namespaces for pods are not supported (mode NODE only)")
    body: dict[str, Any] = {"Image": image, "HostConfig": hc}
    if holder:
        body["Entrypoint"], body["Cmd"] = ["/pause"], []
        # the holder runs nothing but itself (no exec into it through the CRI): no masks to mount over /proc
        hc["MaskedPaths"], hc["ReadonlyPaths"] = [], []
    if cfg.hostname:
        if ns.network == pb.NODE:
            raise refuse("config.hostname", "a pod on the host's network has the host's name")
        body["Hostname"] = cfg.hostname
    dns = cfg.dns_config
    if ns.network != pb.NODE:
        for src, dst in (("servers", "Dns"), ("searches", "DnsSearch"), ("options", "DnsOptions")):
            if getattr(dns, src):
                hc[dst] = list(getattr(dns, src))
    elif dns.servers or dns.searches or dns.options:
        raise refuse("config.dns_config", "a pod on the host's network uses the host's resolv.conf")
    for pm in cfg.port_mappings:
        if pm.protocol == pb.SCTP:
            raise refuse("config.port_mappings", "SCTP ports are not supported")
        if not 0 < pm.container_port < 65536 or not 0 <= pm.host_port < 65536:
            raise refuse("config.port_mappings", f"bad port {pm.container_port}→{pm.host_port}")
        if ns.network == pb.NODE and pm.host_port and pm.host_port != pm.container_port:
            raise refuse("config.port_mappings", "on the host's network a hostPort must equal its containerPort")
    if lx.cgroup_parent:
        hc["CgroupParent"] = lx.cgroup_parent
    if lx.sysctls:
        hc["Sysctls"] = dict(lx.sysctls)
    pod_limits(lx.resources, lx.overhead, lx.cgroup_parent, "config.linux")
    where = "config.linux.security_context"
    _selinux(sc.selinux_options, where)
    user = _user(sc.run_as_user if sc.HasField("run_as_user") else None,
                 sc.run_as_group if sc.HasField("run_as_group") else None, "", where)
    if user:
        body["User"] = user
    groups = _groups(sc.supplemental_groups_policy, list(sc.supplemental_groups), where)
    if groups:
        hc["GroupAdd"] = groups
    hc["Privileged"] = sc.privileged
    hc["ReadonlyRootfs"] = sc.readonly_rootfs
    opts: list[str] = []
    _seccomp(opts, sc.seccomp if sc.HasField("seccomp") else None, sc.seccomp_profile_path, where)
    _apparmor(sc.apparmor if sc.HasField("apparmor") else None, "", where)
    hc["SecurityOpt"] = opts
    hc["OomScoreAdj"] = clamp_oom(-998, f"sandbox {md.namespace}/{md.name}")
    body["Labels"] = {**dict(cfg.labels)}
    return body


def pod_limits(res: pb.LinuxContainerResources, overhead: pb.LinuxContainerResources, cgroup_parent: str,
               where: str) -> dict[str, int]:
    """What a pod's cgroup is given: {shares, period, quota, memory} (0: not set), from its resources and
    overhead (the sums kubelet computes); refusals for what a pod's cgroup does not take here."""
    at = f"{where}." if where else ""
    for name, r in (("resources", res), ("overhead", overhead)):
        for field in ("oom_score_adj", "cpuset_cpus", "cpuset_mems", "memory_swap_limit_in_bytes"):
            if getattr(r, field):
                raise refuse(f"{at}{name}.{field}", "not applied to a pod's cgroup (set it per container)")
        if r.hugepage_limits or r.unified:
            raise refuse(f"{at}{name}", "hugepage and unified settings are not applied to a pod's cgroup")
    out = {"shares": res.cpu_shares + overhead.cpu_shares if res.cpu_shares else 0,
           "period": res.cpu_period or overhead.cpu_period,
           "quota": res.cpu_quota + overhead.cpu_quota if res.cpu_quota > 0 else 0,
           "memory": res.memory_limit_in_bytes + overhead.memory_limit_in_bytes if res.memory_limit_in_bytes else 0}
    if any(out.values()) and not cgroup_parent:
        raise refuse(f"{at}resources", "a pod's resources are written to its cgroup: cgroup_parent is required")
    return out


# ---- containers ----------------------------------------------------------------------------

def container_name(md: pb.ContainerMetadata, pod: pb.PodSandboxMetadata) -> str:
    return f"k8s_{md.name}_{pod.name}_{pod.namespace}_{pod.uid}_{md.attempt}"


SIGNALS = {v.number: v.name for v in pb.Signal.DESCRIPTOR.values if v.number}
_SIG_NAMES = {"SIGCLD": "SIGCHLD", "SIGPOLL": "SIGIO", "SIGIOT": "SIGABRT"}


def stop_signal(sig: int) -> str:
    """The CRI's enum (its own numbering) → a signal name the engine takes."""
    name = SIGNALS.get(sig, "")
    name = _SIG_NAMES.get(name, name)
    if name.startswith("SIGRTMINPLUS"):
        return f"SIGRTMIN+{name[12:]}"
    if name.startswith("SIGRTMAXMINUS"):
        return f"SIGRTMAX-{name[13:]}"
    return name


def container_body(cfg: pb.ContainerConfig, sandbox_id: str, sandbox: dict[str, Any], image: str,
                   log_path: str) -> dict[str, Any]:
    """A container's create request; `sandbox` is what the pod recorded (namespaces, cgroup parent,
    privileged)."""
    check_unknown(cfg, "config")
    if not cfg.metadata.name:
        raise refuse("config.metadata.name", "is required")
    if cfg.HasField("windows"):
        raise refuse("config.windows", "Dockyard runs Linux containers only")
    if cfg.CDI_devices:
        raise refuse("config.CDI_devices", "CDI devices are not supported (no CDI registry here)")
    if cfg.image.annotations:
        raise refuse("config.image.annotations", "image annotations are not supported")
    lx = cfg.linux
    sc = lx.security_context
    ns = sc.namespace_options
    where = "config.linux.security_context"
    hc: dict[str, Any] = {"RestartPolicy": {"Name": "no"}, "NetworkMode": f"container:{sandbox_id}"}
    if ns.network != sandbox["network"]:
        raise refuse(f"{where}.namespace_options.network", "must be the sandbox's")
    if ns.ipc == pb.NODE or sandbox["ipc"] == pb.NODE:
        if ns.ipc != sandbox["ipc"]:
            raise refuse(f"{where}.namespace_options.ipc", "must be the sandbox's")
        hc["IpcMode"] = "host"
    elif ns.ipc == pb.POD:
        hc["IpcMode"] = f"container:{sandbox_id}"
    else:
        raise refuse(f"{where}.namespace_options.ipc", "POD or NODE")
    if ns.pid == pb.NODE:
        hc["PidMode"] = "host"
    elif ns.pid == pb.POD:
        if sandbox["pid"] == pb.NODE:
            hc["PidMode"] = "host"
        elif sandbox["pid"] == pb.POD:
            hc["PidMode"] = f"container:{sandbox_id}"
    elif ns.pid == pb.TARGET:
        if not ns.target_id:
            raise refuse(f"{where}.namespace_options.target_id", "TARGET needs a target container")
        hc["PidMode"] = f"container:{ns.target_id}"
    if ns.target_id and ns.pid != pb.TARGET:
        raise refuse(f"{where}.namespace_options.target_id", "only with pid TARGET")
    if ns.HasField("userns_options") and (ns.userns_options.mode != pb.NODE or ns.userns_options.uids
                                          or ns.userns_options.gids):
        raise refuse(f"{where}.namespace_options.userns_options", "user namespaces are not supported (mode NODE only)")
    if sandbox.get("cgroup_parent"):
        hc["CgroupParent"] = sandbox["cgroup_parent"]
    body: dict[str, Any] = {"Image": image, "HostConfig": hc, "Labels": dict(cfg.labels)}
    if cfg.command:
        body["Entrypoint"] = list(cfg.command)
        body["Cmd"] = list(cfg.args)
    elif cfg.args:
        body["Cmd"] = list(cfg.args)
    if cfg.working_dir:
        body["WorkingDir"] = cfg.working_dir
    env = []
    for i, kv in enumerate(cfg.envs):
        if not kv.key:
            raise refuse(f"config.envs[{i}]", "a variable needs a name")
        env.append(f"{kv.key}={kv.value}")
    if env:
        body["Env"] = env
    body["OpenStdin"], body["StdinOnce"], body["Tty"] = cfg.stdin, cfg.stdin_once, cfg.tty
    if cfg.stop_signal:
        body["StopSignal"] = stop_signal(cfg.stop_signal)
    mounts = []
    for i, m in enumerate(cfg.mounts):
        f = f"config.mounts[{i}]"
        if m.selinux_relabel and _selinux_enabled():
            raise refuse(f"{f}.selinux_relabel", "SELinux relabeling is not supported by Dockyard")
        if m.uidMappings or m.gidMappings:
            raise refuse(f"{f}.uidMappings", "idmapped mounts are not supported")
        if m.recursive_read_only:
            raise refuse(f"{f}.recursive_read_only", "recursive read-only mounts are not supported")
        if m.HasField("image") or m.image_sub_path:
            raise refuse(f"{f}.image", "image volumes are not supported")
        if not os.path.isabs(m.container_path):
            raise refuse(f"{f}.container_path", "must be absolute")
        if not os.path.isabs(m.host_path):
            raise refuse(f"{f}.host_path", "must be absolute")
        mounts.append({"Type": "bind", "Source": m.host_path, "Target": m.container_path, "ReadOnly": m.readonly,
                       "BindOptions": {"Propagation": _PROPAGATION[m.propagation]}})
    if mounts:
        hc["Mounts"] = mounts
    if cfg.devices:
        hc["Devices"] = [{"PathOnHost": d.host_path, "PathInContainer": d.container_path or d.host_path,
                          "CgroupPermissions": d.permissions or "rwm"} for d in cfg.devices]
    resources(lx.resources, hc, "config.linux.resources", f"container {cfg.metadata.name}")
    _selinux(sc.selinux_options, where)
    user = _user(sc.run_as_user if sc.HasField("run_as_user") else None,
                 sc.run_as_group if sc.HasField("run_as_group") else None, sc.run_as_username, where)
    if user:
        body["User"] = user
    groups = _groups(sc.supplemental_groups_policy, list(sc.supplemental_groups), where)
    if groups:
        hc["GroupAdd"] = groups
    caps = sc.capabilities
    if caps.add_ambient_capabilities:
        raise refuse(f"{where}.capabilities.add_ambient_capabilities", "ambient capabilities are not supported")
    if caps.add_capabilities:
        hc["CapAdd"] = list(caps.add_capabilities)
    if caps.drop_capabilities:
        hc["CapDrop"] = list(caps.drop_capabilities)
    if sc.privileged and not sandbox.get("privileged"):
        raise refuse(f"{where}.privileged", "a privileged container needs a privileged sandbox")
    hc["Privileged"] = sc.privileged
    hc["ReadonlyRootfs"] = sc.readonly_rootfs
    opts: list[str] = []
    _seccomp(opts, sc.seccomp if sc.HasField("seccomp") else None, sc.seccomp_profile_path, where)
    _apparmor(sc.apparmor if sc.HasField("apparmor") else None, sc.apparmor_profile, where)
    if sc.no_new_privs:
        opts.append("no-new-privileges")
    hc["SecurityOpt"] = opts
    if sc.masked_paths:
        hc["MaskedPaths"] = list(sc.masked_paths)
    if sc.readonly_paths:
        hc["ReadonlyPaths"] = list(sc.readonly_paths)
    hc["LogConfig"] = {"Type": "cri", "Config": {"path": log_path}} if log_path else {"Type": "none"}
    return body


def update_body(r: pb.LinuxContainerResources) -> dict[str, Any]:
    """UpdateContainerResources → the engine's update request."""
    check_unknown(r, "linux")
    hc: dict[str, Any] = {}
    resources(r, hc, "linux", "update")
    if "OomScoreAdj" in hc:
        raise refuse("linux.oom_score_adj", "cannot be changed on a running container")
    return hc
