"""export, commit, diff, cp."""

from __future__ import annotations

import base64
import json
import os
import sys

from ...client.api import Client
from ..flags import Parser, need

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


def _copy_out(resp: Any, out: Any) -> None:
    try:
        while True:
            b = resp.read1(1 << 20)
            if not b:
                return
            out.write(b)
    finally:
        resp.close()


def export(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard export [-o FILE] CONTAINER`."""
    p = Parser(prog, "[OPTIONS] CONTAINER")
    p.add_argument("-o", "--output")
    p.add_argument("container", nargs="*")
    ns = p.parse_args(args)
    need(ns.container, 1, prog, "[OPTIONS] CONTAINER", exact=True)
    if not ns.output and sys.stdout.isatty():
        print("cowardly refusing to save to a terminal. Use the -o flag or redirect", file=sys.stderr)
        return 1
    resp = cli.call("GET", f"/containers/{ns.container[0]}/export")
    if ns.output:
        tmp = f"{ns.output}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            _copy_out(resp, f)
        os.replace(tmp, ns.output)
    else:
        _copy_out(resp, sys.stdout.buffer)
    return 0


def commit(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard commit [-a AUTHOR] [-m MSG] [-c CHANGE] [-p=false] CONTAINER [REPO[:TAG]]`."""
    p = Parser(prog, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    p.add_argument("-a", "--author", default="")
    p.add_argument("-m", "--message", default="")
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-p", "--pause", action="store_true", default=True)
    p.add_argument("args", nargs="*")
    ns = p.parse_args(args)
    need(ns.args, 1, prog, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    repo, tag = "", ""
    if len(ns.args) > 1:
        from .images import _split_tag
        repo, tag = _split_tag(ns.args[1])
        tag = "" if tag == "<none>" else tag
    rep = cli.json("POST", "/commit", {"container": ns.args[0], "repo": repo or None, "tag": tag or None,
                                       "author": ns.author or None, "comment": ns.message or None,
                                       "changes": ns.change or None, "pause": "1" if ns.pause else "0"})
    print(rep["Id"])
    return 0


def diff(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard diff CONTAINER`: A/C/D lines."""
    need(args, 1, prog, "CONTAINER", exact=True)
    for ch in cli.json("GET", f"/containers/{args[0]}/changes") or []:
        print(f"{'CAD'[ch['Kind']]} {ch['Path']}")
    return 0


def _split_container(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        c, _, path = arg.partition(":")
        return c, path
    return None, arg


def _stat(cli: Client, container: str, path: str) -> dict[str, Any] | None:
    from ...client.api import APIError
    try:
        resp = cli.call("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError as e:
        if e.status == 404:
            return None
        raise
    resp.close()
    h = resp.headers.get("x-docker-container-path-stat")
    return json.loads(base64.b64decode(h)) if h else None


def cp(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard cp [-a] [-L] CONTAINER:SRC DEST|-` and `dockyard cp [-a] [-L] SRC|- CONTAINER:DEST`."""
    p = Parser(prog, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH")
    p.add_argument("-a", "--archive", action="store_true")
    p.add_argument("-L", "--follow-link", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("paths", nargs="*")
    ns = p.parse_args(args)
    need(ns.paths, 2, prog, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-", exact=True)
    (sc, src), (dc, dst) = _split_container(ns.paths[0]), _split_container(ns.paths[1])
    if (sc is None) == (dc is None):
        print("must specify at least one container source" if sc is None else
              "copying between containers is not supported", file=sys.stderr)
        return 1
    if sc is not None:
        return _from_container(cli, sc, src, dst, ns.follow_link)
    return _to_container(cli, src, dc or "", dst, ns.archive, ns.follow_link)


def _from_container(cli: Client, c: str, src: str, dst: str, follow: bool) -> int:
    path = src if src.startswith("/") else "/" + src
    if follow:
        st = _stat(cli, c, path)
        if st and st.get("linkTarget"):
            t = st["linkTarget"]
            path = t if t.startswith("/") else os.path.join(os.path.dirname(path), t)
    resp = cli.call("GET", f"/containers/{c}/archive", {"path": path})
    if dst == "-":
        _copy_out(resp, sys.stdout.buffer)
        return 0
    from ...archive.tarapply import apply_tar
    st = json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat", "") or b"e30="))
    name = st.get("name") or os.path.basename(path.rstrip("/"))
    try:
        if os.path.isdir(dst):
            if path.endswith("/."):
                apply_tar(resp, dst, whiteouts="keep", rename=(name, "."))  # type: ignore[arg-type]
            else:
                apply_tar(resp, dst, whiteouts="keep")  # type: ignore[arg-type]
        else:
            parent = os.path.dirname(os.path.abspath(dst))
            if not os.path.isdir(parent):
                print(f"no such directory: {parent}", file=sys.stderr)
                return 1
            apply_tar(resp, parent, whiteouts="keep", rename=(name, os.path.basename(dst)))  # type: ignore[arg-type]
    finally:
        resp.close()
    return 0


def _to_container(cli: Client, src: str, c: str, dst: str, keep_ids: bool, follow: bool) -> int:
    q = {"copyUIDGID": "1" if keep_ids else None}
    if src == "-":
        cli.call("PUT", f"/containers/{c}/archive", {"path": dst, **q}, raw=_stdin_chunks()).close()
        return 0
    if not os.path.lexists(src):
        print(f'stat {src}: no such file or directory', file=sys.stderr)
        return 1
    st = _stat(cli, c, dst)
    if st is not None and st["mode"] & (1 << 31):
        target_dir, name = dst, os.path.basename(os.path.normpath(src))
    else:
        target_dir, name = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst.rstrip("/"))
        if dst.endswith("/") and st is None:
            print(f"Error: no such directory {dst} in container", file=sys.stderr)
            return 1
    cli.call("PUT", f"/containers/{c}/archive", {"path": target_dir, **q}, raw=_tar_chunks(src, name, follow)).close()
    return 0


def _stdin_chunks() -> Iterator[bytes]:
    while True:
        b = sys.stdin.buffer.read(1 << 20)
        if not b:
            return
        yield b


def _tar_chunks(src: str, name: str, follow: bool) -> Iterator[bytes]:
    import threading

    from ...archive.tarwrite import write_path
    r, w = os.pipe()

    def produce() -> None:
        with os.fdopen(w, "wb") as out:
            write_path(src, name, out, follow=follow)

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    with os.fdopen(r, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            yield b
    t.join()
