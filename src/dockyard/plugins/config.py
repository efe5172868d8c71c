"""Docker's managed-plugin format: a plugin is a root filesystem and a `config.json` (the
`application/vnd.docker.plugin.v1+json` blob of its image). Read here as dockerd reads it (keys
without regard to case), checked, put in the Engine API's `PluginConfig` shape, and turned into
the privileges a user grants before the plugin is installed."""

from __future__ import annotations

import posixpath
from typing import Any

from ..errors import InvalidArgument

MEDIA_TYPE = "application/vnd.docker.plugin.v1+json"
VOLUME_DRIVER = "docker.volumedriver/1.0"
# interface types Dockyard can use a plugin as (the rest would be accepted and never used)
USABLE_TYPES = (VOLUME_DRIVER,)
_KNOWN = {"description", "documentation", "interface", "entrypoint", "workdir", "user", "network", "linux",
          "propagatedmount", "ipchost", "pidhost", "mounts", "env", "args", "rootfs", "dockerversion"}


def _lower(d: Any, where: str) -> dict[str, Any]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise InvalidArgument(f"plugin config: {where} must be an object")
    return {str(k).lower(): v for k, v in d.items()}


def _strings(v: Any, where: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"plugin config: {where} must be a list of strings")
    return list(v)


def normalize(raw: Any) -> dict[str, Any]:
    """A plugin's config.json → the API's PluginConfig (400 for what is malformed or unusable)."""
    c = _lower(raw, "config.json")
    unknown = sorted(set(c) - _KNOWN)
    if unknown:
        raise InvalidArgument(f"plugin config: unknown field {unknown[0]!r}")
    iface = _lower(c.get("interface"), "interface")
    types = _strings(iface.get("types"), "interface.types")
    socket_name = str(iface.get("socket") or "")
    if not types or not socket_name or "/" in socket_name:
        raise InvalidArgument("plugin config: interface.types and interface.socket (a file name) are required")
    for t in types:
        if t not in USABLE_TYPES:
            raise InvalidArgument(f"plugin config: interface type {t!r} is not one Dockyard uses "
                                  f"(it uses {', '.join(USABLE_TYPES)})")
    if iface.get("protocolscheme") not in (None, "", "moby.plugins.http/v1"):
        raise InvalidArgument(f"plugin config: protocol scheme {iface['protocolscheme']!r} is not supported")
    entry = _strings(c.get("entrypoint"), "entrypoint")
    if not entry:
        raise InvalidArgument("plugin config: entrypoint is required")
    workdir = str(c.get("workdir") or "")
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument("plugin config: workdir must be absolute")
    user = _lower(c.get("user"), "user")
    net = _lower(c.get("network"), "network")
    ntype = str(net.get("type") or "")
    if ntype not in ("", "host", "none", "null"):
        raise InvalidArgument(f"plugin config: network type {ntype!r}: host or none")
    linux = _lower(c.get("linux"), "linux")
    devices = []
    for d in linux.get("devices") or []:
        d = _lower(d, "linux.devices[]")
        devices.append({"Name": str(d.get("name") or ""), "Description": str(d.get("description") or ""),
                        "Settable": _strings(d.get("settable"), "settable"), "Path": d.get("path")})
    mounts = []
    for m in c.get("mounts") or []:
        m = _lower(m, "mounts[]")
        dest = str(m.get("destination") or "")
        if not dest.startswith("/") or ".." in dest.split("/"):
            raise InvalidArgument(f"plugin config: mount destination {dest!r} must be an absolute path")
        typ = str(m.get("type") or "bind")
        if typ not in ("bind", "tmpfs"):
            raise InvalidArgument(f"plugin config: mount type {typ!r}: bind or tmpfs")
        mounts.append({"Name": str(m.get("name") or ""), "Description": str(m.get("description") or ""),
                       "Settable": _strings(m.get("settable"), "settable"), "Source": m.get("source"),
                       "Destination": posixpath.normpath(dest), "Type": typ,
                       "Options": _strings(m.get("options"), "mounts[].options")})
    env = []
    for e in c.get("env") or []:
        e = _lower(e, "env[]")
        if not e.get("name"):
            raise InvalidArgument("plugin config: every env entry needs a name")
        env.append({"Name": str(e["name"]), "Description": str(e.get("description") or ""),
                    "Settable": _strings(e.get("settable"), "settable"), "Value": e.get("value")})
    args = _lower(c.get("args"), "args")
    prop = str(c.get("propagatedmount") or "")
    if prop:   # a mount the plugin makes inside it, seen by the host: not built here
        raise InvalidArgument("plugin config: propagatedMount is not supported: Dockyard reads a volume plugin's "
                              "Mountpoint under the plugin's root filesystem")
    rootfs = _lower(c.get("rootfs"), "rootfs")
    return {
        "DockerVersion": str(c.get("dockerversion") or ""), "Description": str(c.get("description") or ""),
        "Documentation": str(c.get("documentation") or ""),
        "Interface": {"Types": types, "Socket": socket_name, "ProtocolScheme": str(iface.get("protocolscheme") or "")},
        "Entrypoint": entry, "WorkDir": workdir,
        "User": {"UID": int(user.get("uid") or 0), "GID": int(user.get("gid") or 0)},
        "Network": {"Type": ntype}, "Linux": {
            "Capabilities": _strings(linux.get("capabilities"), "linux.capabilities") or None,
            "AllowAllDevices": bool(linux.get("allowalldevices")), "Devices": devices or None},
        "PropagatedMount": prop, "IpcHost": bool(c.get("ipchost")), "PidHost": bool(c.get("pidhost")),
        "Mounts": mounts, "Env": env,
        "Args": {"Name": str(args.get("name") or ""), "Description": str(args.get("description") or ""),
                 "Settable": _strings(args.get("settable"), "args.settable"),
                 "Value": _strings(args.get("value"), "args.value")},
        "rootfs": {"type": str(rootfs.get("type") or "layers"),
                   "diff_ids": _strings(rootfs.get("diff_ids"), "rootfs.diff_ids")},
    }


def privileges(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """What the plugin asks of the host, in dockerd's words and order."""
    out = []
    ntype = cfg["Network"]["Type"]
    if ntype not in ("", "null", "bridge", "none"):
        out.append({"Name": "network", "Description": "permissions to access a network", "Value": [ntype]})
    if cfg["IpcHost"]:
        out.append({"Name": "host ipc namespace", "Description": "allow access to host ipc namespace", "Value": ["true"]})
    if cfg["PidHost"]:
        out.append({"Name": "host pid namespace", "Description": "allow access to host pid namespace", "Value": ["true"]})
    for m in cfg["Mounts"]:
        if m.get("Source") is not None:
            out.append({"Name": "mount", "Description": "host path to mount", "Value": [m["Source"]]})
    for d in cfg["Linux"]["Devices"] or []:
        if d.get("Path") is not None:
            out.append({"Name": "device", "Description": "host device to access", "Value": [d["Path"]]})
    if cfg["Linux"]["AllowAllDevices"]:
        out.append({"Name": "allow-all-devices", "Description": "allow 'rwm' access to all devices", "Value": ["true"]})
    if cfg["Linux"]["Capabilities"]:
        out.append({"Name": "capabilities", "Description": "list of additional capabilities required",
                    "Value": list(cfg["Linux"]["Capabilities"])})
    return out


def check_granted(cfg: dict[str, Any], granted: Any) -> None:
    """The privileges a client granted must be exactly those the plugin asks for (dockerd's rule)."""
    want = privileges(cfg)
    got = granted if isinstance(granted, list) else []

    def key(p: Any) -> tuple[str, tuple[str, ...]]:
        return (str(p.get("Name")), tuple(str(v) for v in p.get("Value") or [])) if isinstance(p, dict) else ("", ())
    if sorted(map(key, want)) != sorted(map(key, got)):
        raise InvalidArgument("incorrect privileges: the client granted other privileges than the plugin asks "
                              "for (GET /plugins/privileges lists them)")


def settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """A new plugin's Settings: its config's defaults."""
    return {"Mounts": [dict(m) for m in cfg["Mounts"]],
            "Env": [f"{e['Name']}={e['Value']}" for e in cfg["Env"] if e.get("Value") is not None],
            "Args": list(cfg["Args"]["Value"]), "Devices": [dict(d) for d in cfg["Linux"]["Devices"] or []]}


def apply_set(cfg: dict[str, Any], st: dict[str, Any], items: Any) -> dict[str, Any]:
    """`POST /plugins/{name}/set` (`KEY=VALUE` for env, `MOUNT.source=PATH`, `DEVICE.path=PATH`,
    `ARGS=v1 v2`): only what the plugin marks settable."""
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise InvalidArgument("plugin settings must be a list of KEY=VALUE strings")
    out = {k: [dict(x) if isinstance(x, dict) else x for x in v] for k, v in st.items()}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid setting {item!r}: want KEY=VALUE")
        name, _, field = key.partition(".")
        if field:
            kind = "Mounts" if any(m["Name"] == name for m in cfg["Mounts"]) else "Devices"
            attr = {"Mounts": "source", "Devices": "path"}[kind]
            entry = next((x for x in out[kind] if x["Name"] == name), None)
            if entry is None or field != attr:
                raise InvalidArgument(f"setting {key!r}: the plugin has no mount or device {name!r} with {field!r}")
            if attr not in entry.get("Settable", []):
                raise InvalidArgument(f"setting {key!r}: {name}.{attr} is not settable")
            entry["Source" if kind == "Mounts" else "Path"] = value
        elif name == cfg["Args"]["Name"] and cfg["Args"]["Name"]:
            if "value" not in cfg["Args"]["Settable"]:
                raise InvalidArgument(f"setting {key!r}: the plugin's args are not settable")
            out["Args"] = value.split()
        else:
            e = next((x for x in cfg["Env"] if x["Name"] == name), None)
            if e is None:
                raise InvalidArgument(f"setting {key!r}: the plugin has no such variable, mount, device or args")
            if "value" not in e["Settable"]:
                raise InvalidArgument(f"setting {key!r}: {name} is not settable")
            out["Env"] = [x for x in out["Env"] if str(x).partition("=")[0] != name] + [f"{name}={value}"]
    return out
