"""The keys of a Compose file that `dockyard compose` applies, at every depth. Anything else is
refused with its path: a user who writes `deploy.placement` or `bind.propagation` and silently gets
nothing cannot see the harm (the Compose schema allows far more than an engine without swarm can
do)."""

from __future__ import annotations

from typing import Any

ANY = None   # a leaf: any value


def _keys(*names: str, **nested: Any) -> dict[str, Any]:
    return {**{n: ANY for n in names}, **nested}


def _each(shape: dict[str, Any]) -> dict[str, Any]:
    """A mapping of user-chosen names (networks, volumes, ulimits…) each of `shape`."""
    return {"*": shape}


SERVICE = _keys(
    "image", "command", "entrypoint", "environment", "env_file", "expose", "user", "working_dir", "hostname",
    "domainname", "tty", "stdin_open", "stop_signal", "stop_grace_period", "extra_hosts", "init", "cap_add",
    "cap_drop", "privileged", "read_only", "tmpfs", "shm_size", "dns", "dns_search", "sysctls", "pids_limit",
    "mem_limit", "memswap_limit", "mem_reservation", "cpus", "cpu_shares", "cpuset", "profiles", "extends",
    "container_name", "scale", "devices", "security_opt", "network_mode", "pull_policy", "platform", "group_add",
    "oom_score_adj", "oom_kill_disable", "ipc", "pid", "userns_mode", "mac_address", "runtime", "annotations",
    "labels", "restart",
    build=_keys("context", "dockerfile", "target", "args", "labels", "network"),
    ports=[_keys("target", "published", "host_ip", "protocol", "mode", "name")],
    volumes=[_keys("type", "source", "target", "read_only", bind=_keys("create_host_path"), volume=_keys("nocopy"),
                   tmpfs=_keys("size"))],
    networks=_each(_keys("aliases", "ipv4_address", "priority")),
    depends_on=_each(_keys("condition")),
    healthcheck=_keys("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"),
    deploy=_keys("replicas", resources=_keys(limits=_keys("cpus", "memory", "pids"), reservations=_keys("memory")),
                 restart_policy=_keys("condition", "max_attempts")),
    logging=_keys("driver", "options"),
    ulimits=_each(_keys("soft", "hard")),
    secrets=[_keys("source", "target")],
    configs=[_keys("source", "target")],
)

TOP = _keys(
    "version", "name",
    services=_each(SERVICE),
    networks=_each(_keys("name", "driver", "driver_opts", "internal", "attachable", "labels", "external",
                         ipam=_keys("driver", config=[_keys("subnet", "gateway", "ip_range")]))),
    volumes=_each(_keys("name", "driver", "driver_opts", "labels", "external")),
    secrets=_each(_keys("file")),
    configs=_each(_keys("file")),
)


def refused(doc: Any) -> str | None:
    """The path of the first key of a Compose document that is not applied, or None."""
    return _walk(doc, TOP, "")


def _walk(doc: Any, shape: Any, path: str) -> str | None:
    if shape is ANY:
        return None
    if isinstance(shape, list):
        for i, item in enumerate(doc if isinstance(doc, list) else []):
            bad = _walk(item, shape[0], f"{path}[{i}]") if isinstance(item, dict) else None
            if bad:
                return bad
        return None
    if not isinstance(doc, dict):
        return None   # a short form (a string, a list of names): the schema checks its type
    for k, v in doc.items():
        if str(k).startswith("x-"):
            continue   # extension fields: YAML anchors' storage, nothing to apply
        sub = shape["*"] if "*" in shape else shape.get(k, False)
        where = f"{path}.{k}" if path else str(k)
        if sub is False:
            return where
        bad = _walk(v, sub, where)
        if bad:
            return bad
    return None


def applies(path: list[Any]) -> bool:
    """Whether the key at `path` (keys and list indexes from the document's top) is applied."""
    shape: Any = TOP
    for k in path:
        if shape is ANY:
            return True
        if isinstance(shape, list):
            shape = shape[0] if isinstance(k, int) else False
        elif isinstance(k, int):
            return False
        else:
            shape = shape["*"] if "*" in shape else shape.get(k, False)
        if shape is False:
            return False
    return True
