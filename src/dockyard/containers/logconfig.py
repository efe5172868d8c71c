"""`HostConfig.LogConfig`: the `json-file`, `local` and `none` drivers, checked and filled as
dockerd's mergeAndVerifyLogConfig does, and the writer spec handed to the monitor.

The daemon's `log-opts` (daemon.json, `--log-opt`) fill the options a container leaves out when
it uses the daemon's driver; inspect reports exactly that, as dockerd does. Then, unlike Docker,
logs are **bounded by default**: a `json-file` log without `max-size` is written with
`max-size=10m` (and `max-file=3` unless `max-file` is given) — applied by the writer, not shown in
the container's LogConfig; the `local` driver has Docker's own defaults (20m × 5, compressed).
`max-size=-1` asks for an unbounded json-file log explicitly.
"""

from __future__ import annotations

import os.path
import re
from typing import Any

from ..errors import InvalidArgument
from ..units import ram_in_bytes

DRIVER = "json-file"
DRIVERS = ("json-file", "local", "none", "cri")
BOUNDED = {"max-size": "10m", "max-file": "3"}   # json-file's defaults here (Docker: unbounded)
LOCAL_DEFAULTS = {"max-size": "20m", "max-file": "5", "compress": "true"}
_KNOWN = {
    "json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"},
    "local": {"max-size", "max-file", "compress"},
    "none": set(),
    "cri": {"path"},   # Kubernetes' CRI log format at `path` (what the CRI's log_path asks for)
}
_TAG_FIELDS = ("ID", "FullID", "Name", "ImageID", "ImageFullID", "ImageName", "DaemonName")


# Docker's other drivers: known names, not built here
_DOCKERS = ("syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs", "logentries")


def check_driver(typ: str) -> str:
    if typ in _DOCKERS:
        raise InvalidArgument(f"logging driver {typ} is not supported (json-file, local and none are)")
    if typ not in DRIVERS:
        raise InvalidArgument(f"logger: no log driver named '{typ}' is registered")
    return typ


def effective(typ: str, opts: dict[str, str]) -> dict[str, str]:
    """The options a log is written with: json-file without max-size is bounded (Dockyard's default)."""
    if typ == "json-file" and "max-size" not in opts:
        return {**opts, "max-size": BOUNDED["max-size"], "max-file": opts.get("max-file", BOUNDED["max-file"])}
    return opts


def merge(log_config: Any, default_driver: str, daemon_opts: dict[str, str]) -> dict[str, Any]:
    """The container's LogConfig with the daemon's driver and options filled in; 400 for what we
    cannot do."""
    if log_config is None:
        log_config = {}
    if not isinstance(log_config, dict):
        raise InvalidArgument("LogConfig must be an object")
    typ = check_driver(log_config.get("Type") or default_driver or DRIVER)
    opts = dict(log_config.get("Config") or {})
    if typ == (default_driver or DRIVER):
        for k, v in daemon_opts.items():
            opts.setdefault(k, v)
    validate(typ, effective(typ, opts))
    return {"Type": typ, "Config": opts}


def _bool(opts: dict[str, str], key: str, default: bool) -> bool:
    v = str(opts.get(key, "")).lower()
    if v == "":
        return default
    if v in ("true", "1", "t"):
        return True
    if v in ("false", "0", "f"):
        return False
    raise InvalidArgument(f"error parsing log opt {key}={opts[key]}: not a boolean")


def validate(typ: str, opts: dict[str, str]) -> tuple[int, int, bool]:
    """(max size in bytes or -1, files kept, compress) — 400 for an option the driver lacks."""
    for k in opts:
        if k not in _KNOWN[typ]:
            raise InvalidArgument(f"unknown log opt '{k}' for {typ} log driver")
    if typ == "none":
        return -1, 1, False
    if typ == "cri":
        if not os.path.isabs(str(opts.get("path") or "")):
            raise InvalidArgument("log opt path: the cri log driver needs an absolute path")
        return -1, 1, False
    eff = {**LOCAL_DEFAULTS, **opts} if typ == "local" else opts
    size = -1
    if eff.get("max-size") not in (None, "", "-1"):
        try:
            size = ram_in_bytes(str(eff["max-size"]))
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        if size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    elif typ == "local":
        raise InvalidArgument("max-size must be a positive number for the local log driver")
    files = 1
    if eff.get("max-file") not in (None, ""):
        try:
            files = int(eff["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid max-file: {eff['max-file']!r}") from None
        if files < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    compress = _bool(eff, "compress", typ == "local")
    if compress and size < 0:
        raise InvalidArgument("compress cannot be true when max-size is not set")
    if compress and files < 2:
        raise InvalidArgument("compress cannot be true when max-file is less than 2")
    if "tag" in opts:
        tag(opts["tag"], {})
    for k in ("labels-regex", "env-regex"):
        if k in opts:
            try:
                re.compile(opts[k])
            except re.error as e:
                raise InvalidArgument(f"invalid log opt {k}: {e}") from None
    return size, files, compress


def tag(template: str, info: dict[str, str]) -> str:
    """A log tag template (`{{.Name}}`, `{{.ID}}`, …, dockerd's fields) filled in from `info`."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in _TAG_FIELDS:
            raise InvalidArgument(f"log opt tag: unsupported template field .{name} (have: "
                                  + ", ".join("." + f for f in _TAG_FIELDS) + ")")
        return info.get(name, "")
    out = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", sub, template)
    if "{{" in out:
        raise InvalidArgument(f"log opt tag: template {template!r} is not supported (only {{{{.Field}}}})")
    return out


def attrs(opts: dict[str, str], labels: dict[str, str], env: list[str], info: dict[str, str]) -> dict[str, str]:
    """The `attrs` each json-file record carries (dockerd's ExtraAttributes and tag)."""
    out: dict[str, str] = {}
    for k in (opts.get("labels") or "").split(","):
        if k and k in labels:
            out[k] = labels[k]
    if opts.get("labels-regex"):
        rx = re.compile(opts["labels-regex"])
        out.update({k: v for k, v in labels.items() if rx.match(k)})
    envs = dict(e.split("=", 1) for e in env if "=" in e)
    for k in (opts.get("env") or "").split(","):
        if k and k in envs:
            out[k] = envs[k]
    if opts.get("env-regex"):
        rx = re.compile(opts["env-regex"])
        out.update({k: v for k, v in envs.items() if rx.match(k)})
    if opts.get("tag"):
        out["tag"] = tag(opts["tag"], info)
    return out


def writer_spec(log_config: dict[str, Any], path: str, labels: dict[str, str], env: list[str],
                info: dict[str, str]) -> dict[str, Any]:
    """What the monitor needs to write a container's log (`driver` none: nothing written)."""
    typ = check_driver(log_config.get("Type") or DRIVER)
    opts = dict(log_config.get("Config") or {})
    size, files, compress = validate(typ, effective(typ, opts))
    if typ == "cri":
        path = opts["path"]
    return {"driver": typ, "path": path, "max_size": size, "max_files": files, "compress": compress,
            "attrs": attrs(opts, labels, env, info) if typ == "json-file" else {}}
