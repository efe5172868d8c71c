"""images, import, tag, rmi, history, image prune."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from ...client.api import APIError, Client, filters_param
from ...units import human_duration, human_size
from ..flags import Parser, need
from ..output import format_rows, table


def _split_tag(t: str) -> tuple[str, str]:
    i = t.rfind(":")
    if i > t.rfind("/"):
        return t[:i], t[i + 1:]
    return t, "<none>"


def images(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard images`."""
    p = Parser(prog, "[OPTIONS] [REPOSITORY[:TAG]]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--digests", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("repo", nargs="?")
    ns = p.parse_args(args)
    filt = list(ns.filter) + ([f"reference={ns.repo}"] if ns.repo else [])
    items = cli.json("GET", "/images/json", {"all": 1 if ns.all else None, "filters": filters_param(filt)})
    trunc = not ns.no_trunc
    rows: list[dict[str, Any]] = []
    for im in items:
        iid = im["Id"]
        short = iid[7:19] if trunc else iid
        digests = im.get("RepoDigests") or []
        tags = im.get("RepoTags") or []
        entries = [_split_tag(t) for t in tags] or [("<none>", "<none>")]
        for repo, tag in entries:
            digest = next((d.split("@", 1)[1] for d in digests if d.split("@", 1)[0] == repo), "<none>")
            created = im.get("Created", 0)
            rows.append({"ID": short, "Repository": repo, "Tag": tag, "Digest": digest,
                         "CreatedSince": human_duration(time.time() - created) + " ago",
                         "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
                         "Size": human_size(im.get("Size", 0)), "Containers": "N/A",
                         "VirtualSize": human_size(im.get("Size", 0)), "SharedSize": "N/A", "UniqueSize": "N/A"})
    if ns.quiet:
        seen = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
                print(r["ID"] if not trunc else r["ID"])
        return 0
    if ns.format:
        format_rows(ns.format, rows, {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
                                      "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                                      "Size": "SIZE"})
        return 0
    head = ["REPOSITORY", "TAG"] + (["DIGEST"] if ns.digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    out = [head]
    for r in rows:
        out.append([r["Repository"], r["Tag"]] + ([r["Digest"]] if ns.digests else []) +
                   [r["ID"], r["CreatedSince"], r["Size"]])
    table(out)
    return 0


def _read_source(src: str) -> Any:
    """The body for a file argument (`-` is stdin): the open file itself when it is a regular
    file (the client sends it with sendfile), else its chunks."""
    import os
    import stat
    f = sys.stdin.buffer if src == "-" else open(src, "rb")
    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        return f
    return _chunks(f)


def _chunks(f: Any) -> Iterator[bytes]:
    with f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return
            yield b


def import_(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard import file|URL|- [REPOSITORY[:TAG]]`."""
    p = Parser(prog, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]")
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-m", "--message", default="")
    p.add_argument("--platform")
    p.add_argument("src", nargs="?")
    p.add_argument("ref", nargs="?")
    ns = p.parse_args(args)
    need([ns.src] if ns.src else [], 1, prog, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]")
    repo, tag = "", ""
    if ns.ref:
        repo, tag = _split_tag(ns.ref)
        tag = "" if tag == "<none>" else tag
    q: dict[str, Any] = {"fromSrc": "-", "repo": repo or None, "tag": tag or None,
                         "message": ns.message or None, "changes": ns.change or None}
    if ns.src.startswith(("http://", "https://")):
        q["fromSrc"] = ns.src
        body = None
    else:
        try:
            open(ns.src, "rb").close() if ns.src != "-" else None
        except OSError as e:
            print(f"open {ns.src}: {(e.strerror or '').lower()}", file=sys.stderr)
            return 1
        body = _read_source(ns.src)
    resp = cli.call("POST", "/images/create", q, raw=body)
    import json
    for line in resp.lines():
        msg = json.loads(line)
        if "error" in msg:
            print(msg["error"], file=sys.stderr)
            return 1
        if "status" in msg:
            print(msg["status"])
    resp.close()
    return 0


def tag(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard tag SOURCE TARGET`."""
    need(args, 2, prog, "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", exact=True)
    repo, t = _split_tag(args[1])
    cli.json("POST", f"/images/{args[0]}/tag", {"repo": repo, "tag": None if t == "<none>" else t})
    return 0


def rmi(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard rmi [-f] [--no-prune] IMAGE...`."""
    p = Parser(prog, "[OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--no-prune", action="store_true")
    p.add_argument("images", nargs="*")
    ns = p.parse_args(args)
    need(ns.images, 1, prog, "[OPTIONS] IMAGE [IMAGE...]")
    q = {"force": 1 if ns.force else None, "noprune": 1 if ns.no_prune else None}

    def one(im: str) -> None:
        for item in cli.json("DELETE", f"/images/{im}", q):
            for k, v in item.items():
                print(f"{k}: {v}")
    from .containers import for_each
    return for_each(ns.images, one)


def history(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard history IMAGE`."""
    p = Parser(prog, "[OPTIONS] IMAGE")
    p.add_argument("-H", "--human", default="true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format")
    p.add_argument("image", nargs="*")
    ns = p.parse_args(args)
    need(ns.image, 1, prog, "[OPTIONS] IMAGE", exact=True)
    items = cli.json("GET", f"/images/{ns.image[0]}/history")
    human = ns.human.lower() not in ("false", "0")
    rows = []
    for h in items:
        hid = h["Id"]
        if hid != "<missing>" and not ns.no_trunc:
            hid = hid[7:19]
        by = h.get("CreatedBy", "")
        if not ns.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        created = h.get("Created", 0)
        rows.append({"ID": hid, "CreatedSince": human_duration(time.time() - created) + " ago" if human else
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                     "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                     "CreatedBy": by, "Size": human_size(h.get("Size", 0)) if human else str(h.get("Size", 0)),
                     "Comment": h.get("Comment", "")})
    if ns.quiet:
        for r in rows:
            print(r["ID"])
        return 0
    if ns.format:
        format_rows(ns.format, rows, {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedBy": "CREATED BY",
                                      "Size": "SIZE", "Comment": "COMMENT", "CreatedAt": "CREATED AT"})
        return 0
    out = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    out += [[r["ID"], r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]] for r in rows]
    table(out)
    return 0


def prune(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard image prune [-a] [-f] [--filter]`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    ns = p.parse_args(args)
    warn = ("WARNING! This will remove all images without at least one container associated to them."
            if ns.all else "WARNING! This will remove all dangling images.")
    if not ns.force:
        from .containers import _confirm
        if not _confirm(warn):
            return 0
    filt = list(ns.filter) + ([] if ns.all else ["dangling=true"])
    if ns.all:
        filt.append("dangling=false")
    rep = cli.json("POST", "/images/prune", {"filters": filters_param(filt)})
    print_deleted_images(rep.get("ImagesDeleted") or [])
    print(f"Total reclaimed space: {human_size(rep.get('SpaceReclaimed', 0))}")
    return 0


def print_deleted_images(deleted: list[dict[str, str]]) -> None:
    """The "Deleted Images:" block of `image prune` and `system prune`."""
    if deleted:
        print("Deleted Images:")
        for d in deleted:
            for k, v in d.items():
                print(f"{k.lower()}: {v}")
        print()


def save(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard save [-o FILE] IMAGE...`."""
    p = Parser(prog, "[OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("-o", "--output")
    p.add_argument("images", nargs="*")
    ns = p.parse_args(args)
    need(ns.images, 1, prog, "[OPTIONS] IMAGE [IMAGE...]")
    if not ns.output and sys.stdout.isatty():
        print("cowardly refusing to save to a terminal. Use the -o flag or redirect", file=sys.stderr)
        return 1
    resp = cli.call("GET", "/images/get", {"names": ns.images})
    import os
    tmp = f"{ns.output}.tmp{os.getpid()}" if ns.output else None
    from .filesystem import _copy_out
    out = open(tmp, "wb") if tmp else sys.stdout.buffer
    try:
        _copy_out(resp, out)
    finally:
        if tmp:
            out.close()
    if tmp:
        os.replace(tmp, ns.output)
    return 0


def load(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard load [-i FILE] [-q]`."""
    p = Parser(prog, "[OPTIONS]")
    p.add_argument("-i", "--input")
    p.add_argument("-q", "--quiet", action="store_true")
    ns = p.parse_args(args)
    if not ns.input and sys.stdin.isatty():
        print("requested load from stdin, but stdin is empty", file=sys.stderr)
        return 1
    quiet = ns.quiet or not sys.stdout.isatty()   # as docker: progress only on a terminal
    try:
        body = _read_source(ns.input or "-")
        resp = cli.call("POST", "/images/load", {"quiet": 1 if quiet else 0}, raw=body,
                        headers={"Content-Type": "application/x-tar"})
    except FileNotFoundError as e:
        print(f"open {ns.input}: {(e.strerror or '').lower()}", file=sys.stderr)
        return 1
    import json
    for line in resp.lines():
        msg = json.loads(line)
        if "error" in msg:
            print(msg["error"], file=sys.stderr)
            return 1
        detail = msg.get("progressDetail")
        if detail and msg.get("id"):
            done = detail.get("current", 0) >= detail.get("total", 0)
            sys.stdout.write(f"\r{msg['id']}: {msg.get('status', '')} {msg.get('progress', '')}" + ("\n" if done else ""))
            sys.stdout.flush()
            continue
        sys.stdout.write(msg.get("stream", ""))
    resp.close()
    return 0


def pull(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard pull [-a] [--platform P] [-q] NAME[:TAG|@DIGEST]`: dockerd's progress as the
    docker CLI shows it (bars on a terminal, plain lines otherwise)."""
    p = Parser(prog, "[OPTIONS] NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true")
    p.add_argument("--platform", default="")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--disable-content-trust", action="store_true")   # docker's default: true
    p.add_argument("name")
    ns = p.parse_args(args)
    from ...oci import reference
    ref = _ref_for(ns.name, ns.all_tags)
    if ref is None:
        return 1
    name = ns.name
    if not ns.all_tags and not ref.tag and not ref.digest:
        name = f"{ns.name}:latest"
        if not ns.quiet:
            print("Using default tag: latest")
    q: dict[str, Any] = {"fromImage": name}
    if ns.platform:
        q["platform"] = ns.platform

    from ...client import dockerconfig
    domain = reference.registry_of(ns.name) or "docker.io"
    try:
        header = dockerconfig.auth_header(domain)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    resp = cli.call("POST", "/images/create", q, headers={"X-Registry-Auth": header} if header else None)
    full = [""]

    def seen(msg: dict[str, Any]) -> None:
        if msg.get("status", "").startswith("Status: "):
            full[0] = msg["status"].rsplit(" ", 1)[-1]
    if not _progress_lines(resp, ns.quiet, seen):
        return 1
    print(full[0] or (ref.familiar_name if ns.all_tags else name))
    return 0


def push(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard push [-a] [-q] NAME[:TAG]`: progress as `docker push` shows it."""
    p = Parser(prog, "[OPTIONS] NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--disable-content-trust", action="store_true")   # docker's default: true
    p.add_argument("name")
    ns = p.parse_args(args)
    from ...client import dockerconfig
    from ...oci import reference
    ref = _ref_for(ns.name, ns.all_tags)
    if ref is None:
        return 1
    tag = ref.tag or ("" if ns.all_tags else "latest")
    if not ref.tag and not ns.all_tags and not ns.quiet:
        print("Using default tag: latest")
    try:
        header = dockerconfig.auth_header(reference.registry_of(ns.name) or "docker.io")
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    try:
        resp = cli.call("POST", f"/images/{ref.familiar_name}/push", {"tag": tag} if tag else None,
                        headers={"X-Registry-Auth": header or "e30="})
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    if not _progress_lines(resp, ns.quiet, lambda _: None):
        return 1
    if ns.quiet:
        print(f"{ref.familiar_name}:{tag}" if tag else ref.familiar_name)
    return 0


def _ref_for(name: str, all_tags: bool) -> Any:
    """The reference of a pull or push, or None after saying why not (`-a` with a tag)."""
    from ...errors import InvalidArgument
    from ...oci import reference
    try:
        ref = reference.parse(name)
    except InvalidArgument as e:
        print(e.message, file=sys.stderr)
        return None
    if all_tags and (ref.tag or ref.digest):
        print("Error: tag can't be used with --all-tags/-a", file=sys.stderr)
        return None
    return ref


def _progress_lines(resp: Any, quiet: bool, seen: Any) -> bool:
    """dockerd's JSON progress stream as the docker CLI shows it; False after an error."""
    from ..progress import show
    try:
        err = show(resp.lines(), quiet, seen)
    finally:
        resp.close()
    if err:
        print(err, file=sys.stderr)
        return False
    return True
