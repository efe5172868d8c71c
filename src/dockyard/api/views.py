"""Domain objects → Docker Engine API JSON (the wire shapes of v1.41)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ..containers import mounts as mountpoints
from ..containers import networking
from ..containers.model import Container, Status
from ..images.service import Image
from ..units import human_duration, unix_seconds


def image_summary(img: Image, containers: int = -1) -> dict[str, Any]:
    """`GET /images/json` item."""
    return {
        "Id": img.id, "ParentId": img.parent, "RepoTags": img.tags, "RepoDigests": img.digests,
        "Created": unix_seconds(img.created), "Size": img.size, "SharedSize": -1, "VirtualSize": img.size,
        "Labels": img.container_config.get("Labels") or {}, "Containers": containers,
    }


def image_inspect(img: Image, graph: dict[str, str]) -> dict[str, Any]:
    """`GET /images/{name}/json`."""
    c = img.config
    return {
        "Id": img.id, "RepoTags": img.tags, "RepoDigests": img.digests, "Parent": img.parent,
        "Comment": c.get("comment", ""), "Created": img.created, "Container": c.get("container", ""),
        "ContainerConfig": c.get("container_config") or _empty_config(), "DockerVersion": c.get("docker_version", ""),
        "Author": c.get("author", ""), "Config": {**_empty_config(), **(c.get("config") or {})},
        "Architecture": c.get("architecture", ""), "Variant": c.get("variant"), "Os": c.get("os", "linux"),
        "Size": img.size, "VirtualSize": img.size,
        "GraphDriver": {"Name": "overlay2", "Data": graph},
        "RootFS": {"Type": "layers", "Layers": list(c.get("rootfs", {}).get("diff_ids", []))},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def _empty_config() -> dict[str, Any]:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
            "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
            "OnBuild": None, "Labels": None}


def image_history(img: Image, layer_sizes: list[int]) -> list[dict[str, Any]]:
    """`GET /images/{name}/history`, newest first; each non-empty entry gets its layer's size."""
    hist = img.config.get("history") or []
    sizes = list(layer_sizes)
    rows = []
    for h in hist:
        rows.append((h, 0 if h.get("empty_layer") else (sizes.pop(0) if sizes else 0)))
    out = []
    for i, (h, size) in enumerate(reversed(rows)):
        out.append({"Id": img.id if i == 0 else "<missing>", "Created": unix_seconds(h.get("created", img.created)),
                    "CreatedBy": h.get("created_by", ""), "Tags": img.tags if i == 0 else None,
                    "Size": size, "Comment": h.get("comment", "")})
    return out


def _human_since(rfc: str) -> str:
    return human_duration(_dt.datetime.now(_dt.UTC).timestamp() - unix_seconds(rfc))


def status_text(c: Container) -> str:
    """`docker ps` STATUS column."""
    s = c.state
    if s.status == Status.RUNNING:
        h = (s.health or {}).get("Status")
        suffix = {"starting": " (health: starting)", "healthy": " (healthy)", "unhealthy": " (unhealthy)"}.get(h or "", "")
        return f"Up {_human_since(s.started_at)}{suffix}"
    if s.status == Status.PAUSED:
        return f"Up {_human_since(s.started_at)} (Paused)"
    if s.status == Status.EXITED:
        if s.finished_at.startswith("0001"):
            return "Created"
        return f"Exited ({s.exit_code}) {_human_since(s.finished_at)} ago"
    if s.status == Status.RESTARTING:
        return f"Restarting ({s.exit_code}) {_human_since(s.finished_at)} ago"
    if s.status == Status.REMOVING:
        return "Removal In Progress"
    if s.status == Status.DEAD:
        return "Dead"
    return "Created"


def container_summary(c: Container, image_name: str, size: tuple[int, int] | None) -> dict[str, Any]:
    """`GET /containers/json` item."""
    cmd = " ".join([c.cfg.path, *c.cfg.args])
    out = {
        "Id": c.id, "Names": ["/" + c.name], "Image": image_name, "ImageID": c.cfg.image_id, "Command": cmd,
        "Created": unix_seconds(c.cfg.created), "Ports": _port_list(c), "Labels": c.cfg.config.get("Labels") or {},
        "State": c.state.status.value, "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.cfg.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": networking.settings(c)}, "Mounts": mountpoints.inspect(c.cfg.mounts),
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out


def _default_bridge(c: Container) -> dict[str, Any]:
    """NetworkSettings' top-level address fields: the default bridge's endpoint, as dockerd."""
    ep = c.state.endpoints.get("bridge") or {}
    nid = (c.cfg.networks.get("bridge") or {}).get("NetworkID", "")
    return {"EndpointID": networking.endpoint_id(c.id, nid) if ep else "", "Gateway": ep.get("gateway", ""),
            "GlobalIPv6Address": ep.get("ip6", ""), "GlobalIPv6PrefixLen": ep.get("prefix6", 0),
            "IPAddress": ep.get("ip", ""), "IPPrefixLen": ep.get("prefix", 0), "IPv6Gateway": ep.get("gateway6", ""),
            "MacAddress": ep.get("mac", "")}


def _port_map(c: Container) -> dict[str, Any]:
    """`NetworkSettings.Ports`: exposed ports (null) and the published ones, while it runs."""
    if not c.state.endpoints:
        return {}
    out: dict[str, Any] = {k: None for k in c.cfg.config.get("ExposedPorts") or {}}
    v6 = any(ep.get("ip6") for ep in c.state.endpoints.values())
    for p in networking.published(c):
        key = f"{p['container_port']}/{p['proto']}"
        out[key] = (out.get(key) or []) + [{"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])}]
        if v6 and not p["host_ip"]:   # on every address: the IPv6 ones too, listed as dockerd lists them
            out[key].append({"HostIp": "::", "HostPort": str(p["host_port"])})
    return out


def _port_list(c: Container) -> list[dict[str, Any]]:
    """`Ports` of the container list: published (IP, PublicPort) and exposed ones."""
    out: list[dict[str, Any]] = []
    for key, binds in _port_map(c).items():
        port, _, proto = key.partition("/")
        if not binds:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in binds or []:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]), "Type": proto})
    return out


def container_inspect(c: Container, paths: dict[str, str], graph: dict[str, str],
                      size: tuple[int, int] | None) -> dict[str, Any]:
    """`GET /containers/{id}/json`."""
    s = c.state
    out = {
        "Id": c.id, "Created": c.cfg.created, "Path": c.cfg.path, "Args": c.cfg.args,
        "State": {"Status": s.status.value, "Running": s.docker_running,
                  "Paused": s.status == Status.PAUSED,
                  "Restarting": s.status == Status.RESTARTING, "OOMKilled": s.oom_killed,
                  "Dead": s.status == Status.DEAD, "Pid": s.pid, "ExitCode": s.exit_code, "Error": s.error,
                  "StartedAt": s.started_at, "FinishedAt": s.finished_at,
                  **({"Health": s.health} if s.health is not None else {})},
        "Image": c.cfg.image_id, "ResolvConfPath": paths["resolv"], "HostnamePath": paths["hostname"],
        "HostsPath": paths["hosts"], "LogPath": paths["log"], "Name": "/" + c.name,
        "RestartCount": s.restart_count, "Driver": "overlay2", "Platform": "linux", "MountLabel": "",
        "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None, "HostConfig": c.cfg.host_config,
        "GraphDriver": {"Name": "overlay2", "Data": graph}, "Mounts": mountpoints.inspect(c.cfg.mounts),
        "Config": c.cfg.config,
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
                            "LinkLocalIPv6PrefixLen": 0, "Ports": _port_map(c),
                            "SandboxKey": c.state.sandbox, "SecondaryIPAddresses": None,
                            "SecondaryIPv6Addresses": None, **_default_bridge(c),
                            "Networks": networking.settings(c)},
    }
    if size is not None:
        out["SizeRw"], out["SizeRootFs"] = size
    return out
