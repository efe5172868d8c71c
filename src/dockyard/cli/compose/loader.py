"""Compose files as Docker Compose reads them: which files, the project name, `.env` and
`--env-file`, interpolation (`${V}`, `${V:-d}`, `${V-d}`, `${V:?err}`, `${V?err}`, `${V:+a}`,
`${V+a}`, `$$`), several `-f` files merged, `extends`, profiles; validated against the Compose
specification's JSON schema when one is installed (Debian's docker-compose ships it), and always
against the keys this implementation applies. Errors name the file, the path in it and why."""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
SCHEMAS = ("/usr/lib/python3/dist-packages/compose/config/compose_spec.json",)
_VAR = re.compile(r"\$(?:(?P<esc>\$)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\{(?P<braced>[^}]*)\})")


class ComposeError(Exception):
    """A file that cannot be used; the message says where and why."""


@dataclass
class Project:
    name: str
    workdir: str
    files: list[str]
    config: dict[str, Any]
    env: dict[str, str]
    profiles: list[str] = field(default_factory=list)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.config.get("services") or {}


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines (comments, `export`, quotes), as Compose reads `.env` and env_file."""
    out: dict[str, str] = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].lstrip()
            key, eq, value = line.partition("=")
            key = key.strip()
            if not key or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", key):
                raise ComposeError(f"{path}:{n}: invalid variable name {key!r}")
            if not eq:
                if key in os.environ:
                    out[key] = os.environ[key]
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
                if line.split("=", 1)[1].strip().startswith('"'):
                    value = value.replace("\\n", "\n")
            elif " #" in value:
                value = value.split(" #", 1)[0].rstrip()
            out[key] = value
    return out


def interpolate(value: Any, env: dict[str, str], where: str) -> Any:
    """Substitute variables in every string of a loaded file (keys are left alone)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group("esc"):
            return "$"
        if m.group("name"):
            return env.get(m.group("name"), "")
        expr = m.group("braced") or ""
        mm = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", expr, re.S)
        if not mm:
            raise ComposeError(f"{where}: invalid interpolation format for {value!r}")
        name, op, arg = mm.group(1), mm.group(2), mm.group(3) or ""
        v = env.get(name)
        if op is None:
            return v or ""
        arg = interpolate(arg, env, where) if "$" in arg else arg
        if op == ":-":
            return v if v else arg
        if op == "-":
            return v if v is not None else arg
        if op == ":+":
            return arg if v else ""
        if op == "+":
            return arg if v is not None else ""
        if (op == ":?" and not v) or (op == "?" and v is None):
            raise ComposeError(f"{where}: required variable {name} is missing a value: {arg or 'not set'}")
        return v or ""
    return _VAR.sub(sub, value)


def project_name(explicit: str, config_name: str, workdir: str) -> str:
    """Docker Compose's rule: -p, COMPOSE_PROJECT_NAME, the top-level `name`, the directory;
    lower case, only [a-z0-9_-], starting with a letter or digit."""
    for raw in (explicit, os.environ.get("COMPOSE_PROJECT_NAME", ""), config_name,
                os.path.basename(os.path.abspath(workdir))):
        if raw:
            if raw in (explicit, config_name) and raw != normalize_name(raw):
                raise ComposeError(f"invalid project name {raw!r}: must consist only of lowercase alphanumeric "
                                   "characters, hyphens, and underscores as well as start with a letter or number")
            name = normalize_name(raw)
            if name:
                return name
    raise ComposeError("project name must not be empty")


def normalize_name(s: str) -> str:
    out = re.sub(r"[^a-z0-9_-]", "", s.lower())
    return out.lstrip("_-")


def find_files(files: list[str], workdir: str | None) -> list[str]:
    if files:
        return [os.path.abspath(f) for f in files]
    d = os.path.abspath(workdir or os.getcwd())
    while True:
        for name in DEFAULT_FILES:
            p = os.path.join(d, name)
            if os.path.isfile(p):
                over = os.path.join(d, name.replace(".y", ".override.y"))
                return [p] + ([over] if os.path.isfile(over) else [])
        if os.path.dirname(d) == d:
            raise ComposeError("no configuration file provided: not found (compose.yaml or docker-compose.yml)")
        d = os.path.dirname(d)


def load(files: list[str], project: str = "", env_files: list[str] | None = None, profiles: list[str] | None = None,
         workdir: str | None = None) -> Project:
    import yaml
    paths = find_files(files, workdir)
    wd = os.path.abspath(workdir or os.path.dirname(paths[0]))
    env: dict[str, str] = {}
    for ef in env_files or [os.path.join(wd, ".env")]:
        if os.path.isfile(ef):
            env.update(read_env_file(ef))
        elif env_files:
            raise ComposeError(f"couldn't find env file: {ef}")
    env.update(os.environ)
    merged: dict[str, Any] = {}
    for p in paths:
        try:
            with open(p) as f:
                doc = yaml.safe_load(f)
        except OSError as e:
            raise ComposeError(f"{p}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ComposeError(f"{p}: {e}") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise ComposeError(f"{p}: top-level object must be a mapping")
        doc = interpolate(doc, env, os.path.basename(p))
        validate(doc, p)
        _resolve_extends(doc, p)
        merged = merge(merged, doc)
    merged.pop("version", None)
    active = list(profiles or [p for p in os.environ.get("COMPOSE_PROFILES", "").split(",") if p])
    services = merged.get("services") or {}
    merged["services"] = {n: s for n, s in services.items()
                          if not s.get("profiles") or set(s["profiles"]) & set(active) or "*" in active}
    name = project_name(project, str(merged.get("name") or ""), wd)
    merged["name"] = name
    return Project(name, wd, paths, merged, env, active)


def merge(base: dict[str, Any], over: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Several -f files as Compose merges them: mappings key by key; command, entrypoint and
    healthcheck tests replaced; volumes by target and ports by their text; other lists appended
    without duplicates."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        here = f"{path}.{k}" if path else k
        old = out.get(k)
        if isinstance(old, dict) and isinstance(v, dict):
            out[k] = merge(old, v, here)
        elif isinstance(old, list) and isinstance(v, list) and k not in ("command", "entrypoint", "test"):
            if k == "volumes" and path.startswith("services."):
                targets = {_vol_target(x): i for i, x in enumerate(old)}
                merged = list(old)
                for x in v:
                    t = _vol_target(x)
                    if t in targets:
                        merged[targets[t]] = x
                    else:
                        merged.append(x)
                out[k] = merged
            else:
                out[k] = old + [x for x in v if x not in old]
        else:
            out[k] = copy.deepcopy(v)
    return out


def _vol_target(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("target", ""))
    parts = str(v).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _resolve_extends(doc: dict[str, Any], path: str) -> None:
    services = doc.get("services") or {}
    done: set[str] = set()

    def resolve(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        svc = services[name]
        ext = svc.get("extends")
        if not ext or name in done:
            return svc
        if name in seen:
            raise ComposeError(f"{path}: services.{name}.extends: circular reference {' -> '.join(seen + (name,))}")
        if isinstance(ext, str):
            ext = {"service": ext}
        base_name = ext.get("service")
        if ext.get("file"):
            import yaml
            fp = os.path.join(os.path.dirname(path), ext["file"])
            with open(fp) as f:
                other = yaml.safe_load(f) or {}
            base = (other.get("services") or {}).get(base_name)
        else:
            base = resolve(base_name, seen + (name,)) if base_name in services else None
        if base is None:
            raise ComposeError(f"{path}: services.{name}.extends: service {base_name!r} not found")
        own = {k: v for k, v in svc.items() if k != "extends"}
        services[name] = merge({k: v for k, v in base.items() if k not in ("depends_on", "extends")}, own,
                               f"services.{name}")
        done.add(name)
        return services[name]
    for n in list(services):
        resolve(n, ())


def validate(doc: dict[str, Any], path: str) -> None:
    """The Compose specification's schema when installed; the keys this implementation applies always."""
    schema = _schema()
    if schema is not None:
        import jsonschema
        v = jsonschema.Draft7Validator(schema)
        errs = sorted((e for e in v.iter_errors(doc) if not _newer_key(e)), key=lambda e: list(e.absolute_path))
        if errs:
            e = errs[0]
            where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
            raise ComposeError(f"{path}: {where}: {e.message}")
    for name, svc in (doc.get("services") or {}).items():
        if not isinstance(svc, dict):
            raise ComposeError(f"{path}: services.{name}: must be a mapping")
    from .applied import refused
    bad = refused(doc)
    if bad:
        raise ComposeError(f"{path}: {bad}: not supported by dockyard compose (refused rather than ignored)")


def _newer_key(e: Any) -> bool:
    """A schema error that is only about keys newer than the installed schema (Debian's is the
    specification of 2021) which this implementation applies: `annotations`, `start_interval`…"""
    if e.validator in ("oneOf", "anyOf") and e.context:
        branches: dict[Any, list[Any]] = {}
        for sub in e.context:   # a short-or-long-syntax choice: one branch failing only on such keys
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_newer_key(sub) for sub in errs) for errs in branches.values())
    if e.validator != "additionalProperties" or not isinstance(e.instance, dict):
        return False
    from .applied import applies
    props = e.schema.get("properties") or {}
    patterns = e.schema.get("patternProperties") or {}
    extra = [k for k in e.instance if k not in props and not any(re.search(p, k) for p in patterns)]
    return bool(extra) and all(applies([*e.absolute_path, k]) for k in extra)


_SCHEMA: list[Any] = []


def _schema() -> dict[str, Any] | None:
    if not _SCHEMA:
        import json
        found = None
        for p in (os.environ.get("DOCKYARD_COMPOSE_SCHEMA", ""), *SCHEMAS):
            if p and os.path.isfile(p):
                with open(p) as f:
                    found = json.load(f)
                break
        _SCHEMA.append(found)
    return _SCHEMA[0]
