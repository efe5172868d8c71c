"""create, run, start."""

from __future__ import annotations

import _signal
import os
import sys

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from typing import Any

from ...client.api import APIError, Client
from ..flags import Parser, need
from . import hostflags
from .procopts import _env, _keys


def _create_parser(prog: str) -> Parser:
    p = Parser(prog, "[OPTIONS] IMAGE [COMMAND] [ARG...]", add_help=False)
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("--name")
    p.add_argument("--pull", choices=["missing", "always", "never"], default="missing")
    p.add_argument("-q", "--quiet", action="store_true")   # no pull progress
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("-h", "--hostname")
    p.add_argument("--domainname")
    p.add_argument("--entrypoint")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument("--network", "--net", dest="network")
    p.add_argument("--network-alias", "--net-alias", dest="network_alias", action="append", default=[])
    p.add_argument("--ip")
    p.add_argument("--ip6")
    p.add_argument("--mac-address")
    p.add_argument("--volume-driver")
    p.add_argument("--runtime")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--restart")
    p.add_argument("--log-driver")
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--sig-proxy", default="true")
    p.add_argument("--detach-keys")
    for flag in ("--health-cmd", "--health-interval", "--health-timeout", "--health-start-period",
                 "--health-start-interval", "--health-retries", "--health-on-failure"):
        p.add_argument(flag)
    p.add_argument("--no-healthcheck", action="store_true")
    hostflags.add_create_flags(p)
    p.add_argument("--help", action="help")
    p.add_argument("image")
    p.add_argument("command", nargs="...")
    return p


def _body(ns: Any) -> dict[str, Any]:
    labels = {}
    for lab in ns.label:
        k, _, v = lab.partition("=")
        labels[k] = v
    body: dict[str, Any] = {
        "Image": ns.image, "Cmd": ns.command or None, "Env": _env(ns.env, ns.env_file),
        "Labels": labels, "AttachStdout": not ns.detach, "AttachStderr": not ns.detach,
        "Tty": ns.tty, "OpenStdin": ns.interactive,
        # as the docker CLI: an attached stdin is closed when the client's input ends
        "AttachStdin": ns.interactive and not ns.detach, "StdinOnce": ns.interactive and not ns.detach,
        "HostConfig": {"AutoRemove": ns.rm, "ReadonlyRootfs": ns.read_only, **hostflags.host_config(ns)},
    }
    exposed = hostflags.exposed_ports(ns)
    if exposed:
        body["ExposedPorts"] = exposed
    if ns.entrypoint is not None:
        body["Entrypoint"] = [ns.entrypoint] if ns.entrypoint else [""]
    for key, attr in (("WorkingDir", "workdir"), ("User", "user"), ("Hostname", "hostname"),
                      ("Domainname", "domainname"), ("StopSignal", "stop_signal"), ("StopTimeout", "stop_timeout")):
        if getattr(ns, attr) is not None:
            body[key] = getattr(ns, attr)
    if ns.network:
        body["HostConfig"]["NetworkMode"] = ns.network
    if ns.mac_address:
        body["MacAddress"] = ns.mac_address
    binds = body["HostConfig"].get("Binds") or []
    if any(":" not in b for b in binds):   # `-v /path`: an anonymous volume, as the docker CLI sends it
        body["Volumes"] = {b: {} for b in binds if ":" not in b}
        body["HostConfig"]["Binds"] = [b for b in binds if ":" in b] or None
    if ns.volume_driver:
        body["HostConfig"]["VolumeDriver"] = ns.volume_driver
    if ns.network_alias or ns.ip or ns.ip6:   # as the docker CLI: the settings of the endpoint on --network
        ep: dict[str, Any] = {"Aliases": ns.network_alias or None}
        if ns.ip or ns.ip6:
            ep["IPAMConfig"] = {k: v for k, v in (("IPv4Address", ns.ip), ("IPv6Address", ns.ip6)) if v}
        body["NetworkingConfig"] = {"EndpointsConfig": {ns.network or "default": ep}}
    if ns.runtime:
        body["HostConfig"]["Runtime"] = ns.runtime
    if ns.log_driver or ns.log_opt:
        opts = {}
        for item in ns.log_opt:
            k, eq, v = item.partition("=")
            if not eq:
                print(f"invalid argument \"{item}\" for \"--log-opt\" flag: invalid key value pair format in log-opt",
                      file=sys.stderr)
                sys.exit(125)
            opts[k] = v
        body["HostConfig"]["LogConfig"] = {"Type": ns.log_driver or "", "Config": opts}
    if ns.restart:
        body["HostConfig"]["RestartPolicy"] = _restart_policy(ns.restart)
    hc = _healthcheck(ns)
    if hc is not None:
        body["Healthcheck"] = hc
    if ns.health_on_failure:   # Dockyard's: a label, so that any client can ask for it too
        labels["dockyard.health-on-failure"] = ns.health_on_failure
    return body


def _healthcheck(ns: Any) -> dict[str, Any] | None:
    """The docker CLI's --health-* flags as Config.Healthcheck."""
    from ...units import go_duration
    durations = {"Interval": ns.health_interval, "Timeout": ns.health_timeout, "StartPeriod": ns.health_start_period,
                 "StartInterval": ns.health_start_interval}
    given = ns.health_cmd is not None or ns.health_retries is not None or any(v is not None for v in durations.values())
    if ns.no_healthcheck:
        if given:
            print("--no-healthcheck conflicts with --health-* options", file=sys.stderr)
            sys.exit(125)
        return {"Test": ["NONE"]}
    if not given:
        return None
    hc: dict[str, Any] = {"Test": ["CMD-SHELL", ns.health_cmd] if ns.health_cmd else None}
    for key, v in durations.items():
        if v is not None:
            flag = "--health-" + {"StartPeriod": "start-period", "StartInterval": "start-interval"}.get(key, key.lower())
            try:
                hc[key] = go_duration(v)
            except ValueError as e:
                print(f'invalid argument "{v}" for "{flag}" flag: {e}', file=sys.stderr)
                sys.exit(125)
            if hc[key] < 0:
                print(f"{flag} cannot be negative", file=sys.stderr)
                sys.exit(125)
    if ns.health_retries is not None:
        try:
            hc["Retries"] = int(ns.health_retries)
        except ValueError:
            print(f'invalid argument "{ns.health_retries}" for "--health-retries" flag', file=sys.stderr)
            sys.exit(125)
    return {k: v for k, v in hc.items() if v is not None}


def _restart_policy(v: str) -> dict[str, Any]:
    name, _, n = v.partition(":")
    if n and not n.isdigit():
        print(f"invalid argument \"{v}\" for \"--restart\" flag: maximum retry count must be an integer",
              file=sys.stderr)
        sys.exit(125)
    return {"Name": name, "MaximumRetryCount": int(n or 0)}


def _do_create(cli: Client, ns: Any) -> str:
    q = {"name": ns.name} if ns.name else {}
    if ns.platform:
        q["platform"] = ns.platform
    if ns.pull == "always":
        _pull(cli, ns)
    try:
        rep = cli.json("POST", "/containers/create", q, _body(ns))
    except APIError as e:
        if e.status != 404 or "No such image" not in e.message or ns.pull != "missing":
            raise
        print(f"Unable to find image '{_with_tag(ns.image)}' locally", file=sys.stderr)
        _pull(cli, ns)
        rep = cli.json("POST", "/containers/create", q, _body(ns))
    for w in rep.get("Warnings") or []:
        print(f"WARNING: {w}", file=sys.stderr)
    return rep["Id"]


def _pull(cli: Client, ns: Any) -> None:
    """Pull the image as `docker run` does: progress on stderr; a failure is the daemon's error."""
    from ...client import dockerconfig
    from ...oci import reference
    ref = _with_tag(ns.image)
    try:
        header = dockerconfig.auth_header(reference.registry_of(ref) or "docker.io")
    except ValueError as e:
        raise APIError(400, str(e)) from None
    q = {"fromImage": ref, **({"platform": ns.platform} if ns.platform else {})}
    resp = cli.call("POST", "/images/create", q, headers={"X-Registry-Auth": header} if header else None)
    from ..progress import show
    try:
        err = show(resp.lines(), ns.quiet, out=sys.stderr)
    finally:
        resp.close()
    if err:
        raise APIError(500, err)


def _with_tag(ref: str) -> str:
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in ref) else ref + ":latest"


def create(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard create`."""
    ns = _create_parser(prog).parse_args(args)
    try:
        print(_do_create(cli, ns))
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 125
    return 0


def _start_error_code(msg: str) -> int:
    if "executable file not found" in msg or "no such file or directory" in msg:
        return 127
    if "permission denied" in msg:
        return 126
    return 125


def _proxy_signals(cli: Client, cid: str) -> None:
    def fwd(signum: int, _frame: Any) -> None:
        try:
            cli.json("POST", f"/containers/{cid}/kill", {"signal": str(signum)})
        except APIError:
            pass
    for s in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2):
        _signal.signal(s, fwd)


def attach_run(cli: Client, cid: str, *, tty: bool, stdin: bool, keys: str | None, sig_proxy: bool,
               wait: str, start: bool) -> int:
    """Attach, (start,) stream until the container exits or the client detaches; the exit code
    is the container's (0 after a detach, as the docker CLI)."""
    from ..attach import DETACHED, stream
    keyb = _keys(keys)
    if stdin and tty and not os.isatty(sys.stdin.fileno()):
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    q = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": 1 if stdin else None, "detachKeys": keys or None}
    att = cli.call("POST", f"/containers/{cid}/attach", q, upgrade=True)
    waiter = cli.call("POST", f"/containers/{cid}/wait", {"condition": wait})
    if start:
        try:
            cli.json("POST", f"/containers/{cid}/start")
        except APIError as e:
            att.close()
            print(f"dockyard: Error response from daemon: {e.message}.", file=sys.stderr)
            if wait == "removed":
                waiter.read()
            waiter.close()
            return _start_error_code(e.message)
    if sig_proxy and not tty:
        _proxy_signals(cli, cid)

    def resize(h: int, w: int) -> None:
        cli.call("POST", f"/containers/{cid}/resize", {"h": h, "w": w}).close()
    try:
        how = stream(att, tty=tty, stdin=stdin, keys=keyb, resize=resize)
    finally:
        att.close()
    if how == DETACHED:
        waiter.close()
        return 0
    st = waiter.json()
    waiter.close()
    if st.get("Error"):
        print(f"dockyard: {st['Error'].get('Message', '')}", file=sys.stderr)
    return int(st.get("StatusCode", 0))


def run(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard run`: create, attach, start, stream, exit with the container's code."""
    ns = _create_parser(prog).parse_args(args)
    keys = ns.detach_keys
    if keys is not None:
        _keys(keys)
    try:
        cid = _do_create(cli, ns)
    except APIError as e:
        print(f"dockyard: Error response from daemon: {e.message}.", file=sys.stderr)
        return 125
    if ns.detach:
        try:
            cli.json("POST", f"/containers/{cid}/start")
        except APIError as e:
            print(f"dockyard: Error response from daemon: {e.message}.", file=sys.stderr)
            return _start_error_code(e.message)
        print(cid)
        return 0
    return attach_run(cli, cid, tty=ns.tty, stdin=ns.interactive, keys=keys,
                      sig_proxy=ns.sig_proxy.lower() not in ("false", "0"),
                      wait="removed" if ns.rm else "next-exit", start=True)


def update(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard update [OPTIONS] CONTAINER...`."""
    p = Parser(prog, "[OPTIONS] CONTAINER [CONTAINER...]")
    hostflags.add_resource_flags(p)
    p.add_argument("--restart")
    p.add_argument("containers", nargs="*")
    ns = p.parse_args(args)
    need(ns.containers, 1, prog, "update [OPTIONS] CONTAINER [CONTAINER...]")
    body = hostflags.resources(ns)
    if ns.restart:
        body["RestartPolicy"] = _restart_policy(ns.restart)
    if not body:
        print("you must provide one or more flags when using this command", file=sys.stderr)
        return 1
    code = 0
    for c in ns.containers:
        try:
            rep = cli.json("POST", f"/containers/{c}/update", None, body)
            for w in rep.get("Warnings") or []:
                print(f"WARNING: {w}", file=sys.stderr)
            print(c)
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return code


def start(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard start [-a] [-i] [--detach-keys K] CONTAINER...`."""
    p = Parser(prog, "[OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("containers", nargs="*")
    ns = p.parse_args(args)
    need(ns.containers, 1, prog, "start [OPTIONS] CONTAINER [CONTAINER...]")
    if ns.attach or ns.interactive:
        if len(ns.containers) > 1:
            print("you cannot start and attach multiple containers at once", file=sys.stderr)
            return 1
        c = ns.containers[0]
        try:
            cfg = cli.json("GET", f"/containers/{c}/json")["Config"]
        except APIError as e:
            print(f"Error: {e.message}" if e.status == 404 else f"Error response from daemon: {e.message}",
                  file=sys.stderr)
            return 1
        return attach_run(cli, c, tty=bool(cfg.get("Tty")), stdin=ns.interactive and bool(cfg.get("OpenStdin")),
                          keys=ns.detach_keys, sig_proxy=True, wait="next-exit", start=True)
    code = 0
    for c in ns.containers:
        try:
            cli.json("POST", f"/containers/{c}/start")
            print(c)
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    if code:
        print("Error: failed to start containers: " + ", ".join(ns.containers), file=sys.stderr)
    return code


def attach(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard attach [--no-stdin] [--sig-proxy] [--detach-keys K] CONTAINER`."""
    p = Parser(prog, "[OPTIONS] CONTAINER")
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--sig-proxy", default="true")
    p.add_argument("--detach-keys")
    p.add_argument("container", nargs="?")
    ns = p.parse_args(args)
    need([ns.container] if ns.container else [], 1, prog, "attach [OPTIONS] CONTAINER")
    try:
        info = cli.json("GET", f"/containers/{ns.container}/json")
    except APIError as e:
        print(f"Error: {e.message}" if e.status == 404 else f"Error response from daemon: {e.message}",
              file=sys.stderr)
        return 1
    st, cfg = info["State"], info["Config"]
    if not st.get("Running"):
        print("You cannot attach to a stopped container, start it first", file=sys.stderr)
        return 1
    if st.get("Paused"):
        print("You cannot attach to a paused container, unpause it first", file=sys.stderr)
        return 1
    return attach_run(cli, info["Id"], tty=bool(cfg.get("Tty")),
                      stdin=not ns.no_stdin and bool(cfg.get("OpenStdin")), keys=ns.detach_keys,
                      sig_proxy=ns.sig_proxy.lower() not in ("false", "0"), wait="next-exit", start=False)
