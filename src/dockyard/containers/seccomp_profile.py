"""Docker's seccomp profile format → the OCI `linux.seccomp` object for one container."""

from __future__ import annotations

import functools
import json
import platform
from importlib import resources
from typing import Any

_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


@functools.lru_cache(maxsize=1)
def default_profile() -> dict[str, Any]:
    """Docker's default profile, shipped with the runtime package."""
    return json.loads(resources.files("dockyard.runtime").joinpath("seccomp-default.json").read_text())


def _kernel() -> tuple[int, int]:
    parts = platform.release().split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def to_oci(profile: dict[str, Any], caps: list[str]) -> dict[str, Any]:
    """Resolve includes/excludes (caps, arches, minKernel) for this host and capability set."""
    native = _NATIVE.get(platform.machine(), "SCMP_ARCH_X86_64")
    arches: list[str] = []
    for m in profile.get("archMap") or []:
        if m["architecture"] == native:
            arches = [native] + list(m.get("subArchitectures") or [])
    if not arches:
        arches = list(profile.get("architectures") or [native])
    kern = _kernel()
    capset = set(caps)
    out = []
    for rule in profile.get("syscalls") or []:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= capset:
            continue
        names = {native.replace("SCMP_ARCH_", "").lower(), "amd64" if native.endswith("X86_64") else "arm64"}
        if inc.get("arches") and not set(inc["arches"]) & names:
            continue
        if inc.get("minKernel"):
            mk = tuple(int(x) for x in inc["minKernel"].split(".")[:2])
            if kern < mk:
                continue
        if exc.get("caps") and set(exc["caps"]) & capset:
            continue
        if exc.get("arches") and set(exc["arches"]) & {"amd64" if native.endswith("X86_64") else "arm64"}:
            continue
        r: dict[str, Any] = {"names": rule.get("names") or [rule.get("name")], "action": rule["action"]}
        if rule.get("args"):
            r["args"] = rule["args"]
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = rule["errnoRet"]
        out.append(r)
    res: dict[str, Any] = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": out}
    if profile.get("defaultErrnoRet") is not None:
        res["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return res
