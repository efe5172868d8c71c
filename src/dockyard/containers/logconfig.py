"""`HostConfig.LogConfig` for the json-file driver, as dockerd checks and fills it.

The daemon's `log-opts` (daemon.json) or `--log-opt` fill the options a container does not set
(dockerd's mergeAndVerifyLogConfig). `max-size` (`10m`, `512k`, bytes) caps a log file and
`max-file` (default 1) is how many files are kept; without `max-size` logs are not rotated, as
in Docker.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from ..units import ram_in_bytes

DRIVER = "json-file"
_KNOWN = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}


def merge(log_config: Any, daemon_opts: dict[str, str]) -> dict[str, Any]:
    """The container's LogConfig with the daemon's options filled in; 400 for what we cannot do."""
    if log_config is None:
        log_config = {}
    if not isinstance(log_config, dict):
        raise InvalidArgument("LogConfig must be an object")
    typ = log_config.get("Type") or DRIVER
    if typ != DRIVER:
        raise InvalidArgument(f"logging driver {typ} is not supported (only {DRIVER})")
    opts = dict(log_config.get("Config") or {})
    for k, v in daemon_opts.items():
        opts.setdefault(k, v)
    limits(opts)
    return {"Type": typ, "Config": opts}


def limits(opts: dict[str, str]) -> tuple[int, int]:
    """(max size in bytes or -1 for none, files kept) from json-file options."""
    for k in opts:
        if k not in _KNOWN:
            raise InvalidArgument(f"unknown log opt '{k}' for {DRIVER} log driver")
    if str(opts.get("compress", "false")).lower() not in ("false", "0", ""):
        raise InvalidArgument("log opt 'compress' is not supported by this engine's json-file driver")
    size = -1
    if opts.get("max-size") not in (None, "", "-1"):
        try:
            size = ram_in_bytes(str(opts["max-size"]))
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        if size <= 0:
            raise InvalidArgument("max-size must be a positive number")
    files = 1
    if opts.get("max-file") not in (None, ""):
        try:
            files = int(opts["max-file"])
        except ValueError:
            raise InvalidArgument(f"invalid max-file: {opts['max-file']!r}") from None
        if files < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    return size, files
