"""`--change` / `changes=` Dockerfile instructions applied to an image config (import, commit)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "ONBUILD", "STOPSIGNAL")


def _json_or_shell(arg: str, shell: bool) -> list[str]:
    arg = arg.strip()
    if arg.startswith("["):
        try:
            v = json.loads(arg)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
        except json.JSONDecodeError:
            pass
    return ["/bin/sh", "-c", arg] if shell else [arg]


def _pairs(arg: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        words = shlex.split(arg)
    except ValueError as e:
        raise InvalidArgument(f"{what}: {e}") from None
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    for w in words:
        if "=" not in w:
            raise InvalidArgument(f"{what} names can not be blank / need key=value: {w!r}")
        k, v = w.split("=", 1)
        out[k] = v
    return out


def apply(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of the container config (`config` of the image) with changes applied."""
    cfg = json.loads(json.dumps(config))
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        if instr not in ALLOWED:
            raise InvalidArgument(f"{instr} is not a valid change command")
        if instr == "CMD":
            cfg["Cmd"] = _json_or_shell(arg, True)
        elif instr == "ENTRYPOINT":
            cfg["Entrypoint"] = _json_or_shell(arg, True)
        elif instr == "ENV":
            env = [e for e in cfg.get("Env") or []]
            for k, v in _pairs(arg, "ENV").items():
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "LABEL":
            cfg.setdefault("Labels", {})
            cfg["Labels"] = {**(cfg["Labels"] or {}), **_pairs(arg, "LABEL")}
        elif instr == "EXPOSE":
            ports = cfg.get("ExposedPorts") or {}
            for p in arg.split():
                ports[p if "/" in p else p + "/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = cfg.get("Volumes") or {}
            for v in _json_or_shell(arg, False) if arg.strip().startswith("[") else arg.split():
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instr == "USER":
            cfg["User"] = arg.strip()
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = arg.strip()
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = arg.strip()
        elif instr == "ONBUILD":
            cfg["OnBuild"] = (cfg.get("OnBuild") or []) + [arg.strip()]
    return cfg
