"""`dockyard build`: the context (a directory filtered by .dockerignore, a tar on stdin, a URL)
streamed as a tar to `POST /build`; the JSON message stream shown as the docker CLI shows it,
with each step's time on a terminal."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from typing import Any

from ...client.api import APIError, Client
from ..flags import Parser


def build(cli: Client, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] PATH | URL | -")
    p.add_argument("-t", "--tag", action="append", default=[])
    p.add_argument("-f", "--file", default="")
    p.add_argument("--build-arg", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--target", default="")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--pull", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--rm", default="true")
    p.add_argument("--force-rm", action="store_true")
    p.add_argument("--network", default="")
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--cache-from", action="append", default=[])
    p.add_argument("--squash", action="store_true")
    p.add_argument("--iidfile", default="")
    p.add_argument("--platform", default="")
    p.add_argument("-m", "--memory", default="")
    p.add_argument("--memory-swap", default="")
    p.add_argument("-c", "--cpu-shares", default="")
    p.add_argument("--cpuset-cpus", default="")
    p.add_argument("--cpuset-mems", default="")
    p.add_argument("--cpu-period", default="")
    p.add_argument("--cpu-quota", default="")
    p.add_argument("--shm-size", default="")
    p.add_argument("--cgroup-parent", default="")
    p.add_argument("--ulimit", action="append", default=[])
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty"])
    p.add_argument("context", nargs="?")
    ns = p.parse_args(args)
    if not ns.context:
        print(f'"dockyard build" requires exactly 1 argument.\nSee \'dockyard build --help\'.\n\n{p.usage}',
              file=sys.stderr)
        return 1
    q: dict[str, Any] = {"t": ns.tag or None, "q": 1 if ns.quiet else None, "nocache": 1 if ns.no_cache else None,
                         "pull": 1 if ns.pull else None, "rm": "0" if ns.rm == "false" else "1",
                         "forcerm": 1 if ns.force_rm else None, "target": ns.target or None,
                         "networkmode": ns.network or None, "squash": 1 if ns.squash else None,
                         "platform": ns.platform or None}
    bargs: dict[str, str | None] = {}
    for a in ns.build_arg:
        k, eq, v = a.partition("=")
        bargs[k] = v if eq else os.environ.get(k)
    if bargs:
        q["buildargs"] = json.dumps(bargs)
    if ns.label:
        q["labels"] = json.dumps({k: v for k, _, v in (lb.partition("=") for lb in ns.label)})
    if ns.add_host:
        q["extrahosts"] = ns.add_host
    if ns.cache_from:
        q["cachefrom"] = json.dumps(ns.cache_from)
    from ...units import ram_in_bytes
    for flag, key in (("memory", "memory"), ("memory_swap", "memswap"), ("shm_size", "shmsize")):
        v = getattr(ns, flag)
        if v:
            q[key] = -1 if v == "-1" else ram_in_bytes(v)
    for flag, key in (("cpu_shares", "cpushares"), ("cpuset_cpus", "cpusetcpus"), ("cpuset_mems", "cpusetmems"),
                      ("cpu_period", "cpuperiod"), ("cpu_quota", "cpuquota"), ("cgroup_parent", "cgroupparent")):
        if getattr(ns, flag):
            q[key] = getattr(ns, flag)
    if ns.ulimit:
        uls = []
        for u in ns.ulimit:
            name, _, lim = u.partition("=")
            soft, _, hard = lim.partition(":")
            uls.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
        q["ulimits"] = json.dumps(uls)
    body: Iterator[bytes] | None = None
    src = ns.context
    try:
        if src.startswith(("http://", "https://", "git://", "git@")):
            q["remote"] = src
            if ns.file:
                q["dockerfile"] = ns.file
        elif src == "-":
            if ns.file == "-":
                print("invalid argument: can't use stdin for both build context and dockerfile", file=sys.stderr)
                return 1
            data = sys.stdin.buffer.read()
            body = iter([data if _is_archive(data) else _tar_of({"Dockerfile": data})])
        else:
            if not os.path.isdir(src):
                print(f"unable to prepare context: path {src!r} not found", file=sys.stderr)
                return 1
            dockerfile, extra = _dockerfile(src, ns.file)
            q["dockerfile"] = dockerfile
            if extra is None and _syncs(cli):
                return _build_synced(cli, q, src, dockerfile, ns)
            body = _context_tar(src, dockerfile, extra)
    except OSError as e:
        print(f"unable to prepare context: {e}", file=sys.stderr)
        return 1
    headers = {"Content-Type": "application/x-tar"} if body is not None else None
    try:
        resp = cli.call("POST", "/build", {k: v for k, v in q.items() if v is not None}, raw=body, headers=headers)
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    return _show(resp, ns.quiet, ns.iidfile, ns.progress)


def _syncs(cli: Client) -> bool:
    """Whether the daemon keeps contexts for Dockyard's context sync."""
    if os.environ.get("DOCKYARD_CONTEXT_SYNC", "1") == "0":
        return False
    try:
        r = cli.call("HEAD", "/_ping")
        r.close()
    except (APIError, OSError):
        return False
    return r.headers.get("dockyard-context-sync") == "1"


def _build_synced(cli: Client, q: dict[str, Any], src: str, dockerfile: str, ns: Any) -> int:
    """A build that sends only what changed since this context's last build (contextsync.py)."""
    from ..contextsync import Sync
    s = Sync(cli.sock, src)
    names = _context_entries(src, dockerfile)
    headers = {"Content-Type": "application/x-tar"}
    for full in (False, True):
        entries, send = s.plan(names, full=full)
        q2 = {**q, "dyctx": s.key, "dyctxbase": s.base if not full and s.base else None}
        try:
            resp = cli.call("POST", "/build", {k: v for k, v in q2.items() if v is not None},
                            raw=s.body(entries, send, lambda ns_: _tar_names(src, ns_)), headers=headers)
        except APIError as e:
            if e.status == 412 and not full:   # the daemon no longer holds the base: all of it
                continue
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
        break
    return _show(resp, ns.quiet, ns.iidfile, ns.progress, on_context=s.save)


def _dockerfile(ctx: str, name: str) -> tuple[str, bytes | None]:
    """(the name the daemon reads, the bytes to add to the context when it is not inside it)."""
    if name == "-":
        return f".dockerfile.{os.urandom(10).hex()}", sys.stdin.buffer.read()
    if not name:
        return "Dockerfile", None
    path = os.path.abspath(name if os.path.isabs(name) or os.path.exists(name) else os.path.join(ctx, name))
    root = os.path.abspath(ctx)
    if path.startswith(root + os.sep):
        return os.path.relpath(path, root).replace(os.sep, "/"), None
    with open(path, "rb") as f:
        return f".dockerfile.{os.urandom(10).hex()}", f.read()


def _context_names(ctx: str, dockerfile: str) -> list[str]:
    """What goes into the context: paths relative to it, directories before what they hold,
    with .dockerignore applied (the Dockerfile and .dockerignore always go)."""
    return [n for n, _ in _context_entries(ctx, dockerfile)]


def _context_entries(ctx: str, dockerfile: str) -> list[tuple[str, os.stat_result]]:
    """As _context_names, with each entry's lstat (one scandir walk)."""
    from ...archive import dockerignore as ignore
    m = None
    ign = os.path.join(ctx, ".dockerignore")
    if os.path.isfile(ign):
        with open(ign, "rb") as f:
            m = ignore.Matcher(ignore.read(f.read()))
    out: list[tuple[str, os.stat_result]] = []

    def walk(path: str, rel_dir: str) -> None:
        with os.scandir(path) as it:
            ents = sorted(it, key=lambda e: e.name)
        for e in ents:
            rel = rel_dir + e.name
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                excluded = bool(m and m.excluded(rel))
                if excluded and not (m and m.may_include_under(rel)):
                    continue
                if not excluded:
                    out.append((rel, st))
                walk(e.path, rel + "/")
            else:
                if m and m.excluded(rel) and rel not in (dockerfile, ".dockerignore"):
                    continue
                out.append((rel, st))
    walk(ctx, "")
    return out


def _context_tar(ctx: str, dockerfile: str, extra: bytes | None) -> Iterator[bytes]:
    """The context as a tar, produced while it is sent: by GNU tar when there is one (several
    times faster than Python's tarfile on thousands of files), else by tarfile."""
    return _tar_names(ctx, _context_names(ctx, dockerfile), dockerfile, extra)


def _tar_names(ctx: str, names: list[str], dockerfile: str = "", extra: bytes | None = None) -> Iterator[bytes]:
    import shutil
    tar = shutil.which("tar")
    if tar and extra is None:
        return _gnu_tar(tar, ctx, names)
    r, w = os.pipe()
    err: list[BaseException] = []

    def produce() -> None:
        try:
            with open(w, "wb", buffering=1 << 20) as out, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                for rel in names:
                    _add(tf, os.path.join(ctx, rel), rel)
                if extra is not None:
                    ti = tarfile.TarInfo(dockerfile)
                    ti.size, ti.mode, ti.mtime = len(extra), 0o644, int(time.time())
                    tf.addfile(ti, io.BytesIO(extra))
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: BLE001 - re-raised by the reader
            err.append(e)

    t = threading.Thread(target=produce, daemon=True)
    t.start()

    def chunks() -> Iterator[bytes]:
        with open(r, "rb") as f:
            while b := f.read(1 << 20):
                yield b
        t.join()
        if err:
            raise err[0]
    return chunks()


def _gnu_tar(tar: str, ctx: str, names: list[str]) -> Iterator[bytes]:
    import subprocess
    p = subprocess.Popen([tar, "-c", "-f", "-", "-b", "2048", "-C", ctx, "--null", "--no-recursion", "--numeric-owner",
                          "--owner=0", "--group=0", "-T", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdin is not None and p.stdout is not None

    def feed() -> None:
        try:
            assert p.stdin is not None
            p.stdin.write(b"".join(os.fsencode(n) + b"\0" for n in names))
            p.stdin.close()
        except BrokenPipeError:
            pass
    threading.Thread(target=feed, daemon=True).start()

    import fcntl
    import queue
    try:   # a 1 MiB pipe: fewer, larger reads
        fcntl.fcntl(p.stdout.fileno(), 1031, 1 << 20)   # F_SETPIPE_SZ
    except OSError:
        pass
    q: queue.Queue[bytes] = queue.Queue(64)   # tar runs ahead of the socket (up to 64 MiB)

    def pull() -> None:
        assert p.stdout is not None
        while b := p.stdout.read1(1 << 20):  # type: ignore[attr-defined]
            q.put(b)
        q.put(b"")
    threading.Thread(target=pull, daemon=True).start()

    def chunks() -> Iterator[bytes]:
        while b := q.get():
            parts = [b]
            n = len(b)
            while n < 1 << 20 and not q.empty():   # what tar has ready, in one send
                more = q.get()
                if not more:
                    q.put(b"")
                    break
                parts.append(more)
                n += len(more)
            yield b"".join(parts) if len(parts) > 1 else b
        if p.wait() != 0:
            raise OSError(f"tar: {p.stderr.read().decode(errors='replace').strip() if p.stderr else ''}")
    return chunks()


def _add(tf: tarfile.TarFile, path: str, rel: str) -> None:
    ti = tf.gettarinfo(path, rel)
    ti.uid = ti.gid = 0            # as the docker CLI: owners are not sent
    ti.uname = ti.gname = ""
    if ti.isreg():
        with open(path, "rb") as f:
            tf.addfile(ti, f)
    elif ti.isdir() or ti.issym():
        tf.addfile(ti)


def _is_archive(data: bytes) -> bool:
    from ...archive.tarread import looks_like_archive
    return looks_like_archive(data[:512])


def _tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _show(resp: Any, quiet: bool, iidfile: str, progress: str, on_context: Any = None) -> int:
    tty = sys.stdout.isatty() if progress == "auto" else progress == "tty"
    out = sys.stdout
    image_id = ""
    step_t = 0.0
    code = 0
    try:
        for line in resp.lines():
            if not line.strip():
                continue
            msg = json.loads(line)
            if "aux" in msg:
                aux = msg["aux"] or {}
                sync = aux.get("DockyardContext")
                if isinstance(sync, dict) and on_context is not None:
                    on_context(str(sync.get("ID") or ""))
                    if not quiet:
                        out.write(f"Context sync: {sync.get('Sent')} of {sync.get('Files')} files sent\n")
                image_id = aux.get("ID", "") or image_id
                continue
            if "error" in msg or "errorDetail" in msg:
                detail = msg.get("errorDetail") or {}
                print(detail.get("message") or msg.get("error"), file=sys.stderr)
                code = int(detail.get("code") or 1)
                break
            text = msg.get("stream")
            if text is None or quiet:
                continue
            if tty and text.startswith("Step "):
                now = time.monotonic()
                if step_t:
                    out.write(f"\x1b[2m   ({now - step_t:.1f}s)\x1b[0m\n")
                step_t = now
                out.write(f"\x1b[1;34m{text.rstrip()}\x1b[0m\n")
            elif tty and text.startswith(" ---> "):
                out.write(f"\x1b[2m{text}\x1b[0m")
            else:
                out.write(text)
            out.flush()
    finally:
        resp.close()
    if code:
        return code
    if tty and step_t:
        out.write(f"\x1b[2m   ({time.monotonic() - step_t:.1f}s)\x1b[0m\n")
    if quiet and image_id:
        print(image_id)
    if iidfile and image_id:
        with open(iidfile, "w") as f:
            f.write(image_id)
    return 0
