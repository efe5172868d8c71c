"""`compose run` (a one-off container of a service) and `compose exec` (a command in a running
one), both through the CLI's own run/exec paths so terminals, stdin and exit codes are docker's."""

from __future__ import annotations

import secrets
import sys
from typing import Any

from ..flags import Parser
from .loader import ComposeError
from .project import Compose, P


def run(c: Compose, prog: str, args: list[str]) -> int:
    p = Parser(prog, "[OPTIONS] SERVICE [COMMAND] [ARGS...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("--name", default="")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("-u", "--user", default=None)
    p.add_argument("-w", "--workdir", default=None)
    p.add_argument("--entrypoint", default=None)
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("--service-ports", action="store_true")
    p.add_argument("--use-aliases", action="store_true")
    p.add_argument("--no-deps", action="store_true")
    p.add_argument("-T", "--no-TTY", action="store_true", dest="no_tty")
    p.add_argument("-i", "--interactive", default="true")
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--build", action="store_true")
    p.add_argument("--pull", default="", choices=["", "always", "missing", "never"])
    p.add_argument("--remove-orphans", action="store_true")
    p.add_argument("service")
    p.add_argument("command", nargs="...")
    ns = p.parse_args(args)
    svc = ns.service
    if svc not in c.p.services:
        raise ComposeError(f"no such service: {svc}")
    from .lifecycle import converge
    deps = [] if ns.no_deps else [s for s in c.order([svc]) if s != svc]
    converge(c, deps)    # networks, volumes, and the dependencies up as `up` would
    c.ensure_image(svc, ns.build, ns.pull)
    if ns.remove_orphans:
        c.remove_orphans()
    body, extra = c.create_body(svc, 1)
    _one_off(c, body, extra, ns)
    name = ns.name or (f"{c.p.name}_{svc}_run_{secrets.token_hex(6)}" if c.sep == "_"
                       else f"{c.p.name}-{svc}-run-{secrets.token_hex(6)}")
    cid = c.create_container(name, body, extra)
    from ..commands.run import attach_run
    if ns.detach:
        c.cli.call("POST", f"/containers/{cid}/start").close()
        print(name)
        return 0
    return attach_run(c.cli, cid, tty=bool(body.get("Tty")), stdin=bool(body.get("OpenStdin")), keys=None,
                      sig_proxy=True, wait="removed" if ns.rm else "next-exit", start=True)


def _one_off(c: Compose, body: dict[str, Any], extra: dict[str, dict[str, Any]], ns: Any) -> None:
    """A service's create body made a one-off's as Docker Compose does: labelled oneoff, no
    restart policy, ports published only when asked, no service alias unless asked, the
    command, entrypoint, environment, labels, user, workdir and volumes of the flags."""
    hc = body.setdefault("HostConfig", {})
    labels = body["Labels"]
    labels[P + "oneoff"] = "True"
    labels.pop(P + "config-hash", None)
    for kv in ns.label:
        k, _, v = kv.partition("=")
        labels[k] = v
    hc.pop("RestartPolicy", None)
    if ns.rm:
        hc["AutoRemove"] = True
    if not ns.service_ports:
        hc.pop("PortBindings", None)
    if ns.publish:
        from ..commands.hostflags import publish_bindings
        bindings = publish_bindings(ns.publish)
        body["ExposedPorts"] = {**(body.get("ExposedPorts") or {}), **{k: {} for k in bindings}}
        hc["PortBindings"] = {**(hc.get("PortBindings") or {}), **bindings}
    if not ns.use_aliases:
        eps = [*(body.get("NetworkingConfig") or {}).get("EndpointsConfig", {}).values(), *extra.values()]
        for ep in eps:
            ep["Aliases"] = [a for a in ep.get("Aliases") or [] if a != ns.service] or None
            if ep["Aliases"] is None:
                del ep["Aliases"]
    if ns.command:
        body["Cmd"] = list(ns.command)
    if ns.entrypoint is not None:
        import shlex
        body["Entrypoint"] = shlex.split(ns.entrypoint)
        if not ns.command:
            body.pop("Cmd", None)
    env = list(body.get("Env") or [])
    for kv in ns.env:
        env = [e for e in env if e.split("=", 1)[0] != kv.split("=", 1)[0]] + [kv]
    body["Env"] = env
    if ns.user is not None:
        body["User"] = ns.user
    if ns.workdir is not None:
        body["WorkingDir"] = ns.workdir
    if ns.volume:
        hc["Binds"] = [*(hc.get("Binds") or []), *(_bind(c, v) for v in ns.volume)]
    interactive = ns.interactive.lower() not in ("false", "0")
    tty = not ns.no_tty and sys.stdin.isatty() and interactive
    body["Tty"] = tty
    body["OpenStdin"] = interactive and not ns.detach
    body["AttachStdin"] = body["OpenStdin"]
    body["StdinOnce"] = body["OpenStdin"]
    body["AttachStdout"] = body["AttachStderr"] = not ns.detach


def _bind(c: Compose, spec: str) -> str:
    """`-v SRC:DST[:MODE]`: a volume of the project by its name in the file, a relative path
    from the project directory, anything else as the docker CLI takes it."""
    src, sep, rest = spec.partition(":")
    if not sep:
        return spec
    if src in (c.p.config.get("volumes") or {}):
        src = c.volume_name(src)
    elif src.startswith((".", "~")):
        from .normal import host_path
        src = host_path(c.p.workdir, src)
    return f"{src}:{rest}"


def exec_(c: Compose, prog: str, args: list[str]) -> int:
    """`exec [OPTIONS] SERVICE CMD...`: the docker CLI's exec on the service's container."""
    p = Parser(prog, "[OPTIONS] SERVICE COMMAND [ARGS...]")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("-T", "--no-TTY", action="store_true", dest="no_tty")
    p.add_argument("--index", default="1")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", default="")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("service")
    p.add_argument("command", nargs="...")
    ns = p.parse_args(args)
    if not ns.command:
        raise ComposeError("exec requires a service and a command")
    ctr = c.replica(ns.service, ns.index)
    if ctr is None:
        raise ComposeError(f"service {ns.service!r} is not running")
    opts = ["-d"] if ns.detach else ["-i", *(["-t"] if not ns.no_tty and sys.stdin.isatty() else [])]
    opts += ["--privileged"] if ns.privileged else []
    for e in ns.env:
        opts += ["-e", e]
    opts += ["-u", ns.user] if ns.user else []
    opts += ["-w", ns.workdir] if ns.workdir else []
    from ..commands.exec import exec_ as docker_exec
    return docker_exec(c.cli, "exec", [*opts, ctr["Id"], *ns.command])
