"""RUN: the command in a container of the engine (the stage's image, the build's network and
limits, its mounts), its output in the stream, its filesystem changes committed as a layer."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import TYPE_CHECKING, Any

from ..archive.tarwrite import write_tar
from ..errors import NotFound
from . import runmount
from .engine import DEFAULT_SHELL, BuildError, Stage, _short, decoder
from .parser import Instruction
from .stages import PROXY_ARGS

if TYPE_CHECKING:
    from .engine import _Build

_SCRIPT = "/.dockyard-heredoc"


def command(st: Stage, inst: Instruction) -> tuple[list[str], str]:
    """(argv, heredoc script to run as a file or ""): exec form, shell form, heredocs."""
    shell = list(st.run.get("Shell") or DEFAULT_SHELL)
    j = inst.json_args()
    if j is not None:
        if not j:
            raise inst.error("RUN requires at least one argument")
        return j, ""
    if inst.heredocs:
        text = inst.args.strip()
        only = len(inst.heredocs) == 1 and text.startswith("<<") and len(text.split()) == 1
        if only:
            body = inst.heredocs[0].content
            if body.startswith("#!"):
                return [_SCRIPT], body
            return shell + [body], ""
        parts = [inst.args]
        for h in inst.heredocs:
            parts.append(h.content + h.name)
        return shell + ["\n".join(parts)], ""
    if not inst.args.strip():
        raise inst.error("RUN requires at least one argument")
    return shell + [inst.args], ""


async def run_step(b: _Build, st: Stage, inst: Instruction) -> None:
    argv, script = command(st, inst)
    arg_env = sorted(f"{k}={v}" for k, v in st.args.items() if v is not None)
    proxy_env = [f"{k}={v}" for k, v in b.o.build_args.items() if k in PROXY_ARGS and v is not None
                 and k not in st.args]
    cc_cmd = ([f"|{len(arg_env)}", *arg_env] if arg_env else []) + argv
    mounts = runmount.parse(inst, st.run.get("WorkingDir") or "/")
    network = inst.flag("network") or b.o.network or "default"
    if network not in ("default", "none", "host") and inst.flags.get("network"):
        raise inst.error(f"unsupported network mode {network!r} (default, none or host)")
    if inst.flags.get("security") and inst.flag("security") != "sandbox":
        raise inst.error("--security=insecure needs the security.insecure entitlement, which this daemon "
                         "does not grant")
    extra: dict[str, Any] = {}
    if inst.flags:
        extra["DockyardRunFlags"] = " ".join(f"--{k}={v}" for k in sorted(inst.flags) for v in inst.flags[k])
    if script:
        extra["DockyardScript"] = script
    hit = b._probe(st, cc_cmd, extra)
    if hit is not None:
        await b._use(st, hit)
        return
    if st.image is None:   # RUN on scratch: an image with no layers to run it in
        await b._commit(st, "", [], None, nop=True)
    assert st.image is not None
    svc = b.b.c
    async with _mounts(b, st, mounts) as hc_mounts:
        hc: dict[str, Any] = {"NetworkMode": network, "LogConfig": {"Type": "none", "Config": {}},
                              **b.o.host_config}
        if b.o.extra_hosts:
            hc["ExtraHosts"] = list(b.o.extra_hosts)
        if hc_mounts:
            hc["Mounts"] = hc_mounts
        body = {"Image": st.image.id, "Cmd": argv, "Entrypoint": [""], "Env": arg_env + proxy_env,
                "AttachStdout": True, "AttachStderr": True, "Healthcheck": {"Test": ["NONE"]},
                "HostConfig": hc}
        c = await svc.create(None, body)
        b.containers.add(c.id)
        await b.out(f" ---> Running in {_short(c.id)}\n")
        if script:
            path = str(svc.snapshots.fs_path(c.id)) + _SCRIPT
            await asyncio.to_thread(_write_script, path, script)
        ch = await svc.attach(c)
        try:
            await svc.start(c.id)
            decs = {1: decoder(), 2: decoder()}
            async for stream, data in ch.frames():
                if stream in (1, 2):
                    text = decs[stream].decode(data)
                    if text:   # stderr in red, each write wrapped as dockerd's classic builder does
                        await b.out(text if stream == 1 else f"\x1b[91m{text}\x1b[0m")
        finally:
            ch.close()
        state = await svc.wait(c.id)
    if state.exit_code != 0:
        shown = " ".join(argv) if not script else _SCRIPT
        raise BuildError(f"The command '{shown}' returned a non-zero code: {state.exit_code}", state.exit_code)
    upper = str(svc.snapshots.fs_path(c.id))
    if script:
        try:
            os.unlink(upper + _SCRIPT)
        except FileNotFoundError:
            pass
    for m in mounts:   # mount points the step created are not part of its layer
        _drop_empty(upper, m.target)
    ids = r.to_container if (r := svc.remap_of(c)) else None
    layer = await asyncio.to_thread(svc.images.stage_from_writer, lambda out: write_tar(upper, out, True, ids))
    try:
        img = await b._commit(st, " ".join(cc_cmd), cc_cmd, layer, nop=False, extra=extra)
    except BaseException:
        svc.images.drop_staged([layer])
        raise
    if b.o.rm:
        await b.remove_container(c.id)
        await b.out(f"Removing intermediate container {_short(c.id)}\n")
    else:
        b.containers.discard(c.id)
    await b.out(f" ---> {_short(img.id)}\n")


def _write_script(path: str, script: str) -> None:
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o755)


def _drop_empty(upper: str, target: str) -> None:
    d = upper + target.rstrip("/")
    while d.startswith(upper + "/"):
        try:
            os.rmdir(d)
        except OSError:
            return
        d = os.path.dirname(d)


class _mounts:
    """HostConfig.Mounts for a RUN's --mount flags, and their clean-up."""

    def __init__(self, b: _Build, st: Stage, mounts: list[runmount.RunMount]) -> None:
        self.b, self.st, self.mounts = b, st, mounts
        self.cleanup: list[Any] = []

    async def __aenter__(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        try:
            for m in self.mounts:
                got = await self._one(m)
                if got is not None:
                    out.append(got)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return out

    async def __aexit__(self, *_: object) -> None:
        for fn in reversed(self.cleanup):
            r = fn()
            if asyncio.iscoroutine(r):
                await r
        self.cleanup.clear()

    async def _one(self, m: runmount.RunMount) -> dict[str, Any] | None:
        b = self.b
        if m.type == "tmpfs":
            t: dict[str, Any] = {"Type": "tmpfs", "Target": m.target}
            if m.size:
                t["TmpfsOptions"] = {"SizeBytes": m.size}
            return t
        if m.type == "secret":
            if m.required:
                raise BuildError(f"secret {m.id} not found: the /build API carries no secrets (BuildKit's "
                                 "session does)")
            return None   # not required and not given: not mounted, as BuildKit
        if m.type == "cache":
            root = str(b.b.root / "cache-mounts")
            d = runmount.cache_dir(root, m)
            if m.sharing == "locked":
                lock = b.b._cache_locks.setdefault(m.id, asyncio.Lock())
                await lock.acquire()
                self.cleanup.append(lock.release)
            elif m.sharing == "private" and b.b._cache_users.get(m.id):
                d = d + f"-private-{os.getpid()}-{id(self)}"
                self.cleanup.append(lambda p=d: shutil.rmtree(p, ignore_errors=True))
            b.b._cache_users[m.id] = b.b._cache_users.get(m.id, 0) + 1
            self.cleanup.append(lambda: b.b._cache_users.__setitem__(m.id, b.b._cache_users[m.id] - 1))
            if not os.path.isdir(d):
                os.makedirs(d, mode=m.mode if m.mode is not None else 0o755)
                os.chown(d, m.uid or 0, m.gid or 0)
            return {"Type": "bind", "Source": d, "Target": m.target, "ReadOnly": m.readonly}
        # bind: from the context (unpacked on first use), a stage or an image
        if not m.from_:
            src = await asyncio.to_thread(b.ctx.unpacked, m.source or "/")
            return {"Type": "bind", "Source": src, "Target": m.target, "ReadOnly": m.readonly} if m.readonly \
                else await self._writable(src, m)
        src_root = ""
        if m.from_:
            dep = b._stage_named(m.from_, self.st.plan.index)
            img = await b._wait_stage(dep) if dep is not None else await b._image(m.from_, "", False)
            view = b._view(None, img)
            src_root = await view.__aenter__()
            self.cleanup.append(lambda: view.__aexit__(None, None, None))
        from .context import _in_root
        src = _in_root(src_root, m.source or "/")
        if not os.path.exists(src):
            raise NotFound(f"--mount source {m.source or '/'} not found")
        return {"Type": "bind", "Source": src, "Target": m.target, "ReadOnly": m.readonly} if m.readonly \
            else await self._writable(src, m)

    async def _writable(self, src: str, m: runmount.RunMount) -> dict[str, Any]:
        """A read-write bind: the writes go to a copy, thrown away after the step."""
        tmp = str(self.b.b.root / f"bind-{os.urandom(6).hex()}")
        if os.path.isdir(src):
            await asyncio.to_thread(shutil.copytree, src, tmp, symlinks=True)
        else:
            await asyncio.to_thread(shutil.copy2, src, tmp)
        self.cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True) if os.path.isdir(tmp) else os.unlink(tmp))
        return {"Type": "bind", "Source": tmp, "Target": m.target, "ReadOnly": False}
