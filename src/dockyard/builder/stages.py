"""A Dockerfile's stages: the ARGs before the first FROM, each stage's base and name, which
stages a target needs (the base and every `--from` it names), the step count."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import expand
from .parser import Dockerfile, DockerfileError, Instruction

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")


@dataclass
class StagePlan:
    index: int
    name: str                 # lower case, "" when unnamed
    base: str                 # the FROM image, meta args expanded (a stage name, an image or "scratch")
    platform: str
    from_inst: Instruction
    insts: list[Instruction] = field(default_factory=list)
    needs: set[int] = field(default_factory=set)   # other stages it reads (base, --from)


@dataclass
class Plan:
    meta_args: dict[str, str | None]
    meta_insts: list[Instruction]
    stages: list[StagePlan]
    target: int
    needed: list[int]          # in file order

    def steps(self) -> int:
        return len(self.meta_insts) + sum(1 + len(self.stages[i].insts) for i in self.needed)


def arg_decl(inst: Instruction, env: dict[str, str], escape: str) -> list[tuple[str, str | None]]:
    """`ARG a b=c`: names with their defaults (None: no default)."""
    out: list[tuple[str, str | None]] = []
    for w in expand.split(inst.args, escape):
        if "=" in w:
            k, _, v = w.partition("=")
            out.append((expand.word(k, env, escape), expand.word(v, env, escape)))
        else:
            out.append((expand.word(w, env, escape), None))
    for k, _ in out:
        if not k:
            raise inst.error("ARG names can not be blank")
    return out


def plan(df: Dockerfile, build_args: dict[str, str | None], target: str) -> Plan:
    esc = df.escape
    meta: dict[str, str | None] = {}
    i = 0
    insts = df.instructions
    while i < len(insts) and insts[i].cmd != "from":
        inst = insts[i]
        if inst.cmd != "arg":
            raise DockerfileError(f"Dockerfile:{inst.line}: no build stage in current context "
                                  f"({inst.cmd.upper()} before the first FROM)")
        for k, v in arg_decl(inst, _known(meta), esc):
            meta[k] = build_args[k] if build_args.get(k) is not None else v
        i += 1
    if i == len(insts):
        raise DockerfileError("Dockerfile has no FROM instruction")
    stages: list[StagePlan] = []
    names: dict[str, int] = {}
    for inst in insts[i:]:
        if inst.cmd == "from":
            words = expand.split(inst.args, esc)
            env = _known(meta)
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
                raise inst.error("FROM requires either one or three arguments (FROM image [AS name])")
            try:
                base = expand.word(words[0], env, esc)
            except Exception as e:  # noqa: BLE001 - a substitution error in the line
                raise inst.error(str(e)) from None
            if not base:
                raise inst.error("base name should not be blank")
            name = ""
            if len(words) == 3:
                name = words[2].lower()
                if not _STAGE_NAME.match(name):
                    raise inst.error(f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                                     "or contain symbols")
                if name in names:
                    raise inst.error(f"duplicate name {name!r}")
            for f in inst.flags:
                if f != "platform":
                    raise inst.error(f"unknown flag: --{f}")
            platform = expand.word(inst.flag("platform"), env, esc) if inst.flags.get("platform") else ""
            sp = StagePlan(len(stages), name, base, platform, inst)
            if base.lower() in names:
                sp.needs.add(names[base.lower()])
            if name:
                names[name] = sp.index
            stages.append(sp)
        else:
            stages[-1].insts.append(inst)
    for sp in stages:   # --from= of COPY and RUN --mount
        for inst in sp.insts:
            for ref in _from_refs(inst):
                idx = _stage_ref(ref, names, len(stages), sp.index)
                if idx is not None:
                    sp.needs.add(idx)
    if target:
        t = names.get(target.lower())
        if t is None:
            raise DockerfileError(f"failed to reach build target {target} in Dockerfile")
    else:
        t = len(stages) - 1
    needed: set[int] = set()
    todo = [t]
    while todo:
        n = todo.pop()
        if n not in needed:
            needed.add(n)
            todo.extend(stages[n].needs)
    return Plan(meta, insts[:i], stages, t, sorted(needed))


def _known(meta: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in meta.items() if v is not None}


def _from_refs(inst: Instruction) -> list[str]:
    refs = list(inst.flags.get("from", [])) if inst.cmd in ("copy", "add") else []
    if inst.cmd == "run":
        for m in inst.flags.get("mount", []):
            for part in m.split(","):
                k, _, v = part.partition("=")
                if k.strip() == "from":
                    refs.append(v.strip())
    return refs


def _stage_ref(ref: str, names: dict[str, int], count: int, current: int) -> int | None:
    """The stage a `--from` names (by name or index, earlier stages only), or None: an image."""
    if ref.lower() in names:
        idx = names[ref.lower()]
    elif ref.isdigit():
        idx = int(ref)
        if idx >= count:
            raise DockerfileError(f"invalid from flag value {ref}: refers to a stage that does not exist")
    else:
        return None
    if idx >= current:
        raise DockerfileError(f"invalid from flag value {ref}: refers to the current or a later stage")
    return idx
