"""Pod networking through CNI plugins, by the CNI spec's protocol: the plugin binary is run with
`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS` and `CNI_PATH` in its
environment and the network configuration on stdin; it answers a result (or an error) as JSON.

A configuration list (`*.conflist`, or a single-plugin `*.conf`/`*.json` wrapped into one) is loaded
from the conf dir, the first by name as kubelet and containerd choose it. ADD runs the plugins in
order, each given the previous one's result; DEL runs them in reverse with the result ADD recorded;
CHECK runs them in order with it. Blocking (subprocesses): call from worker threads."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidArgument, SystemError_

log = logging.getLogger(__name__)
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
IFNAME = "eth0"


class CniError(SystemError_):
    """A plugin failed (its `msg` and `details` in the message)."""


@dataclass
class NetConfig:
    """One loaded configuration list."""

    name: str
    version: str
    plugins: list[dict[str, Any]]
    source: str
    raw: dict[str, Any] = field(default_factory=dict)

    def capable(self, cap: str) -> bool:
        return any((p.get("capabilities") or {}).get(cap) for p in self.plugins)

    def bridge_name(self) -> str:
        """The bridge the list's `bridge` plugin makes (cni0 by its default), or ''."""
        for p in self.plugins:
            if p.get("type") == "bridge":
                return str(p.get("bridge") or "cni0")
        return ""


def load(conf_dir: str) -> tuple[NetConfig | None, str]:
    """The first usable configuration list in `conf_dir` and, when there is none, why."""
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return None, f"no network config: {conf_dir} does not exist"
    reasons = []
    for n in names:
        if not n.endswith((".conf", ".conflist", ".json")):
            continue
        path = os.path.join(conf_dir, n)
        try:
            raw = json.loads(Path(path).read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            if "plugins" in raw:
                plugins = raw["plugins"]
                if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
                    raise ValueError("plugins must be a non-empty list of objects")
            elif "type" in raw:
                plugins = [raw]
            else:
                raise ValueError("neither plugins nor type")
            if not all(isinstance(p.get("type"), str) and p["type"] for p in plugins):
                raise ValueError("a plugin without a type")
            name = str(raw.get("name") or "")
            if not name:
                raise ValueError("no name")
            return NetConfig(name, str(raw.get("cniVersion") or "0.4.0"), plugins, path, raw), ""
        except (OSError, ValueError) as e:
            reasons.append(f"{path}: {e}")
    return None, "; ".join(reasons) or f"no network config found in {conf_dir}"


@dataclass(frozen=True)
class Pod:
    """What a plugin is told about the pod."""

    sandbox_id: str
    netns: str
    name: str = ""
    namespace: str = ""
    uid: str = ""

    def args(self) -> str:
        return ";".join(["IgnoreUnknown=1", f"K8S_POD_NAMESPACE={self.namespace}", f"K8S_POD_NAME={self.name}",
                         f"K8S_POD_INFRA_CONTAINER_ID={self.sandbox_id}", f"K8S_POD_UID={self.uid}"])


class Cni:
    """Runs a configuration list's plugins."""

    def __init__(self, conf_dir: str = DEFAULT_CONF_DIR, bin_dirs: tuple[str, ...] = DEFAULT_BIN_DIRS) -> None:
        self.conf_dir, self.bin_dirs = conf_dir, bin_dirs
        self.config: NetConfig | None = None
        self.why = "not loaded yet"
        self.pod_cidr = ""

    def reload(self) -> NetConfig | None:
        self.config, self.why = load(self.conf_dir)
        if self.config is not None:
            missing = [p["type"] for p in self.config.plugins if self._binary(p["type"]) is None]
            if missing:
                self.why = f"{self.config.source}: plugin binaries not found in {':'.join(self.bin_dirs)}: {', '.join(missing)}"
                self.config = None
        return self.config

    def _binary(self, typ: str) -> str | None:
        if "/" in typ:
            return None
        for d in self.bin_dirs:
            p = os.path.join(d, typ)
            if os.access(p, os.X_OK):
                return p
        return None

    def _conf(self, conf: NetConfig, plugin: dict[str, Any], prev: dict[str, Any] | None,
              runtime: dict[str, Any]) -> bytes:
        body = dict(plugin)
        body["name"], body["cniVersion"] = conf.name, conf.version
        if prev is not None:
            body["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in runtime.items() if caps.get(k)}
        if rc:
            body["runtimeConfig"] = rc
        return json.dumps(body).encode()

    def _run(self, command: str, conf: NetConfig, plugin: dict[str, Any], pod: Pod, prev: dict[str, Any] | None,
             runtime: dict[str, Any]) -> dict[str, Any]:
        binary = self._binary(plugin["type"])
        if binary is None:
            raise CniError(f"CNI plugin {plugin['type']!r} not found in {':'.join(self.bin_dirs)}")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_CONTAINERID": pod.sandbox_id, "CNI_NETNS": pod.netns, "CNI_IFNAME": IFNAME,
               "CNI_ARGS": pod.args(), "CNI_PATH": ":".join(self.bin_dirs)}
        p = subprocess.run([binary], input=self._conf(conf, plugin, prev, runtime), env=env, capture_output=True,
                           timeout=60)
        out = p.stdout.decode("utf-8", "replace").strip()
        if p.returncode != 0:
            try:
                err = json.loads(out)
                msg = f"{err.get('msg', '')}: {err.get('details', '')}".strip(": ")
            except ValueError:
                msg = out
            msg = (msg or p.stderr.decode("utf-8", "replace") or f"exit status {p.returncode}").strip()[-500:]
            raise CniError(f"CNI plugin {plugin['type']} {command} failed: {msg}")
        if not out:
            return prev or {}
        try:
            res = json.loads(out)
        except ValueError:
            raise CniError(f"CNI plugin {plugin['type']} {command}: not a JSON result: {out[:200]!r}") from None
        return res if isinstance(res, dict) else {}

    def add(self, pod: Pod, runtime: dict[str, Any]) -> dict[str, Any]:
        """ADD through the list; on a failure the plugins already run are undone (DEL)."""
        conf = self.config
        if conf is None:
            raise InvalidArgument(f"network not ready: {self.why}")
        prev: dict[str, Any] | None = None
        done = 0
        try:
            for plugin in conf.plugins:
                prev = self._run("ADD", conf, plugin, pod, prev, runtime)
                done += 1
        except BaseException:
            for plugin in reversed(conf.plugins[:done + 1]):
                try:
                    self._run("DEL", conf, plugin, pod, prev, runtime)
                except (CniError, OSError, subprocess.TimeoutExpired) as e:
                    log.warning("undoing CNI ADD of %s: %s", pod.sandbox_id[:12], e)
            raise
        return {"config": conf.raw, "result": prev or {}, "runtime": runtime}

    def delete(self, pod: Pod, recorded: dict[str, Any]) -> None:
        """DEL in reverse order, with the configuration and result ADD recorded (so a changed conf dir
        does not strand the pod's addresses)."""
        conf = _from_raw(recorded.get("config")) or self.config
        if conf is None:
            return
        errors = []
        for plugin in reversed(conf.plugins):
            try:
                self._run("DEL", conf, plugin, pod, recorded.get("result") or None, recorded.get("runtime") or {})
            except (CniError, OSError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
        if errors:
            raise CniError("; ".join(errors))

    def check(self, pod: Pod, recorded: dict[str, Any]) -> None:
        conf = _from_raw(recorded.get("config")) or self.config
        if conf is None:
            raise InvalidArgument(f"network not ready: {self.why}")
        for plugin in conf.plugins:
            self._run("CHECK", conf, plugin, pod, recorded.get("result") or None, recorded.get("runtime") or {})


def _from_raw(raw: Any) -> NetConfig | None:
    if not isinstance(raw, dict) or not raw:
        return None
    plugins = raw["plugins"] if "plugins" in raw else [raw]
    return NetConfig(str(raw.get("name") or ""), str(raw.get("cniVersion") or "0.4.0"), plugins, "recorded", raw)


def ips(result: dict[str, Any]) -> list[str]:
    """The pod's addresses from a result (0.4.0 and 1.0.0 shapes), IPv4 first."""
    out = [str(ip.get("address", "")).split("/")[0] for ip in result.get("ips") or [] if isinstance(ip, dict)]
    out = [x for x in out if x]
    return sorted(out, key=lambda a: ":" in a)
