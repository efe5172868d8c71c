"""The docker CLI's resource and security flags of `run`/`create` (and the resource ones of
`update`), parsed as the docker CLI parses them into HostConfig fields. What the daemon does
with each is the daemon's table (containers/fields.py): applied, or a 400 that names it."""

from __future__ import annotations

import sys

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, NoReturn

    from ..flags import Parser

from ...units import ram_in_bytes

RESOURCE_FLAGS = (  # flag, dest, action
    ("-m", "--memory"), ("--memory-swap",), ("--memory-reservation",), ("--kernel-memory",),
    ("--cpus",), ("-c", "--cpu-shares"), ("--cpu-period",), ("--cpu-quota",), ("--cpu-rt-period",),
    ("--cpu-rt-runtime",), ("--cpuset-cpus",), ("--cpuset-mems",), ("--blkio-weight",), ("--pids-limit",),
)
APPEND_RESOURCE_FLAGS = ("--blkio-weight-device", "--device-read-bps", "--device-write-bps", "--device-read-iops",
                         "--device-write-iops")
CREATE_ONLY = (("--memory-swappiness",), ("--oom-score-adj",), ("--shm-size",), ("--cgroup-parent",), ("--cgroupns",),
               ("--ipc",), ("--pid",), ("--uts",), ("--userns",), ("--platform",), ("--isolation",))
CREATE_APPEND = ("--ulimit", "--cap-add", "--cap-drop", "--security-opt", "--group-add", "--device",
                 "--device-cgroup-rule", "--sysctl", "--annotation", "-p", "--publish", "-v", "--volume", "--mount",
                 "--tmpfs", "--dns", "--dns-option", "--dns-search", "--add-host", "--link", "--volumes-from",
                 "--storage-opt", "--gpus")
CREATE_BOOL = ("--oom-kill-disable", "--privileged", "--init", "-P", "--publish-all")


def add_resource_flags(p: Parser) -> None:
    """The flags `update` shares with `run`/`create`."""
    for names in RESOURCE_FLAGS:
        p.add_argument(*names)
    for n in APPEND_RESOURCE_FLAGS:
        p.add_argument(n, action="append", default=[])


def add_create_flags(p: Parser) -> None:
    """Everything `run`/`create` take beyond the resource flags."""
    add_resource_flags(p)
    for names in CREATE_ONLY:
        p.add_argument(*names)
    p.add_argument("--publish", "-p", dest="publish", action="append", default=[])
    p.add_argument("--volume", "-v", dest="volume", action="append", default=[])
    for n in CREATE_APPEND:
        if n not in ("-p", "--publish", "-v", "--volume"):
            p.add_argument(n, action="append", default=[])
    p.add_argument("--oom-kill-disable", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--init", action="store_true")
    p.add_argument("--publish-all", "-P", dest="publish_all", action="store_true")
    p.add_argument("--expose", dest="expose", action="append", default=[])


def _die(msg: str) -> NoReturn:
    print(msg, file=sys.stderr)
    sys.exit(125)


def _bytes(flag: str, v: str, allow_minus_one: bool = False) -> int:
    if allow_minus_one and v.strip() == "-1":
        return -1
    try:
        return ram_in_bytes(v)
    except ValueError:
        _die(f'invalid argument "{v}" for "{flag}" flag: invalid size: \'{v}\'')


def _int(flag: str, v: str) -> int:
    try:
        return int(v)
    except ValueError:
        _die(f'invalid argument "{v}" for "{flag}" flag: strconv.ParseInt: parsing "{v}": invalid syntax')


def _path_value(flag: str, item: str, key: str, conv: Any) -> dict[str, Any]:
    path, sep, val = item.rpartition(":")
    if not sep or not path.startswith("/dev/"):
        _die(f'invalid argument "{item}" for "{flag}" flag: bad format for path: {path or item}')
    return {"Path": path, key: conv(val)}


def resources(ns: Any) -> dict[str, Any]:
    """HostConfig resource fields from the parsed flags (only those given)."""
    hc: dict[str, Any] = {}
    if ns.memory:
        hc["Memory"] = _bytes("--memory", ns.memory)
    if ns.memory_swap:
        hc["MemorySwap"] = _bytes("--memory-swap", ns.memory_swap, allow_minus_one=True)
    if ns.memory_reservation:
        hc["MemoryReservation"] = _bytes("--memory-reservation", ns.memory_reservation)
    if ns.kernel_memory:
        hc["KernelMemory"] = _bytes("--kernel-memory", ns.kernel_memory)
    if ns.cpus:
        try:
            hc["NanoCpus"] = round(float(ns.cpus) * 1e9)
        except ValueError:
            _die(f'invalid argument "{ns.cpus}" for "--cpus" flag: failed to parse {ns.cpus} as a rational number')
    for attr, key in (("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"),
                      ("cpu_rt_period", "CpuRealtimePeriod"), ("cpu_rt_runtime", "CpuRealtimeRuntime"),
                      ("blkio_weight", "BlkioWeight"), ("pids_limit", "PidsLimit")):
        v = getattr(ns, attr)
        if v is not None:
            hc[key] = _int("--" + attr.replace("_", "-"), v)
    if ns.cpuset_cpus:
        hc["CpusetCpus"] = ns.cpuset_cpus
    if ns.cpuset_mems:
        hc["CpusetMems"] = ns.cpuset_mems
    if ns.blkio_weight_device:
        hc["BlkioWeightDevice"] = [_path_value("--blkio-weight-device", x, "Weight", lambda v: _int("--blkio-weight-device", v))
                                   for x in ns.blkio_weight_device]
    for attr, key, conv in (("device_read_bps", "BlkioDeviceReadBps", "bytes"),
                            ("device_write_bps", "BlkioDeviceWriteBps", "bytes"),
                            ("device_read_iops", "BlkioDeviceReadIOps", "int"),
                            ("device_write_iops", "BlkioDeviceWriteIOps", "int")):
        items = getattr(ns, attr)
        if items:
            flag = "--" + attr.replace("_", "-")
            hc[key] = [_path_value(flag, x, "Rate", (lambda v, f=flag: _bytes(f, v)) if conv == "bytes"
                                   else (lambda v, f=flag: _int(f, v))) for x in items]
    return hc


def _device(item: str) -> dict[str, str]:
    parts = item.split(":")
    host = parts[0]
    ctr, perms = host, "rwm"
    if len(parts) == 2:
        if parts[1] and all(c in "rwm" for c in parts[1]):
            perms = parts[1]
        else:
            ctr = parts[1]
    elif len(parts) == 3:
        ctr, perms = parts[1], parts[2]
    elif len(parts) > 3:
        _die(f'invalid argument "{item}" for "--device" flag: invalid device specification: {item}')
    return {"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms}


def _ulimit(item: str) -> dict[str, Any]:
    name, eq, val = item.partition("=")
    soft, _, hard = val.partition(":")
    try:
        return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
    except ValueError:
        _die(f'invalid argument "{item}" for "--ulimit" flag: invalid ulimit argument: {item}')


def _kv(flag: str, items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, eq, v = it.partition("=")
        if not eq:
            _die(f'invalid argument "{it}" for "{flag}" flag: {it} is not a key=value pair')
        out[k] = v
    return out


def _range(text: str, what: str) -> list[int]:
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        _die(f"invalid {what} port: {text}")
    if not 0 <= a <= b <= 65535:
        _die(f"invalid {what} port range: {text}")
    return list(range(a, b + 1))


def publish_bindings(items: list[str]) -> dict[str, list[dict[str, str]]]:
    """`-p [ip:][host[-host2]:]container[-container2][/proto]` as the docker CLI reads it."""
    out: dict[str, list[dict[str, str]]] = {}
    for it in items:
        spec, _, proto = it.partition("/")
        proto = proto or "tcp"
        parts = spec.rsplit(":", 2)
        host_ip, host = (parts[0].strip("[]"), parts[1]) if len(parts) == 3 else ("", parts[0] if len(parts) == 2 else "")
        cports = _range(parts[-1], "container")
        hports = _range(host, "host") if host else []
        if hports and len(hports) != len(cports):
            _die(f"invalid ranges specified for container and host Ports: {it} (a host range must be as long as "
                 "the container range)")
        for i, cp in enumerate(cports):
            out.setdefault(f"{cp}/{proto}", []).append({"HostIp": host_ip, "HostPort": str(hports[i]) if hports else ""})
    return out


def exposed_ports(ns: Any) -> dict[str, dict[str, Any]]:
    """ExposedPorts: every `-p` container port and every `--expose` port or range."""
    out: dict[str, dict[str, Any]] = {k: {} for k in publish_bindings(ns.publish)} if ns.publish else {}
    for item in ns.expose:
        spec, _, proto = item.partition("/")
        for p in _range(spec, "container"):
            out[f"{p}/{proto or 'tcp'}"] = {}
    return out


def _mount(item: str) -> dict[str, Any]:
    """`--mount` as the docker CLI reads it (CSV of key=value) into a HostConfig.Mounts entry."""
    m: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    vol: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}

    def flag(v: str) -> bool:
        if v.lower() in ("", "1", "true"):
            return True
        if v.lower() in ("0", "false"):
            return False
        _die(f"invalid argument \"{item}\" for \"--mount\" flag: invalid value {v!r}")

    for kv in item.split(","):
        k, eq, v = kv.partition("=")
        k = k.strip().lower()
        if k == "type":
            m["Type"] = v
        elif k in ("source", "src"):
            m["Source"] = v
        elif k in ("target", "destination", "dst"):
            m["Target"] = v
        elif k in ("readonly", "ro"):
            m["ReadOnly"] = flag(v)
        elif k == "consistency":
            m["Consistency"] = v
        elif k == "bind-propagation":
            bind["Propagation"] = v
        elif k == "bind-nonrecursive":
            bind["NonRecursive"] = flag(v)
        elif k == "volume-driver":
            vol.setdefault("DriverConfig", {})["Name"] = v
        elif k == "volume-opt":
            o, _, ov = v.partition("=")
            vol.setdefault("DriverConfig", {}).setdefault("Options", {})[o] = ov
        elif k == "volume-label":
            lk, _, lv = v.partition("=")
            vol.setdefault("Labels", {})[lk] = lv
        elif k == "volume-nocopy":
            vol["NoCopy"] = flag(v)
        elif k == "tmpfs-size":
            tmpfs["SizeBytes"] = _bytes("--mount tmpfs-size", v)
        elif k == "tmpfs-mode":
            tmpfs["Mode"] = int(v, 8)
        else:
            _die(f"invalid argument \"{item}\" for \"--mount\" flag: unexpected key '{k}' in '{kv}'")
    for key, opts in (("BindOptions", bind), ("VolumeOptions", vol), ("TmpfsOptions", tmpfs)):
        if opts:
            m[key] = opts
    return m


def host_config(ns: Any) -> dict[str, Any]:
    """Every HostConfig field the create flags ask for."""
    hc = resources(ns)
    if ns.memory_swappiness is not None:
        hc["MemorySwappiness"] = _int("--memory-swappiness", ns.memory_swappiness)
    if ns.oom_score_adj is not None:
        hc["OomScoreAdj"] = _int("--oom-score-adj", ns.oom_score_adj)
    if ns.shm_size:
        hc["ShmSize"] = _bytes("--shm-size", ns.shm_size)
    for attr, key in (("cgroup_parent", "CgroupParent"), ("cgroupns", "CgroupnsMode"), ("ipc", "IpcMode"),
                      ("pid", "PidMode"), ("uts", "UTSMode"), ("userns", "UsernsMode"), ("isolation", "Isolation")):
        if getattr(ns, attr):
            hc[key] = getattr(ns, attr)
    if ns.oom_kill_disable:
        hc["OomKillDisable"] = True
    if ns.privileged:
        hc["Privileged"] = True
    if ns.init:
        hc["Init"] = True
    if ns.publish_all:
        hc["PublishAllPorts"] = True
    for attr, key in (("cap_add", "CapAdd"), ("cap_drop", "CapDrop"), ("group_add", "GroupAdd"),
                      ("device_cgroup_rule", "DeviceCgroupRules"), ("volume", "Binds"), ("dns", "Dns"),
                      ("dns_option", "DnsOptions"), ("dns_search", "DnsSearch"), ("add_host", "ExtraHosts"),
                      ("link", "Links"), ("volumes_from", "VolumesFrom")):
        if getattr(ns, attr):
            hc[key] = list(getattr(ns, attr))
    if ns.security_opt:
        hc["SecurityOpt"] = [_security_opt(o) for o in ns.security_opt]
    if ns.ulimit:
        hc["Ulimits"] = [_ulimit(u) for u in ns.ulimit]
    if ns.device:
        hc["Devices"] = [_device(d) for d in ns.device]
    if ns.sysctl:
        hc["Sysctls"] = _kv("--sysctl", ns.sysctl)
    if ns.annotation:
        hc["Annotations"] = _kv("--annotation", ns.annotation)
    if ns.storage_opt:
        hc["StorageOpt"] = _kv("--storage-opt", ns.storage_opt)
    if ns.publish:
        hc["PortBindings"] = publish_bindings(ns.publish)
    if ns.mount:
        hc["Mounts"] = [_mount(m) for m in ns.mount]
    if ns.tmpfs:
        hc["Tmpfs"] = {t.partition(":")[0]: t.partition(":")[2] for t in ns.tmpfs}
    if ns.gpus:
        hc["DeviceRequests"] = [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]
    return hc


def _security_opt(opt: str) -> str:
    """As the docker CLI: `seccomp=<file>` sends the file's content."""
    k, eq, v = opt.partition("=")
    if k == "seccomp" and eq and v not in ("unconfined", "builtin", ""):
        try:
            with open(v) as f:
                return "seccomp=" + f.read()
        except OSError as e:
            _die(f"invalid argument \"{opt}\" for \"--security-opt\" flag: opening seccomp profile ({v}) failed: "
                 f"open {v}: {(e.strerror or '').lower()}")
    return opt
