"""`compose config`'s normalised model: the merged, interpolated project with every short
syntax in its long form, as Docker Compose prints it — the project `name`, build contexts as
absolute paths, environment and labels as maps, `depends_on` with conditions, ports and volumes
as mappings, each service's networks (`default` when it names none), and the real names of
networks and volumes."""

from __future__ import annotations

import copy
import os
import shlex
from typing import Any

from .loader import Project


def normalise(p: Project, network_name: Any, volume_name: Any) -> dict[str, Any]:
    doc = copy.deepcopy(p.config)
    doc.pop("version", None)
    out: dict[str, Any] = {"name": p.name}
    uses_default = False
    services = {}
    for name, svc in (doc.get("services") or {}).items():
        svc = dict(svc)
        svc.pop("extends", None)
        if isinstance(svc.get("build"), str):
            svc["build"] = {"context": svc["build"]}
        if isinstance(svc.get("build"), dict):
            b = svc["build"]
            b["context"] = os.path.abspath(os.path.join(p.workdir, str(b.get("context") or ".")))
            b.setdefault("dockerfile", "Dockerfile")
        for key in ("environment", "labels"):
            if isinstance(svc.get(key), list):
                svc[key] = {k: (v if eq else None) for k, eq, v in (str(x).partition("=") for x in svc[key])}
        for key in ("command", "entrypoint"):
            if isinstance(svc.get(key), str):
                svc[key] = shlex.split(svc[key])
        if isinstance(svc.get("depends_on"), list):
            svc["depends_on"] = {d: {"condition": "service_started"} for d in svc["depends_on"]}
        if not svc.get("network_mode"):
            nets = svc.get("networks") or {"default": None}
            svc["networks"] = {n: None for n in nets} if isinstance(nets, list) else nets
            uses_default = uses_default or "default" in svc["networks"]
        if svc.get("ports"):
            svc["ports"] = [x for port in svc["ports"] for x in long_ports(port)]
        if svc.get("volumes"):
            svc["volumes"] = [long_volume(v, p.workdir) for v in svc["volumes"]]
        services[name] = svc
    out["services"] = services
    nets = dict(doc.get("networks") or {})
    if uses_default:
        nets.setdefault("default", None)
    if nets:
        out["networks"] = {k: {**(v or {}), "name": network_name(k)} for k, v in nets.items()}
    if doc.get("volumes"):
        out["volumes"] = {k: {**(v or {}), "name": volume_name(k)} for k, v in doc["volumes"].items()}
    for key in ("secrets", "configs"):
        if doc.get(key):
            out[key] = {k: {**v, "file": host_path(p.workdir, str(v["file"]))} if v.get("file")
                        else v for k, v in doc[key].items()}
    return out


def host_path(workdir: str, path: str) -> str:
    """A host path of the file: `~` expanded, relative to the project directory."""
    return os.path.abspath(os.path.join(workdir, os.path.expanduser(path)))


def long_ports(port: Any) -> list[dict[str, Any]]:
    """A `ports` entry in long syntax, one mapping per port of a range."""
    if isinstance(port, dict):
        return [{"mode": "ingress", "protocol": "tcp", **port}]
    text, _, proto = str(port).partition("/")
    parts = text.rsplit(":", 2) if text.count(":") <= 2 else [text]
    ip, published, target = (["", ""] + parts)[-3:] if len(parts) < 3 else parts
    lo, _, hi = target.partition("-")
    plo, _, phi = published.partition("-")
    out = []
    for i, t in enumerate(range(int(lo), int(hi or lo) + 1)):
        pub = str(int(plo) + i) if plo and phi and hi else published   # else a host range for one port
        entry: dict[str, Any] = {"mode": "ingress", "target": t, "protocol": proto or "tcp"}
        if pub:
            entry["published"] = int(pub) if pub.isdigit() else pub   # an integer for the 2021 schema too
        if ip:
            entry["host_ip"] = ip.strip("[]")
        out.append(entry)
    return out


def long_volume(v: Any, workdir: str) -> dict[str, Any]:
    """A service's `volumes` entry in long syntax, a bind's source made absolute."""
    if isinstance(v, dict):
        v = dict(v)
        if v.get("type") == "bind":
            v["source"] = host_path(workdir, str(v.get("source") or ""))
        return v
    parts = str(v).split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    src, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
    bind = src.startswith((".", "/", "~"))
    out: dict[str, Any] = {"type": "bind" if bind else "volume", "target": target,
                           "source": host_path(workdir, src) if bind else src}
    if "ro" in mode.split(","):
        out["read_only"] = True
    if bind:
        out["bind"] = {"create_host_path": True}
    return out
