"""The classic builder's evaluation: each needed stage built as its own task (independent
stages at once), one image per instruction with Docker's cache rule (the same parent and
the same resulting config, COPY/ADD sources by content checksum), RUN in a container of the
engine, COPY/ADD written as a layer directly, dockerd's JSON message stream as output."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import copy
import json
import logging
import os
import posixpath
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..containers.create import DEFAULT_PATH as _DEFAULT_PATH
from ..errors import EngineError, InvalidArgument, NotFound
from ..images.service import Image, now_iso
from ..store.mount import Mount, unmount
from . import expand
from .context import Context
from .parser import Dockerfile, DockerfileError, Instruction, parse
from .stages import PROXY_ARGS, StagePlan, arg_decl, plan

if TYPE_CHECKING:
    from ..containers.service import ContainerService

log = logging.getLogger(__name__)
Emit = Callable[[dict[str, Any]], Awaitable[None]]
DEFAULT_SHELL = ["/bin/sh", "-c"]


class BuildError(EngineError):
    """A failed step, reported in the stream (with the RUN's exit code when there is one)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Options:
    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    nocache: bool = False
    pull: bool = False
    rm: bool = True
    forcerm: bool = False
    network: str = "default"
    extra_hosts: list[str] = field(default_factory=list)
    squash: bool = False
    cache_from: list[str] = field(default_factory=list)
    platform: str = ""
    quiet: bool = False
    host_config: dict[str, Any] = field(default_factory=dict)   # resource limits of RUN containers


@dataclass
class Stage:
    plan: StagePlan
    image: Image | None = None           # the current image (None: scratch, nothing committed yet)
    config: dict[str, Any] = field(default_factory=dict)   # the image config being built
    args: dict[str, str | None] = field(default_factory=dict)
    done: asyncio.Future[Image | None] | None = None
    base_image: Image | None = None      # what FROM gave (--squash keeps it)
    cmd_set: bool = False                # a CMD in this stage (an ENTRYPOINT then keeps it)

    @property
    def run(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        """What substitutions see: the ARGs in scope, then ENV (ENV wins)."""
        out = {k: v for k, v in self.args.items() if v is not None}
        for e in self.run.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out


def _empty_config() -> dict[str, Any]:
    from ..images.service import ARCH
    return {"architecture": ARCH, "os": "linux", "config": {"Env": [_DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": []}, "history": []}




class Builder:
    """Builds for one daemon; `build()` per request."""

    def __init__(self, containers: ContainerService, root: Path) -> None:
        self.c = containers
        self.images = containers.images
        self.root = root
        self._cache_locks: dict[str, asyncio.Lock] = {}
        self._cache_users: dict[str, int] = {}
        from .context import ContextStore
        self.contexts = ContextStore()   # Dockyard's context sync: the last context of a few clients
        self._clean()

    def _clean(self) -> None:
        """What a build that a crash interrupted left: views, contexts, scratch directories
        (cache mounts stay: they are kept on purpose)."""
        from ..store.mount import mounts_under
        for m in sorted(mounts_under(str(self.root)), reverse=True):
            unmount(m)
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.name != "cache-mounts":
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    async def build(self, ctx: Context, df_bytes: bytes, o: Options, emit: Emit) -> Image:
        b = _Build(self, ctx, o, emit)
        return await b.run(parse(df_bytes))


class _Build:
    def __init__(self, b: Builder, ctx: Context, o: Options, emit: Emit) -> None:
        self.b, self.ctx, self.o, self._emit = b, ctx, o, emit
        self.images = b.images
        self.step = 0
        self.total = 0
        self.stages: list[Stage] = []
        self.used_args: set[str] = set()
        self.containers: set[str] = set()   # intermediate containers still there
        self.cleanup_paths: list[str] = []  # downloads (ADD URL)

    async def out(self, text: str) -> None:
        if not self.o.quiet:
            await self._emit({"stream": text})

    async def run(self, df: Dockerfile) -> Image:
        self.escape = df.escape
        p = plan(df, self.o.build_args, self.o.target)
        if self.o.labels:   # --label: a LABEL step at the end of the target stage, as the classic builder
            text = " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(self.o.labels.items()))
            last = p.stages[p.target]
            line = (last.insts[-1] if last.insts else last.from_inst).line
            p.stages[p.target].insts.append(Instruction("label", text, line, f"LABEL {text}"))
        self.plan = p
        self.total = p.steps()
        self.stages = [Stage(sp) for sp in p.stages]
        loop = asyncio.get_running_loop()
        for i in p.needed:
            self.stages[i].done = loop.create_future()
        self._order = {i: n for n, i in enumerate(p.needed)}
        self._turn = asyncio.Condition()
        self._next = 0
        for inst in p.meta_insts:   # the ARGs before the first FROM are steps too (the classic builder's count)
            self.step += 1
            await self.out(f"Step {self.step}/{self.total} : {inst.original}\n")
        tasks = [asyncio.create_task(self._stage(self.stages[i])) for i in p.needed]
        try:
            await asyncio.gather(*tasks)
        except BaseException as e:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # a failed step's container stays for inspection (Docker's --rm) unless --force-rm;
            # a build the client abandoned leaves none
            if self.o.forcerm or isinstance(e, asyncio.CancelledError):
                await asyncio.shield(self._remove_containers())
            raise
        finally:
            for path in self.cleanup_paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        final = self.stages[p.target]
        img = final.image
        if img is None:   # FROM scratch and nothing else
            img = await self._commit(final, "", [], None, nop=True)
        if self.o.squash:
            from .squash import squash
            img = await squash(self, final, img)
        unused = sorted(k for k in self.o.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            await self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        return img

    # --- stages -------------------------------------------------------------------------
    async def _stage(self, st: Stage) -> None:
        assert st.done is not None
        try:
            await self._from(st)
            for inst in st.plan.insts:
                await self._dispatch(st, inst)
            st.done.set_result(st.image)
        except BaseException as e:
            if not st.done.done():
                st.done.set_exception(e)
                st.done.exception()   # retrieved: the gather reports it
            raise

    async def _begin(self, st: Stage, inst: Instruction, text: str) -> None:
        self.step += 1
        await self.out(f"Step {self.step}/{self.total} : {text}\n")

    async def _from(self, st: Stage) -> None:
        sp = st.plan
        await self._begin(st, sp.from_inst, sp.from_inst.original.split(None, 1)[0].upper() + " " +
                          sp.from_inst.original.split(None, 1)[1])
        dep = self._stage_named(sp.base, sp.index)
        if dep is not None:
            st.image = await self._wait_stage(dep)
            st.config = copy.deepcopy(st.image.config) if st.image else _empty_config()
        elif sp.base.lower() == "scratch":
            st.image, st.config = None, _empty_config()
        else:
            st.image = await self._image(sp.base, sp.platform or self.o.platform, self.o.pull)
            st.config = copy.deepcopy(st.image.config)
        st.args = {}
        st.base_image = st.image
        env = st.run.get("Env") or []
        if not any(e.startswith("PATH=") for e in env):   # as dockerd's builder at every FROM
            st.run["Env"] = [*env, _DEFAULT_PATH]
        if st.image is not None:
            await self.out(f" ---> {_short(st.image.id)}\n")
        triggers = list(st.run.get("OnBuild") or [])
        if triggers:
            st.run["OnBuild"] = None
            await self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for t in triggers:
                sub = parse(t.encode()).instructions[0]
                sub.line = sp.from_inst.line
                await self._dispatch(st, sub, trigger=True)

    def _stage_named(self, ref: str, current: int) -> Stage | None:
        for s in self.stages[:current]:
            if s.plan.name and s.plan.name == ref.lower():
                return s
        if ref.isdigit() and int(ref) < current:
            return self.stages[int(ref)]
        return None

    async def _wait_stage(self, s: Stage) -> Image | None:
        assert s.done is not None, "a needed stage"
        return await asyncio.shield(s.done)

    async def _image(self, ref: str, platform: str, pull: bool) -> Image:
        """A base image: local, or pulled when missing (always with --pull)."""
        if not pull:
            try:
                return self.images.resolve(ref)
            except NotFound:
                pass
        from ..registry import pull as pull_mod
        await self.out(f"Pulling {ref}\n")
        msgs: list[dict[str, Any]] = []
        try:
            iid = await asyncio.to_thread(pull_mod.pull, self.images, ref, platform, msgs.append)
        except EngineError as e:
            if not pull:
                raise
            try:   # --pull of an image only here (built or loaded): Docker warns and uses it
                img = self.images.resolve(ref)
            except NotFound:
                raise e from None
            await self.out(f"[Warning] could not pull {ref}: {e.message}; using the local image\n")
            return img
        return self.images.get(iid)

    # --- instructions -------------------------------------------------------------------
    async def _dispatch(self, st: Stage, inst: Instruction, trigger: bool = False) -> None:
        if not trigger:
            rest = inst.original.split(None, 1)[1] if len(inst.original.split(None, 1)) > 1 else ""
            await self._begin(st, inst, f"{inst.cmd.upper()} {rest}".rstrip())
        handler = getattr(self, f"_i_{inst.cmd}", None)
        if handler is None:
            raise inst.error("not supported here")
        allowed = _FLAGS.get(inst.cmd, ())
        for f in inst.flags:
            if f not in allowed:
                raise inst.error(f"unknown flag: --{f}")
        try:
            await handler(st, inst)
        except DockerfileError:
            raise
        except BuildError:
            raise
        except InvalidArgument as e:
            raise inst.error(e.message) from None

    def _w(self, st: Stage, text: str) -> str:
        return expand.word(text, st.env(), self.escape)

    def _words(self, st: Stage, text: str) -> list[str]:
        return expand.words(text, st.env(), self.escape)

    async def _nop(self, st: Stage, text: str) -> None:
        """Commit a config-only step (or take it from the cache)."""
        shell = list(st.run.get("Shell") or DEFAULT_SHELL)
        cc_cmd = shell + ["#(nop) ", text]
        hit = self._probe(st, cc_cmd)
        if hit is not None:
            await self._use(st, hit)
            return
        img = await self._commit(st, f"{' '.join(shell)} #(nop)  {text}", cc_cmd, None, nop=True)
        await self.out(f" ---> {_short(img.id)}\n")

    async def _i_env(self, st: Stage, inst: Instruction) -> None:
        pairs = expand.pairs(inst.args, st.env(), self.escape, "ENV")
        env = list(st.run.get("Env") or [])
        for k, v in pairs:   # replaced where it stands, else appended (dockerd's order)
            keys = [e.partition("=")[0] for e in env]
            if k in keys:
                env[keys.index(k)] = f"{k}={v}"
            else:
                env.append(f"{k}={v}")
        st.run["Env"] = env
        await self._nop(st, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _i_label(self, st: Stage, inst: Instruction) -> None:
        pairs = expand.pairs(inst.args, st.env(), self.escape, "LABEL")
        labels = dict(st.run.get("Labels") or {})
        labels.update(pairs)
        st.run["Labels"] = labels
        await self._nop(st, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _i_maintainer(self, st: Stage, inst: Instruction) -> None:
        st.config["author"] = self._w(st, inst.args)
        await self._nop(st, f"MAINTAINER {st.config['author']}")

    async def _i_arg(self, st: Stage, inst: Instruction) -> None:
        decl = arg_decl(inst, st.env(), self.escape)
        for k, default in decl:
            given = self.o.build_args.get(k)
            if k in self.o.build_args:
                self.used_args.add(k)
            if given is not None:
                v: str | None = given
            elif default is not None:
                v = default
            else:
                v = self.plan.meta_args.get(k)
            st.args[k] = v
        await self._nop(st, "ARG " + " ".join(k if d is None else f"{k}={d}" for k, d in decl))

    async def _i_cmd(self, st: Stage, inst: Instruction) -> None:
        st.run["Cmd"] = self._argv(st, inst)
        st.cmd_set = True
        await self._nop(st, f"CMD {_go_list(st.run['Cmd'])}")

    async def _i_entrypoint(self, st: Stage, inst: Instruction) -> None:
        st.run["Entrypoint"] = self._argv(st, inst) if inst.args.strip() else None
        if not st.cmd_set:   # an ENTRYPOINT drops the CMD inherited from the base (Docker's rule)
            st.run["Cmd"] = None
        await self._nop(st, f"ENTRYPOINT {_go_list(st.run['Entrypoint'] or [])}")

    def _argv(self, st: Stage, inst: Instruction) -> list[str]:
        j = inst.json_args()
        if j is not None:
            return j
        return list(st.run.get("Shell") or DEFAULT_SHELL) + [inst.args]

    async def _i_shell(self, st: Stage, inst: Instruction) -> None:
        j = inst.json_args()
        if not j:
            raise inst.error("SHELL requires the arguments to be in JSON form")
        st.run["Shell"] = j
        await self._nop(st, f"SHELL {_go_list(j)}")

    async def _i_expose(self, st: Stage, inst: Instruction) -> None:
        ports = dict(st.run.get("ExposedPorts") or {})
        for w in self._words(st, inst.args):
            num, _, proto = w.partition("/")
            proto = (proto or "tcp").lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise inst.error(f"invalid proto: {proto}")
            lo, _, hi = num.partition("-")
            try:
                a, z = int(lo), int(hi or lo)
            except ValueError:
                raise inst.error(f"invalid containerPort: {num}") from None
            if not (0 < a <= z < 65536):
                raise inst.error(f"invalid port range: {num}")
            for n in range(a, z + 1):
                ports[f"{n}/{proto}"] = {}
        st.run["ExposedPorts"] = ports
        await self._nop(st, "EXPOSE " + " ".join(sorted(ports)))

    async def _i_volume(self, st: Stage, inst: Instruction) -> None:
        j = inst.json_args()
        paths = [self._w(st, x) for x in j] if j is not None else self._words(st, inst.args)
        vols = dict(st.run.get("Volumes") or {})
        for v in paths:
            if not v.strip():
                raise inst.error("VOLUME specified can not be an empty string")
            vols[v] = {}
        st.run["Volumes"] = vols
        await self._nop(st, f"VOLUME {_go_list(paths)}")

    async def _i_user(self, st: Stage, inst: Instruction) -> None:
        st.run["User"] = self._w(st, inst.args.strip())
        await self._nop(st, f"USER {st.run['User']}")

    async def _i_stopsignal(self, st: Stage, inst: Instruction) -> None:
        from ..signals import parse_signal
        sig = self._w(st, inst.args.strip())
        parse_signal(sig)
        st.run["StopSignal"] = sig
        await self._nop(st, f"STOPSIGNAL {sig}")

    async def _i_onbuild(self, st: Stage, inst: Instruction) -> None:
        trig = inst.args.strip()
        st.run["OnBuild"] = list(st.run.get("OnBuild") or []) + [trig]
        await self._nop(st, f"ONBUILD {trig}")

    async def _i_healthcheck(self, st: Stage, inst: Instruction) -> None:
        from ..units import go_duration
        words = inst.args.split(None, 1)
        kind = words[0].upper() if words else ""
        if kind == "NONE":
            if len(words) > 1 or inst.flags:
                raise inst.error("HEALTHCHECK NONE takes no arguments")
            st.run["Healthcheck"] = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = words[1] if len(words) > 1 else ""
            sub = Instruction("cmd", rest, inst.line, rest)
            j = sub.json_args()
            if not rest.strip():
                raise inst.error("Missing command after HEALTHCHECK CMD")
            hc: dict[str, Any] = {"Test": ["CMD"] + j if j is not None else ["CMD-SHELL", rest]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                if inst.flags.get(flag):
                    d = go_duration(inst.flag(flag))
                    if d != 0 and d < 1_000_000:
                        raise inst.error(f"--{flag} cannot be less than 1ms")
                    hc[key] = d
            if inst.flags.get("retries"):
                try:
                    hc["Retries"] = int(inst.flag("retries"))
                except ValueError:
                    raise inst.error(f"invalid --retries {inst.flag('retries')!r}") from None
                if hc["Retries"] < 0:
                    raise inst.error("--retries cannot be negative")
            st.run["Healthcheck"] = hc
        else:
            raise inst.error(f"Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        await self._nop(st, f"HEALTHCHECK &{{{_go_list(st.run['Healthcheck']['Test'])}}}")

    async def _i_workdir(self, st: Stage, inst: Instruction) -> None:
        wd = self._w(st, inst.args.strip())
        if not wd.startswith("/"):
            wd = posixpath.join(st.run.get("WorkingDir") or "/", wd)
        wd = posixpath.normpath(wd)
        st.run["WorkingDir"] = wd
        from .copying import Plan
        async with self._view(st) as root:
            missing = _missing_dirs(root, wd)
        if not missing:
            await self._nop(st, f"WORKDIR {wd}")
            return
        cc_cmd = list(st.run.get("Shell") or DEFAULT_SHELL) + ["#(nop) ", f"WORKDIR {wd}"]
        hit = self._probe(st, cc_cmd)
        if hit is not None:
            await self._use(st, hit)
            return
        plan_ = Plan(dirs=[(d, 0o755, 0, None) for d in missing])
        await self._layer_step(st, plan_, None, None, cc_cmd, f"{' '.join(cc_cmd[:-2])} #(nop)  WORKDIR {wd}")

    # --- RUN ----------------------------------------------------------------------------
    async def _i_run(self, st: Stage, inst: Instruction) -> None:
        from .run import run_step
        await run_step(self, st, inst)

    # --- COPY / ADD ---------------------------------------------------------------------
    async def _i_copy(self, st: Stage, inst: Instruction) -> None:
        from .copystep import copy_step
        await copy_step(self, st, inst, add=False)

    async def _i_add(self, st: Stage, inst: Instruction) -> None:
        from .copystep import copy_step
        await copy_step(self, st, inst, add=True)

    # --- images, cache ------------------------------------------------------------------
    def _probe(self, st: Stage, cc_cmd: list[str], extra: dict[str, Any] | None = None) -> str | None:
        """An image made before from this parent by this same step (Docker's classic cache)."""
        if self.o.nocache:
            return None
        want_cc = {**st.run, "Cmd": cc_cmd, **(extra or {})}
        want_cfg = st.run
        parent = st.image.id if st.image else ""
        # with --cache-from, the classic builder's cache is those images only: a local child counts
        # when it is one of them or one of their ancestors
        allowed = self._cache_from_lineage() if self.o.cache_from else None
        for child in self.images.meta.children_of_image(parent):
            if allowed is not None and child not in allowed:
                continue
            try:
                cfg = self.images.config_of(child)
            except NotFound:
                continue
            if _same(cfg.get("container_config"), want_cc) and _same(cfg.get("config"), want_cfg) \
                    and cfg.get("author") == st.config.get("author"):
                return child
        if self.o.cache_from and not extra:
            return self._from_cache_images(st, " ".join(cc_cmd))
        return None

    def _cache_from_lineage(self) -> set[str]:
        """The --cache-from images and all their ancestors (parent links)."""
        out: set[str] = set()
        for ref in self.o.cache_from:
            try:
                iid: str | None = self.images.resolve(ref).id
            except (NotFound, InvalidArgument):
                continue
            while iid and iid not in out:
                out.add(iid)
                row = self.images.meta.image(iid)
                iid = row["parent"] if row else None
        return out

    def _from_cache_images(self, st: Stage, created_by: str) -> str | None:
        """--cache-from: an image (pulled or loaded, so without parent links) whose history
        continues the current image's with this very step; the step's image is rebuilt from its
        history and layers (the classic builder's rule)."""
        base_hist = list(st.config.get("history") or [])
        base_ids = list((st.config.get("rootfs") or {}).get("diff_ids") or [])
        for ref in self.o.cache_from:
            try:
                t = self.images.resolve(ref)
            except (NotFound, InvalidArgument):
                continue
            hist = list(t.config.get("history") or [])
            ids = list(t.config["rootfs"].get("diff_ids") or [])
            n = len(base_hist)
            if len(hist) <= n or hist[n].get("created_by") != created_by or ids[:len(base_ids)] != base_ids:
                continue
            if [_hist_key(h) for h in hist[:n]] != [_hist_key(h) for h in base_hist]:
                continue
            layers = sum(1 for h in hist[:n + 1] if not h.get("empty_layer"))
            cfg = copy.deepcopy(st.config)
            cfg["config"] = copy.deepcopy(st.run)
            cfg["container_config"] = {**copy.deepcopy(st.run), "Cmd": created_by.split(" ")}
            cfg["created"] = hist[n].get("created") or now_iso()
            cfg["history"] = hist[:n + 1]
            cfg["rootfs"] = {"type": "layers", "diff_ids": ids[:layers]}
            img = self.images.add_image(cfg, st.image.id if st.image else "")
            return img.id
        return None

    async def _use(self, st: Stage, image_id: str) -> None:
        st.image = self.images.get(image_id)
        st.config = copy.deepcopy(st.image.config)
        await self.out(f" ---> Using cache\n ---> {_short(image_id)}\n")

    async def _commit(self, st: Stage, created_by: str, cc_cmd: list[str], layer: Any, nop: bool,
                      extra: dict[str, Any] | None = None) -> Image:
        cfg = copy.deepcopy(st.config)
        created = now_iso()
        cfg["created"] = created
        cfg["config"] = copy.deepcopy(st.run)
        cfg["container_config"] = {**copy.deepcopy(st.run), "Cmd": cc_cmd, **(extra or {})}
        cfg["docker_version"] = "dockyard"
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        if layer is not None:
            cfg["rootfs"]["diff_ids"] = list(cfg["rootfs"].get("diff_ids") or []) + [layer.diff_id]
        if created_by:
            h: dict[str, Any] = {"created": created, "created_by": created_by}
            if nop:
                h["empty_layer"] = True
            cfg["history"] = list(cfg.get("history") or []) + [h]
        parent = st.image.id if st.image else ""
        top = st.image.top_layer if st.image else None
        if layer is not None:
            img = await asyncio.to_thread(self.images.add_image_with_layer, layer, top, cfg, parent)
        else:
            img = await asyncio.to_thread(self.images.add_image, cfg, parent)
        st.image = img
        st.config = copy.deepcopy(img.config)
        return img

    async def _layer_step(self, st: Stage, plan_: Any, owner: tuple[int, int] | None, chmod: int | None,
                          cc_cmd: list[str], created_by: str) -> None:
        from .copying import write
        layer = await asyncio.to_thread(self.images.stage_from_writer, lambda out: write(plan_, out, owner, chmod))
        try:
            img = await self._commit(st, created_by, cc_cmd, layer, nop=False)
        except BaseException:
            self.images.drop_staged([layer])
            raise
        await self.out(f" ---> {_short(img.id)}\n")

    @contextlib.asynccontextmanager
    async def _view(self, st: Stage | None, image: Image | None = None) -> AsyncIterator[str]:
        """A read-only view of a stage's current image (or `image`)."""
        img = image if image is not None else (st.image if st is not None else None)
        async with image_view(self.b.root, self.images.layer_dirs(img) if img is not None else []) as root:
            yield root

    async def _remove_containers(self) -> None:
        for cid in list(self.containers):
            await self.remove_container(cid)

    async def remove_container(self, cid: str) -> None:
        with contextlib.suppress(EngineError):
            await self.b.c.remove(cid, force=True, volumes=True)
        self.containers.discard(cid)


_FLAGS = {"copy": ("from", "chown", "chmod", "link", "parents", "exclude"), "add": ("chown", "chmod", "link", "checksum",
                                                                                    "keep-git-dir"),
          "run": ("mount", "network", "security"), "healthcheck": ("interval", "timeout", "start-period",
                                                                    "start-interval", "retries"),
          "from": ("platform",)}


@contextlib.asynccontextmanager
async def image_view(root: Path, layers: list[str]) -> AsyncIterator[str]:
    """Layers (topmost first) mounted read-only in a directory of their own."""
    target = root / f"view-{uuid.uuid4().hex[:12]}"
    target.mkdir(parents=True)
    mounted = False
    try:
        if len(layers) == 1:
            await asyncio.to_thread(Mount("bind", layers[0], ("rbind",)).mount, str(target))
            mounted = True
        elif layers:
            await asyncio.to_thread(Mount("overlay", "overlay", ("lowerdir=" + ":".join(layers), "ro")).mount,
                                    str(target))
            mounted = True
        yield str(target)
    finally:
        if mounted:
            await asyncio.to_thread(unmount, str(target))
        with contextlib.suppress(OSError):
            target.rmdir()


def _missing_dirs(root: str, path: str) -> list[str]:
    out: list[str] = []
    d = path.rstrip("/")
    while d and d != "/":
        if os.path.isdir(os.path.join(root, d.lstrip("/"))):
            break
        out.append(d)
        d = posixpath.dirname(d)
    return list(reversed(out))


def _hist_key(h: dict[str, Any]) -> tuple[str, bool]:
    return str(h.get("created_by") or ""), bool(h.get("empty_layer"))


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _short(image_id: str) -> str:
    return image_id.split(":")[-1][:12]


def _go_list(xs: list[str]) -> str:
    """A list as Go's %q prints it in Docker's history (`["sh" "-c" "x"]`)."""
    return "[" + " ".join(json.dumps(x) for x in xs) + "]"


def decoder() -> Any:
    return codecs.getincrementaldecoder("utf-8")("replace")

