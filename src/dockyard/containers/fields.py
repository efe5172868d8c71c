"""The one table of every field a create request may carry (Docker's `Config` and `HostConfig`,
v1.41 and the newer fields of v1.47): each is applied, recorded (kept and reported, with no
kernel effect in Docker either), or refused with a 400 that names it. A field absent from
this table fails a test (tests/unit/test_fields_table.py walks the API schema), and any
field a request sets to a non-empty value that the table refuses, or does not know, is a 400:
nothing is stored and dropped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument

APPLIED, RECORDED, REFUSED = "applied", "recorded", "refused"


@dataclass(frozen=True)
class Field:
    """How one field is handled: `how` says where it goes, or why it is refused."""

    status: str
    how: str


def _a(how: str) -> Field:
    return Field(APPLIED, how)


def _r(how: str) -> Field:
    return Field(RECORDED, how)


def _no(how: str) -> Field:
    return Field(REFUSED, how)


CONFIG: dict[str, Field] = {
    "Hostname": _a("UTS namespace hostname, /etc/hostname, HOSTNAME"),
    "Domainname": _a("UTS namespace domain name"),
    "User": _a("process uid/gid, names resolved in the image's /etc/passwd and /etc/group"),
    "AttachStdin": _a("the client attaches stdin (the docker CLI then attaches before start)"),
    "AttachStdout": _a("stdout streamed to an attached client"),
    "AttachStderr": _a("stderr streamed to an attached client"),
    "ExposedPorts": _a("metadata, as Docker; published with -P"),
    "Tty": _a("process.terminal: a pty held by the monitor; raw attach streams"),
    "OpenStdin": _a("the container's stdin is a pipe (or its pty) fed by attached clients"),
    "StdinOnce": _a("stdin is closed when the first attached client's input ends"),
    "Env": _a("process environment, merged with the image's"),
    "Cmd": _a("process arguments"),
    "Healthcheck": _a("probed by an exec every interval: State.Health, ps, health_status events"),
    "ArgsEscaped": _r("Windows-only; recorded as Docker does"),
    "Image": _a("the container's root filesystem"),
    "Volumes": _a("anonymous volumes at these paths (with the image's VOLUMEs), filled from the image"),
    "WorkingDir": _a("process cwd, created when missing"),
    "Entrypoint": _a("process arguments"),
    "NetworkDisabled": _a("the container gets network mode none"),
    "MacAddress": _a("the MAC address of the container's interface on its (primary) network"),
    "OnBuild": _r("image metadata for builds"),
    "Labels": _a("labels in inspect, ps and event filters"),
    "StopSignal": _a("signal sent by stop"),
    "StopTimeout": _a("grace period of stop"),
    "Shell": _r("image metadata for builds"),
}

HOST_CONFIG: dict[str, Field] = {
    # resources
    "CpuShares": _a("cpu.shares (v1) / cpu.weight (v2)"),
    "Memory": _a("memory.limit_in_bytes (v1) / memory.max (v2)"),
    "CgroupParent": _a("the container's cgroup is <parent>/<id>"),
    "BlkioWeight": _a("blkio.weight / io.weight where the kernel has them; refused otherwise"),
    "BlkioWeightDevice": _a("blkio.weight_device / io.weight where the kernel has them; refused otherwise"),
    "BlkioDeviceReadBps": _a("blkio.throttle.read_bps_device (v1) / io.max rbps (v2)"),
    "BlkioDeviceWriteBps": _a("blkio.throttle.write_bps_device (v1) / io.max wbps (v2)"),
    "BlkioDeviceReadIOps": _a("blkio.throttle.read_iops_device (v1) / io.max riops (v2)"),
    "BlkioDeviceWriteIOps": _a("blkio.throttle.write_iops_device (v1) / io.max wiops (v2)"),
    "CpuPeriod": _a("cpu.cfs_period_us (v1) / cpu.max (v2)"),
    "CpuQuota": _a("cpu.cfs_quota_us (v1) / cpu.max (v2)"),
    "CpuRealtimePeriod": _a("cpu.rt_period_us (v1 with RT group scheduling); refused on v2"),
    "CpuRealtimeRuntime": _a("cpu.rt_runtime_us (v1 with RT group scheduling); refused on v2"),
    "CpusetCpus": _a("cpuset.cpus"),
    "CpusetMems": _a("cpuset.mems"),
    "Devices": _a("device nodes in /dev and allow rules in the devices cgroup"),
    "DeviceCgroupRules": _a("allow rules in the devices cgroup"),
    "DeviceRequests": _no("could not select device driver: device requests (--gpus) are not supported"),
    "KernelMemory": _no("kernel memory limits are not supported: Linux removed them (cgroup v1 kmem, 6.1)"),
    "KernelMemoryTCP": _no("kernel TCP memory limits are not supported"),
    "MemoryReservation": _a("memory.soft_limit_in_bytes (v1) / memory.low (v2)"),
    "MemorySwap": _a("memory.memsw.limit_in_bytes (v1) / memory.swap.max (v2)"),
    "MemorySwappiness": _a("memory.swappiness (v1); refused on v2"),
    "NanoCpus": _a("cpu.cfs_quota_us over a 100 ms period (v1) / cpu.max (v2)"),
    "OomKillDisable": _a("memory.oom_control (v1); refused on v2"),
    "Init": _a("tini (docker-init) bound at /sbin/docker-init runs the command as PID 1's child"),
    "PidsLimit": _a("pids.max"),
    "Ulimits": _a("process rlimits (and the daemon's default-ulimits)"),
    "CpuCount": _r("Windows-only: discarded (0) with a warning in the create response's Warnings"),
    "CpuPercent": _r("Windows-only: discarded (0) with dockerd's warning in the create response's Warnings"),
    "IOMaximumIOps": _no("Invalid QoS settings: linux does not support configuration of maximum IOPs"),
    "IOMaximumBandwidth": _no("Invalid QoS settings: linux does not support configuration of maximum bandwidth"),
    # the rest of HostConfig
    "Binds": _a("-v: named volumes and host directories, ro/rw, propagation, nocopy"),
    "ContainerIDFile": _r("written by the client, recorded as Docker does"),
    "LogConfig": _a("json-file (10m × 3 by default), local and none drivers with their options"),
    "NetworkMode": _a("default/bridge (the default bridge; lo only with --bridge=none), none, host, container:NAME"),
    "PortBindings": _a("DNAT rules on the default bridge, host ports held (refused with --bridge=none)"),
    "RestartPolicy": _a("restart manager"),
    "AutoRemove": _a("removed when it exits"),
    "VolumeDriver": _a("the driver of new -v and anonymous volumes: local, or a volume plugin found as dockerd finds it"),
    "VolumesFrom": _a("the volumes and binds of other containers, ro/rw"),
    "Mounts": _a("--mount type=volume|bind|tmpfs with their options"),
    "ConsoleSize": _a("the pty's window size at start (with Tty; process.consoleSize)"),
    "Annotations": _a("OCI runtime spec annotations"),
    "CapAdd": _a("process capabilities"),
    "CapDrop": _a("process capabilities"),
    "CgroupnsMode": _a("private: own cgroup namespace; host: the host's"),
    "Dns": _a("nameserver lines of /etc/resolv.conf"),
    "DnsOptions": _a("the options line of /etc/resolv.conf"),
    "DnsSearch": _a("the search line of /etc/resolv.conf"),
    "ExtraHosts": _a("lines of /etc/hosts; host-gateway is the bridge's address"),
    "GroupAdd": _a("supplementary groups, names resolved in the image"),
    "IpcMode": _a("private, shareable, none, host, container:<id>"),
    "Cgroup": _no("Cgroup (joining another container's cgroup) is not supported"),
    "Links": _a("legacy links: the target's address in /etc/hosts and its variables in the environment; "
                "on user-defined networks an alias only this container resolves"),
    "OomScoreAdj": _a("/proc/<pid>/oom_score_adj of the init"),
    "PidMode": _a("private, host, container:<id>"),
    "Privileged": _a("all capabilities and host devices, no seccomp, writable /sys and cgroups"),
    "PublishAllPorts": _a("every ExposedPorts entry on a random host port"),
    "ReadonlyRootfs": _a("root filesystem mounted read-only"),
    "SecurityOpt": _a("seccomp=, no-new-privileges, systempaths=unconfined; apparmor=/label= where the LSM is on"),
    "StorageOpt": _no("--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    "Tmpfs": _a("--tmpfs: tmpfs mounts with their options"),
    "UTSMode": _a("private or host UTS namespace"),
    "UsernsMode": _a("host (no user namespace; the daemon has no userns-remap)"),
    "ShmSize": _a("size of the /dev/shm tmpfs"),
    "Sysctls": _a("namespaced sysctls written in the container's namespaces"),
    "Runtime": _a("OCI runtime that runs the container"),
    "Isolation": _a("only 'default' on Linux"),
    "MaskedPaths": _a("paths masked in the container (Docker's list by default)"),
    "ReadonlyPaths": _a("paths read-only in the container (Docker's list by default)"),
}

TOP_LEVEL = {"HostConfig", "NetworkingConfig"}
# JSON objects that are maps (a key alone asks for something), not structs of zero values
MAPS = {"Volumes", "Tmpfs", "PortBindings", "StorageOpt", "ExposedPorts", "Sysctls", "Labels", "Annotations"}


def empty(v: Any) -> bool:
    """Whether a value asks for nothing (Go's zero values, recursively for objects)."""
    if v is None or v is False or v == "":
        return True
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v == 0
    if isinstance(v, list):
        return all(empty(x) for x in v)
    if isinstance(v, dict):
        return all(empty(x) for x in v.values())
    return False


_CANON = {k.lower(): k for k in (*CONFIG, *HOST_CONFIG, *TOP_LEVEL)}


def canonical(obj: dict[str, Any]) -> dict[str, Any]:
    """Keys as the table spells them: dockerd's JSON decoder matches field names without regard
    to case (docker-py sends `CPURealtimePeriod`), so the same keys must reach the same fields."""
    return {_CANON.get(k.lower(), k): v for k, v in obj.items()}


def normalize(body: dict[str, Any]) -> dict[str, Any]:
    """A create request with canonical keys at the top and in HostConfig."""
    out = canonical(body)
    if isinstance(out.get("HostConfig"), dict):
        out["HostConfig"] = canonical(out["HostConfig"])
    return out


def asks(key: str, v: Any) -> bool:
    """Whether a field's value asks for something."""
    if key in MAPS and isinstance(v, dict):
        return bool(v)
    return not empty(v)


def check(body: dict[str, Any], update: bool = False) -> None:
    """Refuse every field the table refuses or does not know, when its value asks for something."""
    hc = body.get("HostConfig") if not update else body
    if not update:
        _check_table("Config", CONFIG, body, TOP_LEVEL)
        _check_networking(body.get("NetworkingConfig"), (hc or {}).get("NetworkMode") if isinstance(hc, dict) else None)
    if hc is None:
        return
    if not isinstance(hc, dict):
        raise InvalidArgument("HostConfig must be an object")
    _check_table("HostConfig", HOST_CONFIG, hc, {"RestartPolicy"} if update else set())


def _check_table(where: str, table: dict[str, Field], obj: dict[str, Any], skip: set[str]) -> None:
    for k, v in obj.items():
        if k in skip:
            continue
        f = table.get(k)
        if f is None:
            if asks(k, v):
                raise InvalidArgument(f"unknown field {where}.{k}: Dockyard does not know it, and would not apply it")
        elif f.status == REFUSED and asks(k, v):
            raise InvalidArgument(f"{where}.{k}: {f.how}")


# endpoint settings a create or a connect may ask for (the rest of EndpointSettings is output):
# Links are names this container alone resolves on that network (dockerd's links on user networks);
# DriverOpts are recorded and reported, as Docker's bridge driver does with them
ENDPOINT_APPLIED = {"Aliases", "IPAMConfig", "MacAddress", "Links", "DriverOpts"}
ENDPOINT_OUTPUT = {"NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway",
                   "GlobalIPv6Address", "GlobalIPv6PrefixLen", "DNSNames"}


def check_endpoint(where: str, ep: Any) -> None:
    """One EndpointSettings: what it asks for is applied or refused with its name."""
    if ep is None:
        return
    if not isinstance(ep, dict):
        raise InvalidArgument(f"{where} must be an object")
    for k, v in canonical_endpoint(ep).items():
        if k in ENDPOINT_OUTPUT or empty(v):
            continue
        if k == "IPAMConfig":
            if not isinstance(v, dict):
                raise InvalidArgument(f"{where}.IPAMConfig must be an object")
            for ik, iv in v.items():
                if ik not in ("IPv4Address", "IPv6Address", "LinkLocalIPs") and not empty(iv):
                    raise InvalidArgument(f"{where}.IPAMConfig.{ik}: not supported")
        elif k == "DriverOpts" and not (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())):
            raise InvalidArgument(f"{where}.DriverOpts must be an object of strings")
        elif k == "Links" and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise InvalidArgument(f"{where}.Links must be a list of strings")
        elif k not in ENDPOINT_APPLIED:
            raise InvalidArgument(f"{where}.{k}: not supported")


def canonical_endpoint(ep: dict[str, Any]) -> dict[str, Any]:
    names = {k.lower(): k for k in (*ENDPOINT_APPLIED, *ENDPOINT_OUTPUT, "Links", "DriverOpts", "IPAMConfig")}
    out = {names.get(k.lower(), k): v for k, v in ep.items()}
    if isinstance(out.get("IPAMConfig"), dict):
        out["IPAMConfig"] = {{"ipv4address": "IPv4Address", "ipv6address": "IPv6Address",
                              "linklocalips": "LinkLocalIPs"}.get(k.lower(), k): v for k, v in out["IPAMConfig"].items()}
    return out


def _check_networking(nc: Any, mode: str | None) -> None:
    """NetworkingConfig: the endpoints' settings (the networks themselves are checked at create)."""
    if nc is None:
        return
    if not isinstance(nc, dict):
        raise InvalidArgument("NetworkingConfig must be an object")
    eps = nc.get("EndpointsConfig") or {}
    if not isinstance(eps, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    for name, ep in eps.items():
        check_endpoint(f"NetworkingConfig.EndpointsConfig.{name}", ep)
    for k, v in nc.items():
        if k != "EndpointsConfig" and not empty(v):
            raise InvalidArgument(f"unknown field NetworkingConfig.{k}")


def table_markdown() -> str:
    """The README's honoured-or-refused table."""
    rows = ["| field | status | how |", "| --- | --- | --- |"]
    for where, t in (("Config", CONFIG), ("HostConfig", HOST_CONFIG)):
        for k in sorted(t):
            rows.append(f"| `{where}.{k}` | {t[k].status} | {t[k].how} |")
    return "\n".join(rows)
