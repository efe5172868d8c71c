"""A create request (Docker's ContainerCreateRequest) → a validated, merged ContainerConfig."""

from __future__ import annotations

import secrets
from typing import Any

from .. import signals
from ..errors import Conflict, InvalidArgument
from ..images.service import Image, now_iso
from . import fields, health, logconfig, resources, restart, security
from .model import ContainerConfig

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
               "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
               "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
               "StopTimeout", "Shell")


def host_config_defaults(runtime: str) -> dict[str, Any]:
    """HostConfig as Docker reports it for a container created with no options."""
    return {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default", "PortBindings": None, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
        "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
        "CgroupnsMode": "", "Dns": None, "DnsOptions": None, "DnsSearch": None, "ExtraHosts": None,
        "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
        "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": runtime, "ConsoleSize": [0, 0],
        "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0,
        "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": None,
        "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
        "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
    }


def check_platform(platform: str | None, img: Image, ref: str = "") -> None:
    """`?platform=os/arch[/variant]` must name the image's platform (dockerd's message)."""
    if not platform:
        return
    parts = platform.lower().split("/")
    if len(parts) < 2 or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'"{platform}": unknown operating system or architecture: invalid argument')
    have = [str(img.config.get("os") or "linux"), str(img.config.get("architecture") or "amd64")]
    if img.config.get("variant"):
        have.append(str(img.config["variant"]))
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    if parts[0] != have[0] or arch != have[1] or (len(parts) == 3 and parts[2] != (have[2] if len(have) > 2 else "")):
        raise InvalidArgument(f"image with reference {ref or img.id} was found but does not match the specified platform: "
                              f"wanted {platform}, actual: {'/'.join(have)}")


def host_config(hc_in: dict[str, Any], config: dict[str, Any], runtime: str, warnings: list[str]) -> dict[str, Any]:
    """Validate and normalise a HostConfig as dockerd stores it."""
    hc = host_config_defaults(runtime)
    hc.update({k: v for k, v in hc_in.items() if v is not None})
    resources.validate(hc, warnings)
    security.namespace_modes(hc, config)
    security.capabilities(hc)
    security.security_opts(hc, {})
    security.devices(hc)
    security.sysctls(hc)
    resources.ulimits(hc, {})
    if not hc.get("Privileged"):
        if hc.get("MaskedPaths") is None:
            hc["MaskedPaths"] = list(security.MASKED)
        if hc.get("ReadonlyPaths") is None:
            hc["ReadonlyPaths"] = list(security.READONLY)
    if not hc.get("ShmSize"):
        hc["ShmSize"] = 67108864
    return hc


def _host_name() -> str:
    import socket
    return socket.gethostname()


def parse_signal(s: str | int) -> int:
    """`SIGTERM`, `TERM` or `15` → 15; InvalidArgument otherwise."""
    try:
        return signals.parse_signal(s)
    except ValueError:
        raise InvalidArgument(f"Invalid signal: {s}") from None


def _strings(v: Any, what: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{what} must be a list of strings")
    return v


def _merge_env(image_env: list[str], user_env: list[str]) -> list[str]:
    """dockerd's rule: the user's variables in their order, then the image's that the user did not set."""
    if not user_env:
        return list(image_env)
    keys = {e.split("=", 1)[0] for e in user_env}
    return [*user_env, *(e for e in image_env if e.split("=", 1)[0] not in keys)]


def process_env(env: list[str]) -> list[str]:
    """The process environment: the container's, with a default PATH when it sets none (dockerd adds
    it to the process only, never to the container's Config.Env)."""
    return env if any(e.startswith("PATH=") for e in env) else [DEFAULT_PATH, *env]


def _argv(body: dict[str, Any], icfg: dict[str, Any]) -> tuple[list[str] | None, list[str] | None]:
    """Entrypoint and Cmd as dockerd merges them: with no entrypoint of the user's, an empty Cmd takes
    the image's; a missing (null) entrypoint takes the image's, an empty list clears it."""
    cmd = _strings(body.get("Cmd"), "Cmd")
    entrypoint = _strings(body.get("Entrypoint"), "Entrypoint")
    if not entrypoint:
        if not cmd:
            cmd = icfg.get("Cmd")
        if entrypoint is None:
            entrypoint = icfg.get("Entrypoint")
    if entrypoint == [""]:
        entrypoint = None
    return entrypoint, cmd


def build(body: dict[str, Any], img: Image, runtime: str, default_runtime: str, known_runtimes: set[str],
          log_driver: str = "json-file",
          log_opts: dict[str, str] | None = None, warnings: list[str] | None = None) -> ContainerConfig:
    """Validate and merge a create request with its image's config."""
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    body = fields.normalize(body)
    legacy_runtime = body.pop("Runtime", None)   # docker-py's create_container(runtime=…) puts it here
    if legacy_runtime:
        if not isinstance(legacy_runtime, str):
            raise InvalidArgument("Runtime must be a string")
        if not isinstance(body.get("HostConfig"), dict):
            body["HostConfig"] = {}
        if not body["HostConfig"].get("Runtime"):
            body["HostConfig"]["Runtime"] = runtime = legacy_runtime
    fields.check(body)
    warnings = warnings if warnings is not None else []
    icfg = img.container_config
    cid = secrets.token_hex(32)
    cfg: dict[str, Any] = {k: body.get(k) for k in CONFIG_KEYS}
    user_env = _strings(body.get("Env"), "Env") or []
    for e in user_env:
        if e.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {e}")
    entrypoint, cmd = _argv(body, icfg)
    argv = (entrypoint or []) + (cmd or [])
    if not argv:
        raise InvalidArgument("No command specified")
    env = _merge_env(icfg.get("Env") or [], user_env)
    stop_signal = body.get("StopSignal") or icfg.get("StopSignal")
    if stop_signal:
        parse_signal(stop_signal)
    if body.get("StopTimeout") is not None and not isinstance(body["StopTimeout"], int):
        raise InvalidArgument("StopTimeout must be an integer")
    hc_in = body.get("HostConfig") or {}
    if not isinstance(hc_in, dict):
        raise InvalidArgument("HostConfig must be an object")
    uts_host = hc_in.get("UTSMode") == "host" or hc_in.get("NetworkMode") == "host"
    hostname = body.get("Hostname") or (_host_name() if uts_host else cid[:12])
    if len(hostname) > 64:
        raise InvalidArgument(f"invalid hostname: {hostname}")
    labels = {**(icfg.get("Labels") or {}), **(body.get("Labels") or {})}
    # dockerd's merge: a client's empty value ("" — the docker CLI sends "User": "" on every create —,
    # [] or {}) means "not set", and the image's value applies
    cfg.update({
        "Hostname": hostname, "Domainname": body.get("Domainname") or "",
        "User": body.get("User") or icfg.get("User") or "",
        "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
        "AttachStderr": bool(body.get("AttachStderr")), "Tty": bool(body.get("Tty")), "OpenStdin": bool(body.get("OpenStdin")),
        "StdinOnce": bool(body.get("StdinOnce")),
        "Env": env or None, "Cmd": cmd, "Entrypoint": entrypoint, "Image": body.get("Image") or img.id,
        "Volumes": {**(icfg.get("Volumes") or {}), **(body.get("Volumes") or {})} or None,
        "WorkingDir": body.get("WorkingDir") or icfg.get("WorkingDir") or "",
        "OnBuild": body.get("OnBuild") or None, "Labels": labels,
        "ExposedPorts": {**(icfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})} or None,
    })
    if stop_signal:
        cfg["StopSignal"] = stop_signal
    cfg["Healthcheck"] = health.merge(body.get("Healthcheck"), icfg.get("Healthcheck"), warnings)
    health.action_of(labels)
    for k in ("NetworkDisabled", "ArgsEscaped", "MacAddress", "Shell", "StopSignal"):   # omitted when empty, as Go's omitempty
        if not cfg.get(k):
            cfg[k] = None
    cfg = {k: v for k, v in cfg.items()
           if v is not None or k in ("Cmd", "Entrypoint", "Image", "Volumes", "OnBuild", "Env")}
    if cfg.get("WorkingDir") and not cfg["WorkingDir"].startswith("/"):
        raise InvalidArgument(f"the working directory '{cfg['WorkingDir']}' is invalid, it needs to be an absolute path")
    hc = host_config(hc_in, {**cfg, "Hostname": body.get("Hostname")}, runtime or default_runtime, warnings)
    if body.get("NetworkDisabled"):
        hc["NetworkMode"] = "none"
    if not hc.get("Runtime"):
        hc["Runtime"] = default_runtime
    if hc["Runtime"] not in known_runtimes:
        raise InvalidArgument(f"Unknown runtime specified {hc['Runtime']}")
    nm = hc.get("NetworkMode") or "default"
    if nm.startswith("container:"):
        if not nm[10:]:
            raise InvalidArgument("invalid network mode: container: needs a container name or ID")
        for key, what in (("Dns", "dns"), ("DnsSearch", "dns-search"), ("DnsOptions", "dns-option"),
                          ("ExtraHosts", "add-host"), ("PortBindings", "port publishing")):
            if hc.get(key):
                raise InvalidArgument(f"conflicting options: {what} and the network mode")
        if body.get("Hostname"):
            raise InvalidArgument("conflicting options: hostname and the network mode")
    hc["NetworkMode"] = nm
    rp = hc["RestartPolicy"] = restart.validate(hc.get("RestartPolicy"))
    if hc.get("AutoRemove") and rp.get("Name") not in (None, "", "no"):
        raise Conflict("conflicting options: cannot specify both --restart and --rm")
    hc["LogConfig"] = logconfig.merge(hc.get("LogConfig"), log_driver, log_opts or {})
    return ContainerConfig(id=cid, created=now_iso(), image_id=img.id, image_ref=body.get("Image") or img.id,
                           path=argv[0], args=argv[1:], config=cfg, host_config=hc, runtime=hc["Runtime"])
