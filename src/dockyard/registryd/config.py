"""The configuration file, read as distribution's `registry serve config.yml` reads it (with its
`REGISTRY_<SECTION>_<KEY>` environment overrides), plus Dockyard's own section `dockyard:`.
Every key is applied or refused by its dotted name: a key this registry does not apply stops it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..units import go_duration, ram_in_bytes
from .errors import ConfigError

ANY = object()        # a mapping whose keys are the user's (headers, fields, quotas)


def duration(v: Any, key: str = "") -> float:
    """Seconds from a Go duration (`10s`, `1h30m`, `500ms`) or a number of seconds."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    try:
        return go_duration(str(v)) / 1e9
    except ValueError:
        raise ConfigError(f"{key}: invalid duration {v!r}") from None


def size(v: Any, key: str = "") -> int:
    """Bytes from `10GB`, `512m` or a number."""
    try:
        return v if isinstance(v, int) else ram_in_bytes(str(v))
    except ValueError:
        raise ConfigError(f"{key}: invalid size {v!r}") from None


# The keys applied; a leaf names its type. Anything else is refused by name.
SCHEMA: dict[str, Any] = {
    "version": str,
    "log": {"level": str, "formatter": str, "fields": ANY, "accesslog": {"disabled": bool}},
    "storage": {
        "filesystem": {"rootdirectory": str, "maxthreads": int},
        "s3": {"accesskey": str, "secretkey": str, "region": str, "regionendpoint": str, "bucket": str,
               "rootdirectory": str, "secure": bool, "forcepathstyle": bool, "chunksize": int},
        "inmemory": ANY,
        "delete": {"enabled": bool},
        "cache": {"blobdescriptor": str},
        "maintenance": {"uploadpurging": {"enabled": bool, "age": "duration", "interval": "duration", "dryrun": bool},
                        "readonly": {"enabled": bool}},
    },
    "http": {"addr": str, "net": str, "host": str, "secret": str, "relativeurls": bool,
             "draintimeout": "duration", "headers": ANY,
             "tls": {"certificate": str, "key": str, "clientcas": list, "minimumtls": str},
             "debug": {"addr": str, "prometheus": {"enabled": bool, "path": str}}},
    "auth": {"htpasswd": {"realm": str, "path": str},
             "token": {"realm": str, "service": str, "issuer": str, "rootcertbundle": str, "autoredirect": bool}},
    "notifications": {"endpoints": list},
    "proxy": {"remoteurl": str, "username": str, "password": str, "ttl": "duration"},
    "health": {"storagedriver": {"enabled": bool, "interval": "duration", "threshold": int}},
    "catalog": {"maxentries": int},
    "dockyard": {
        "accounts": {"database": str, "service": str, "issuer": str, "tokenttl": "duration", "admin": ANY,
                     "anonymous": list, "pushcreates": bool, "loginattempts": int, "lockout": "duration"},
        "quotas": {"repositories": ANY, "namespaces": ANY},
        "gc": {"interval": "duration", "grace": "duration", "deleteuntagged": bool, "keeptags": int,
               "untaggedolderthan": "duration", "dryrun": bool},
        "mirrors": ANY,
        "web": {"enabled": bool, "title": str},
    },
}
ENDPOINT_KEYS = {"name": str, "disabled": bool, "url": str, "headers": ANY, "timeout": "duration", "threshold": int,
                 "backoff": "duration", "ignoredmediatypes": list, "ignore": {"mediatypes": list, "actions": list}}
MIRROR_KEYS = {"remoteurl": str, "username": str, "password": str, "ttl": "duration"}


def _check(doc: Any, schema: Any, key: str) -> Any:
    if schema is ANY:
        return doc
    if isinstance(schema, dict):
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise ConfigError(f"{key}: expected a mapping")
        for k, v in doc.items():
            if k not in schema:
                where = f"{key}.{k}" if key else str(k)
                raise ConfigError(f"configuration key {where!r} is not supported by dockyard-registry")
            _check(v, schema[k], f"{key}.{k}" if key else k)
        return doc
    if schema == "duration":
        return duration(doc, key)
    if schema is bool and not isinstance(doc, bool):
        raise ConfigError(f"{key}: expected true or false")
    if schema is int and (not isinstance(doc, int) or isinstance(doc, bool)):
        raise ConfigError(f"{key}: expected an integer")
    if schema is list and not isinstance(doc, list):
        raise ConfigError(f"{key}: expected a list")
    return doc


def _env_overrides(doc: dict[str, Any], environ: dict[str, str]) -> None:
    """REGISTRY_HTTP_ADDR=... sets http.addr (distribution's rule; names matched in SCHEMA)."""
    for name, value in environ.items():
        if not name.startswith("REGISTRY_"):
            continue
        parts, node, schema = name[9:].lower().split("_"), doc, SCHEMA
        path: list[str] = []
        while parts and isinstance(schema, dict):
            for n in range(len(parts), 0, -1):
                k = "_".join(parts[:n])
                if k in schema:
                    path.append(k)
                    schema, parts = schema[k], parts[n:]
                    break
            else:
                raise ConfigError(f"environment variable {name}: no configuration key {'.'.join(path + parts)!r}")
        for k in path[:-1]:
            node = node.setdefault(k, {}) if isinstance(node.get(k), dict) else node.setdefault(k, {})
        v: Any = yaml.safe_load(value)
        node[path[-1]] = v if not isinstance(schema, type) or schema is not str else str(v)


@dataclass
class Config:
    """The parsed configuration: `raw` is the checked document; properties read it."""
    raw: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.raw
        for k in dotted.split("."):
            if not isinstance(node, dict) or k not in node or node[k] is None:
                return default
            node = node[k]
        return node

    def seconds(self, dotted: str, default: float) -> float:
        v = self.get(dotted)
        return default if v is None else duration(v, dotted)

    @property
    def storage_driver(self) -> tuple[str, dict[str, Any]]:
        drivers = [k for k in ("filesystem", "s3", "inmemory") if k in (self.raw.get("storage") or {})]
        if len(drivers) != 1:
            raise ConfigError("storage: exactly one driver (filesystem, s3 or inmemory) must be configured")
        return drivers[0], dict(self.get(f"storage.{drivers[0]}") or {})

    @property
    def delete_enabled(self) -> bool:
        return bool(self.get("storage.delete.enabled", False))

    @property
    def readonly(self) -> bool:
        return bool(self.get("storage.maintenance.readonly.enabled", False))


def load(text: str, path: str = "", environ: dict[str, str] | None = None) -> Config:
    """Parse and check a configuration document."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"configuration is not YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError("configuration must be a mapping")
    _env_overrides(doc, dict(os.environ if environ is None else environ))
    _check(doc, SCHEMA, "")
    if str(doc.get("version", "")) != "0.1":
        raise ConfigError(f"version: {doc.get('version')!r} is not supported (0.1 is)")
    for i, ep in enumerate(doc.get("notifications", {}).get("endpoints") or []):
        _check(ep, ENDPOINT_KEYS, f"notifications.endpoints[{i}]")
    for host, m in (doc.get("dockyard", {}).get("mirrors") or {}).items():
        _check(m, MIRROR_KEYS, f"dockyard.mirrors.{host}")
    if doc.get("log", {}).get("formatter") not in (None, "text", "json", "logstash"):
        raise ConfigError(f"log.formatter: {doc['log']['formatter']!r} is not one of text, json")
    if doc.get("storage", {}).get("cache", {}).get("blobdescriptor") not in (None, "inmemory"):
        raise ConfigError("storage.cache.blobdescriptor: only 'inmemory' is supported (redis is not)")
    if doc.get("http", {}).get("net") not in (None, "tcp", "unix"):
        raise ConfigError("http.net: only tcp and unix are supported")
    cfg = Config(doc, path)
    _ = cfg.storage_driver
    return cfg


def load_file(path: str) -> Config:
    with open(path) as f:
        return load(f.read(), path)
