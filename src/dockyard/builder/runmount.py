"""BuildKit's `RUN --mount=…` and `RUN --network=…` for the plain /build API: cache, bind,
tmpfs and secret mounts become mounts of the step's container."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from .parser import Instruction

_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")


@dataclass
class RunMount:
    type: str
    target: str
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = "shared"
    size: int = 0
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    raw: str = ""
    opts: dict[str, str] = field(default_factory=dict)


def parse(inst: Instruction, workdir: str) -> list[RunMount]:
    out = []
    for text in inst.flags.get("mount", []):
        fields: dict[str, str] = {}
        for part in text.split(","):
            k, eq, v = part.partition("=")
            k = k.strip().lower()
            if not k:
                continue
            fields[k] = v.strip() if eq else "true"
        typ = fields.pop("type", "bind")
        if typ not in _TYPES:
            raise inst.error(f"unsupported mount type {typ!r}")
        if typ == "ssh":
            raise inst.error("--mount=type=ssh needs a BuildKit session (ssh agent forwarding), which the "
                             "/build API cannot carry")
        target = fields.pop("target", "") or fields.pop("dst", "") or fields.pop("destination", "")
        m = RunMount(typ, target, raw=text)
        m.id = fields.pop("id", "")
        if typ == "secret":
            m.target = target or f"/run/secrets/{m.id}"
            if not m.id and target:
                m.id = os.path.basename(target)
            if not m.id:
                raise inst.error("secret mount needs an id or a target")
        elif not target:
            raise inst.error(f"--mount=type={typ}: target is required")
        if not m.target.startswith("/"):
            m.target = os.path.join(workdir or "/", m.target)
        m.source = fields.pop("source", "") or fields.pop("src", "")
        m.from_ = fields.pop("from", "")
        ro = fields.pop("readonly", None) or fields.pop("ro", None)
        rw = fields.pop("readwrite", None) or fields.pop("rw", None)
        m.readonly = typ == "bind" and not (rw == "true") and ro != "false"
        if typ == "cache":
            m.readonly = ro == "true"
            m.sharing = fields.pop("sharing", "shared")
            if m.sharing not in ("shared", "private", "locked"):
                raise inst.error(f"unsupported sharing value {m.sharing!r}")
            m.id = m.id or m.target
        if typ == "tmpfs":
            size = fields.pop("size", "")
            if size:
                from ..units import ram_in_bytes
                m.size = ram_in_bytes(size)
        if typ in ("secret", "cache"):
            if "required" in fields:
                m.required = fields.pop("required") == "true"
            for k in ("mode", "uid", "gid"):
                if k in fields:
                    v = fields.pop(k)
                    try:
                        setattr(m, k, int(v, 8) if k == "mode" else int(v))
                    except ValueError:
                        raise inst.error(f"invalid {k} {v!r} in --mount") from None
        if fields:
            raise inst.error(f"unexpected key(s) in --mount: {', '.join(sorted(fields))}")
        out.append(m)
    return out


def cache_dir(root: str, m: RunMount) -> str:
    """The host directory a cache mount's id keeps between builds."""
    return os.path.join(root, hashlib.sha256(m.id.encode()).hexdigest()[:32])
