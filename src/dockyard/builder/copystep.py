"""COPY and ADD: sources from the context, a stage, an image, a heredoc or (ADD) a URL; the
cache key is their content checksum; the layer is written directly (copying.py)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import os
import posixpath
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from .context import Source, checksum, file_digest, resolve_sources
from .copying import Plan, is_archive, parents_to_create
from .engine import DEFAULT_SHELL, Stage
from .parser import Instruction

if TYPE_CHECKING:
    from .engine import _Build

_REFUSED = {"link": "--link (layers rebased independently of their parent) is not supported by this builder",
            "parents": "--parents is not supported by this builder",
            "exclude": "--exclude is not supported by this builder",
            "checksum": "--checksum is not supported by this builder",
            "keep-git-dir": "--keep-git-dir is not supported: this builder does not fetch git sources"}


async def copy_step(b: _Build, st: Stage, inst: Instruction, add: bool) -> None:
    name = "ADD" if add else "COPY"
    for f in inst.flags:
        if f in _REFUSED:
            raise inst.error(_REFUSED[f])
    env = st.env()
    j = inst.json_args()
    from . import expand
    words = [expand.word(x, env, b.escape) for x in j] if j is not None else expand.words(inst.args, env, b.escape)
    if len(words) < 2:
        raise inst.error(f"{name} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined.")
    srcs, dest = words[:-1], words[-1]
    from_ = expand.word(inst.flag("from"), env, b.escape) if inst.flags.get("from") else ""
    chmod = None
    if inst.flags.get("chmod"):
        try:
            chmod = int(inst.flag("chmod"), 8)
        except ValueError:
            raise inst.error(f"invalid chmod parameter {inst.flag('chmod')!r}") from None
        if not 0 <= chmod <= 0o7777:
            raise inst.error(f"invalid chmod parameter {inst.flag('chmod')!r}")
    chown = expand.word(inst.flag("chown"), env, b.escape) if inst.flags.get("chown") else ""
    wd = st.run.get("WorkingDir") or "/"
    dest_is_dir = dest.endswith("/") or dest in (".", "./") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join(wd, dest)
    dest = posixpath.normpath(dest)
    heredocs = {h.name: h for h in inst.heredocs}
    async with _source_root(b, st, from_) as root:
        items: list[tuple[str, list[Source] | bytes | str]] = []   # (source word, what it names)
        for s in srcs:
            if s.startswith("<<") and s.lstrip("<-").strip("'\"") in heredocs:
                hd = heredocs[s.lstrip("<-").strip("'\"")]
                content = expand.heredoc(hd.content, env, b.escape) if hd.expand else hd.content
                items.append((hd.name, content.encode()))
            elif add and s.startswith(("http://", "https://")):
                items.append((s, await _fetch(b, s)))
            elif from_:
                items.append((s, await asyncio.to_thread(resolve_sources, root, s)))
            else:
                items.append((s, await asyncio.to_thread(b.ctx.sources, s)))
        what, matched, archives = await asyncio.to_thread(_key, items, dest, add)
        if (len(srcs) > 1 or matched > 1) and not dest_is_dir:
            raise inst.error(f"When using {name} with more than one source file, the destination must be a "
                             "directory and end with a /")
        shell = list(st.run.get("Shell") or DEFAULT_SHELL)
        flags = "".join(f"--{k}={v} " for k in sorted(inst.flags) for v in inst.flags[k])
        text = f"{name} {flags}{what} in {dest} "
        cc_cmd = shell + [f"#(nop) {text}"]
        hit = b._probe(st, cc_cmd)   # the key needs no view of the image: a hit mounts nothing
        if hit is not None:
            await b._use(st, hit)
            return
        async with b._view(st) as image_root:
            owner = _owner(image_root, chown) if chown else None
            plan = await asyncio.to_thread(_plan, items, dest, dest_is_dir, image_root, owner, archives)
            # written while the sources (a stage's or an image's view) are still mounted
            await b._layer_step(st, plan, owner, chmod, cc_cmd, f"{' '.join(shell)} #(nop) {text}")


def _key(items: list[tuple[str, list[Source] | bytes | str]], dest: str, add: bool) -> tuple[str, int, set[int]]:
    """(Docker's `kind:checksum` of the sources, how many top-level sources, the ids of the
    sources ADD unpacks)."""
    h = hashlib.sha256()
    kinds: list[str] = []
    archives: set[int] = set()
    matched = 0
    for word, v in items:
        if isinstance(v, bytes):
            h.update(b"heredoc\0" + word.encode() + b"\0" + v)
            kinds.append("file")
            matched += 1
        elif isinstance(v, str):   # a downloaded URL
            h.update(f"url\0{word}\0".encode() + file_digest(v).encode())
            kinds.append("file")
            matched += 1
        else:
            h.update(f"src\0{word}\0{dest}\0".encode() + checksum(v).encode())
            named_dir = bool(v) and not v[0].rel
            if named_dir:
                kinds.append("dir")
                matched += 1
                continue
            for srcf in v:
                matched += 1
                if add and srcf.kind == "file" and is_archive(srcf):
                    archives.add(id(srcf))
                    kinds.append("archive")
                else:
                    kinds.append("file")
    kind = kinds[0] if len(kinds) == 1 else "multi"
    return f"{kind}:{h.hexdigest()}", matched, archives


def _plan(items: list[tuple[str, list[Source] | bytes | str]], dest: str, dest_is_dir: bool, image_root: str,
          owner: tuple[int, int] | None, archives: set[int]) -> Plan:
    """What the layer holds, given what the image already has at the destination."""
    exists_dir = os.path.isdir(image_root + dest) if dest != "/" else True
    into_dir = dest_is_dir or exists_dir or any(isinstance(v, list) and v and not v[0].rel for _, v in items)
    plan = Plan()
    for word, v in items:
        if isinstance(v, bytes):
            plan.data.append((posixpath.join(dest, word) if into_dir else dest, v, 0o644))
        elif isinstance(v, str):
            fn = posixpath.basename(word.split("?")[0].rstrip("/")) or "index.html"
            st_ = os.stat(v)
            plan.files.append((posixpath.join(dest, fn) if into_dir else dest,
                               Source(fn, "file", 0o600, st_.st_mtime, st_.st_size, path=v)))
        else:
            for srcf in v:
                if not srcf.rel:   # a directory named as a source: its contents go into dest
                    if not exists_dir:
                        plan.dirs.append((dest, srcf.mode, srcf.mtime, owner))
                    continue
                if id(srcf) in archives:
                    plan.archives.append((dest, srcf))   # unpacked into dest, a directory
                    continue
                target = posixpath.join(dest, srcf.rel) if into_dir or "/" in srcf.rel else dest
                plan.files.append((target, srcf))
    top = dest if into_dir or plan.archives else posixpath.dirname(dest)
    missing = parents_to_create(top, lambda d: os.path.isdir(image_root + d))
    have = {d for d, *_ in plan.dirs}
    plan.dirs = [(d, 0o755, 0, owner if d == dest else None) for d in missing if d not in have] + plan.dirs
    plan.dirs.sort(key=lambda x: x[0].count("/"))
    return plan


@contextlib.asynccontextmanager
async def _source_root(b: _Build, st: Stage, from_: str) -> AsyncIterator[str]:
    if not from_:
        yield str(b.ctx.root)
        return
    dep = b._stage_named(from_, st.plan.index)
    img = await b._wait_stage(dep) if dep is not None else await b._image(from_, "", False)
    async with b._view(None, img) as root:
        yield root


def _owner(image_root: str, spec: str) -> tuple[int, int]:
    """`--chown=user[:group]`: names looked up in the image, a missing group is the user's word."""
    from ..containers import users
    user, _, group = spec.partition(":")
    u = users.resolve(image_root, user)
    if not group:
        if user.isdigit():
            return u.uid, u.uid
        try:
            return u.uid, users.resolve(image_root, f"{user}:{user}").gid
        except InvalidArgument:
            return u.uid, u.gid
    return u.uid, users.resolve(image_root, f"{user}:{group}").gid


async def _fetch(b: _Build, url: str) -> str:
    """ADD's URL source, downloaded to a file of the build (mode 0600, mtime from Last-Modified)."""
    import aiohttp
    if os.environ.get("DOCKYARD_LOOPBACK_ONLY"):
        from urllib.parse import urlsplit
        host = urlsplit(url).hostname or ""
        if not (host.startswith("127.") or host in ("localhost", "::1")):
            from ..errors import PermissionDenied
            raise PermissionDenied(f"{url} is not on loopback (DOCKYARD_LOOPBACK_ONLY)")
    path = str(b.ctx.root.parent / f"{b.ctx.root.name}-url-{hashlib.sha256(url.encode()).hexdigest()[:16]}")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)) as s, \
                s.get(url) as r:
            if r.status != 200:
                raise InvalidArgument(f"ADD {url}: HTTP {r.status}")
            f = await asyncio.to_thread(open, path, "wb")
            try:
                async for chunk in r.content.iter_chunked(1 << 20):
                    await asyncio.to_thread(f.write, chunk)
            finally:
                f.close()
            lm = r.headers.get("Last-Modified")
    except aiohttp.ClientError as e:
        raise InvalidArgument(f"ADD {url}: {e}") from None
    os.chmod(path, 0o600)
    if lm:
        with contextlib.suppress(TypeError, ValueError):
            t = email.utils.parsedate_to_datetime(lm).timestamp()
            os.utime(path, (t, t))
    b.cleanup_paths.append(path)
    return path
