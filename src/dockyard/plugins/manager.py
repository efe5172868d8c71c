"""Managed plugins (`docker plugin …`): each is a directory `<data-root>/plugins/<id>/` holding
`plugin.json` (name, enabled, settings, config) and `rootfs/`; an enabled plugin runs as a
container of its own, started by the monitor with an OCI spec made by the same code as any
container's (Docker's defaults plus what the plugin asks and its user granted), its root the
plugin's rootfs, and `<exec-root>/plugins/<id>/` bound at `/run/docker/plugins` so that the
socket it makes there is where the volume-plugin discovery finds it. Plugins are stopped when
the daemon stops and started again with it when they were enabled.

Blocking work (unpacking, tar, registry) runs in worker threads."""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..archive.tarapply import apply_tar
from ..containers import create, logconfig, spec
from ..errors import Conflict, InvalidArgument, NotFound, SystemError_
from ..monitor.client import MonitorClient
from ..oci import reference
from . import config as pconfig
from . import distribution

log = logging.getLogger(__name__)
ENABLE_TIMEOUT = 30.0


def canonical_name(name: str) -> str:
    """`vieux/sshfs` → `vieux/sshfs:latest`, as dockerd names plugins."""
    try:
        ref = reference.parse(name)
    except InvalidArgument:
        raise InvalidArgument(f"invalid plugin name {name!r}") from None
    if ref.digest:
        raise InvalidArgument(f"plugin name {name!r}: a digest is not a name")
    return ref.with_default_tag().familiar()


class PluginManager:
    """Every managed plugin of the daemon."""

    def __init__(self, root: Path, run: Path, monitor: MonitorClient, runtime: dict[str, Any],
                 cgroup_parent: str, in_use: Callable[[str], list[str]] | None = None) -> None:
        self.root, self.run, self.monitor, self.runtime = root, run, monitor, runtime
        self.cgroup_parent = cgroup_parent
        self.in_use = in_use or (lambda name: [])   # names of the volumes a plugin serves
        self.root.mkdir(parents=True, exist_ok=True)
        self.by_id: dict[str, dict[str, Any]] = {}
        self.lock = asyncio.Lock()
        self.stopping: set[str] = set()   # plugins whose exit is asked for (disable, remove, shutdown)
        self.restarts: dict[str, int] = {}
        self.shutting_down = False
        self._tasks: set[asyncio.Task[None]] = set()
        for f in sorted(self.root.glob("*/plugin.json")):
            try:
                rec = json.loads(f.read_text())
                self.by_id[rec["Id"]] = rec
            except (OSError, ValueError, KeyError):
                log.warning("plugin record %s is unreadable: skipped", f)

    # --- records ---------------------------------------------------------------------------------
    def get(self, ref: str) -> dict[str, Any]:
        """By name (tag `latest` implied), full ID or unique ID prefix."""
        names = {ref}
        try:
            names.add(canonical_name(ref))
        except InvalidArgument:
            pass
        for rec in self.by_id.values():
            if rec["Id"] == ref or rec["Name"] in names:
                return rec
        found = [r for r in self.by_id.values() if ref and r["Id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"plugin {ref} not found" if len(found) == 0 else f"plugin {ref} is ambiguous")

    def list(self) -> list[dict[str, Any]]:
        return sorted(self.by_id.values(), key=lambda r: r["Name"])

    def _dir(self, pid: str) -> Path:
        return self.root / pid

    def _save(self, rec: dict[str, Any]) -> None:
        tmp = self._dir(rec["Id"]) / "plugin.json.tmp"
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, self._dir(rec["Id"]) / "plugin.json")

    def _new(self, name: str) -> str:
        if any(r["Name"] == name for r in self.by_id.values()):
            raise Conflict(f"plugin {name!r} already exists")
        pid = secrets.token_hex(32)
        (self._dir(pid) / "rootfs").mkdir(parents=True)
        return pid

    def _add(self, pid: str, name: str, ref: str, raw: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
        rec = {"Id": pid, "Name": name, "Enabled": False, "Settings": pconfig.settings(cfg), "PluginReference": ref,
               "Config": cfg, "RawConfig": raw}
        self._save(rec)
        self.by_id[pid] = rec
        return rec

    # --- create, pull, push ---------------------------------------------------------------------------
    async def create(self, name: str, context: BinaryIO | Any) -> dict[str, Any]:
        """`POST /plugins/create?name=`: a tar of `config.json` and `rootfs/` (docker plugin create)."""
        name = canonical_name(name)
        async with self.lock:
            pid = self._new(name)
            try:
                raw, cfg = await asyncio.to_thread(self._unpack_context, pid, context)
                return self._add(pid, name, name, raw, cfg)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, self._dir(pid), True)
                raise

    def _unpack_context(self, pid: str, context: BinaryIO) -> tuple[dict[str, Any], dict[str, Any]]:
        ctx = self._dir(pid) / "context"
        ctx.mkdir()
        apply_tar(context, str(ctx), whiteouts="keep")
        try:
            raw = json.loads((ctx / "config.json").read_text())
        except FileNotFoundError:
            raise InvalidArgument("plugin context: config.json is missing") from None
        except ValueError as e:
            raise InvalidArgument(f"plugin context: config.json: {e}") from None
        cfg = pconfig.normalize(raw)
        if (ctx / "rootfs").is_dir():   # without one, an empty root filesystem (as dockerd)
            os.rmdir(self._dir(pid) / "rootfs")
            os.replace(ctx / "rootfs", self._dir(pid) / "rootfs")
        shutil.rmtree(ctx)
        return raw, cfg

    def privileges(self, remote: str, creds: dict[str, str] | None) -> builtins.list[dict[str, Any]]:
        """`GET /plugins/privileges?remote=` (blocking: a registry round trip)."""
        _, raw, _ = distribution.fetch_config(remote, creds)
        return pconfig.privileges(pconfig.normalize(raw))

    @staticmethod
    async def _granted(remote: str, granted: Any, creds: dict[str, str] | None) -> tuple[str, Any, Any, Any, Any]:
        """(canonical remote, manifest, raw config, its PluginConfig, registry) of a plugin whose
        privileges the client granted exactly."""
        remote_c = canonical_name(remote)
        manifest, raw, reg = await asyncio.to_thread(distribution.fetch_config, remote_c, creds)
        cfg = pconfig.normalize(raw)
        pconfig.check_granted(cfg, granted)
        return remote_c, manifest, raw, cfg, reg

    async def pull(self, remote: str, name: str, granted: Any, creds: dict[str, str] | None,
                   progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """`POST /plugins/pull?remote=&name=`: the plugin's config and rootfs from the registry, the
        privileges the client granted checked against what it asks."""
        name = canonical_name(name or remote)
        remote_c, manifest, raw, cfg, reg = await self._granted(remote, granted, creds)
        async with self.lock:
            pid = self._new(name)
            try:
                await asyncio.to_thread(distribution.fetch_rootfs, reg, manifest, str(self._dir(pid) / "rootfs"),
                                        progress)
                return self._add(pid, name, remote_c, raw, cfg)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, self._dir(pid), True)
                raise

    async def push(self, ref: str, creds: dict[str, str] | None, progress: Callable[[dict[str, Any]], None]) -> str:
        """`POST /plugins/{name}/push`: to the registry its name names."""
        rec = self.get(ref)
        return await asyncio.to_thread(distribution.push, rec["Name"], rec["RawConfig"],
                                       str(self._dir(rec["Id"]) / "rootfs"), creds, progress)

    async def upgrade(self, ref: str, remote: str, granted: Any, creds: dict[str, str] | None,
                      progress: Callable[[dict[str, Any]], None]) -> None:
        """`POST /plugins/{name}/upgrade?remote=`: a disabled plugin gets another version's config
        and rootfs; its name and settings that still apply stay."""
        rec = self.get(ref)
        if rec["Enabled"]:
            raise Conflict(f"plugin must be disabled before upgrading: {rec['Name']}")
        remote_c, manifest, raw, cfg, reg = await self._granted(remote, granted, creds)
        async with self.lock:
            d = self._dir(rec["Id"])
            fresh = d / "rootfs.new"
            await asyncio.to_thread(shutil.rmtree, fresh, True)
            fresh.mkdir()
            try:
                await asyncio.to_thread(distribution.fetch_rootfs, reg, manifest, str(fresh), progress)
            except BaseException:   # the plugin keeps its old version
                await asyncio.to_thread(shutil.rmtree, fresh, True)
                raise
            old = d / "rootfs.old"
            os.replace(d / "rootfs", old)
            os.replace(fresh, d / "rootfs")
            await asyncio.to_thread(shutil.rmtree, old, True)
            env = dict(x.partition("=")[::2] for x in rec["Settings"]["Env"])
            st = pconfig.settings(cfg)
            st["Env"] = [f"{k}={env.get(k, v)}" for k, _, v in (x.partition("=") for x in st["Env"])]
            rec.update(Config=cfg, RawConfig=raw, PluginReference=remote_c, Settings=st)
            self._save(rec)

    # --- settings, enable, disable, remove ----------------------------------------------------------
    def set(self, ref: str, items: Any) -> None:
        rec = self.get(ref)
        if rec["Enabled"]:
            raise Conflict("cannot set on an active plugin, disable plugin before setting")
        rec["Settings"] = pconfig.apply_set(rec["Config"], rec["Settings"], items)
        self._save(rec)

    def socket_dir(self, pid: str) -> Path:
        return self.run / pid

    def socket_of(self, name: str, capability: str) -> str | None:
        """`unix://…` of an enabled plugin of that name implementing `capability`, else None."""
        try:
            rec = self.get(name)
        except (NotFound, InvalidArgument):
            return None
        if not rec["Enabled"] or capability not in rec["Config"]["Interface"]["Types"]:
            return None
        return f"unix://{self.socket_dir(rec['Id']) / rec['Config']['Interface']['Socket']}"

    def rootfs(self, name: str) -> str:
        """Where a plugin's own paths are on the host (its Mountpoints are under it)."""
        return str(self._dir(self.get(name)["Id"]) / "rootfs")

    async def enable(self, ref: str, timeout: float = ENABLE_TIMEOUT) -> None:
        """Start it; enabled once its socket is there (dockerd's rule), else stopped and an error."""
        async with self.lock:
            rec = self.get(ref)
            if rec["Enabled"]:
                raise Conflict(f"plugin {rec['Name']} is already enabled")
            await self._start(rec)
            sock = self.socket_dir(rec["Id"]) / rec["Config"]["Interface"]["Socket"]
            deadline = time.monotonic() + (timeout or ENABLE_TIMEOUT)
            while not sock.exists():
                if time.monotonic() > deadline or not await self._alive(rec["Id"]):
                    await self._stop(rec["Id"])
                    tail = await asyncio.to_thread(self._log_tail, rec["Id"])
                    raise SystemError_(f"plugin {rec['Name']} did not make its socket {sock.name} in time"
                                       + (f": {tail}" if tail else ""))
                await asyncio.sleep(0.05)
            rec["Enabled"] = True
            self._save(rec)

    async def disable(self, ref: str, force: bool = False) -> None:
        async with self.lock:
            rec = self.get(ref)
            if not rec["Enabled"]:
                raise Conflict(f"plugin {rec['Name']} is already disabled")
            users = self.in_use(rec["Name"])
            if users and not force:
                raise Conflict(f"plugin {rec['Name']} is in use by volumes {', '.join(users)}")
            await self._stop(rec["Id"])
            rec["Enabled"] = False
            self._save(rec)

    async def remove(self, ref: str, force: bool = False) -> None:
        async with self.lock:
            rec = self.get(ref)
            if rec["Enabled"]:
                if not force:
                    raise Conflict(f"plugin {rec['Name']} is enabled: disable it first, or force the removal")
                await self._stop(rec["Id"])
            self.by_id.pop(rec["Id"], None)
            await asyncio.to_thread(shutil.rmtree, self._dir(rec["Id"]), True)
            await asyncio.to_thread(shutil.rmtree, self.socket_dir(rec["Id"]), True)

    async def start_enabled(self) -> None:
        """Daemon start: the enabled plugins that do not run are started."""
        for rec in list(self.by_id.values()):
            if rec["Enabled"] and not await self._alive(rec["Id"]):
                try:
                    await self._start(rec)
                except Exception as e:   # noqa: BLE001 - one broken plugin must not stop the daemon
                    log.warning("plugin %s could not be started: %s", rec["Name"], e)

    async def shutdown(self) -> None:
        """Daemon stop: every plugin process ends (they start again with the daemon)."""
        self.shutting_down = True
        for t in list(self._tasks):
            t.cancel()
        for rec in list(self.by_id.values()):
            if rec["Enabled"]:
                await self._stop(rec["Id"])

    # --- the plugin's container -------------------------------------------------------------------------
    def _spec(self, rec: dict[str, Any]) -> dict[str, Any]:
        cfg, st = rec["Config"], rec["Settings"]
        hc: dict[str, Any] = {
            "NetworkMode": "host" if cfg["Network"]["Type"] == "host" else "none",
            "IpcMode": "host" if cfg["IpcHost"] else "private", "PidMode": "host" if cfg["PidHost"] else "",
            "CapAdd": cfg["Linux"]["Capabilities"] or None, "CgroupnsMode": "private",
            "Devices": [{"PathOnHost": d["Path"], "PathInContainer": d["Path"], "CgroupPermissions": "rwm"}
                        for d in st.get("Devices") or [] if d.get("Path")] or None,
        }
        if cfg["Linux"]["AllowAllDevices"]:
            hc["DeviceCgroupRules"] = ["a *:* rwm"]
        mounts = [{"destination": "/run/docker/plugins", "type": "bind", "source": str(self.socket_dir(rec["Id"])),
                   "options": ["rbind", "rprivate"]}]
        for m in st["Mounts"]:
            if m["Type"] == "tmpfs":
                mounts.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                               "options": list(m["Options"] or ["nosuid", "nodev"])})
            elif m.get("Source"):
                mounts.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                               "options": ["rbind", "rprivate", *m["Options"]]})
        si = spec.SpecInput(cid=rec["Id"], rootfs=str(self._dir(rec["Id"]) / "rootfs"),
                            args=[*cfg["Entrypoint"], *st["Args"]], env=create.process_env(list(st["Env"])),
                            cwd=cfg["WorkDir"] or "/",
                            uid=cfg["User"]["UID"], gid=cfg["User"]["GID"], additional_gids=[],
                            hostname=rec["Id"][:12], domainname="", files={}, host_config=hc,
                            cgroup_parent=self.cgroup_parent, mounts=mounts)
        return spec.build(si)

    async def _start(self, rec: dict[str, Any]) -> None:
        pid = rec["Id"]
        bundle = self._dir(pid) / "bundle"
        sockets = self.socket_dir(pid)
        await asyncio.to_thread(shutil.rmtree, sockets, True)
        sockets.mkdir(parents=True, mode=0o700)
        bundle.mkdir(exist_ok=True)
        (bundle / "exit.json").unlink(missing_ok=True)
        oci = await asyncio.to_thread(self._spec, rec)
        (bundle / "config.json").write_text(json.dumps(oci))
        lc = {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
        log_spec = logconfig.writer_spec(lc, str(self._dir(pid) / "plugin.log"), {}, [],
                                         {"ID": pid[:12], "FullID": pid, "Name": rec["Name"]})
        try:
            await self.monitor.start({"id": pid, "bundle": str(bundle), "runtime": self.runtime, "log": log_spec,
                                      "exit_file": str(bundle / "exit.json"), "cgroup": oci["linux"]["cgroupsPath"],
                                      "terminal": False, "stdin": False, "stdin_once": False, "console_size": None})
        except BaseException:
            await self._stop(pid)
            raise

    async def _alive(self, pid: str) -> bool:
        listing = await self.monitor.request({"op": "list"})
        return any(x.get("id") == pid and x.get("running") for x in listing.get("containers") or [])

    def on_exit(self, ev: dict[str, Any]) -> None:
        """A plugin's process ended: an enabled plugin nobody is stopping is started again, as
        dockerd restarts it (waiting 0.1 s, doubling to a minute after each exit)."""
        rec = self.by_id.get(str(ev.get("id")))
        if rec is None or not rec["Enabled"] or rec["Id"] in self.stopping or self.shutting_down:
            return
        n = self.restarts[rec["Id"]] = self.restarts.get(rec["Id"], 0) + 1
        delay = min(60.0, 0.1 * 2 ** (n - 1))
        log.warning("plugin %s exited (code %s): starting it again in %.1fs", rec["Name"], ev.get("exit_code"), delay)

        async def again() -> None:
            await asyncio.sleep(delay)
            async with self.lock:
                if rec["Enabled"] and rec["Id"] in self.by_id and rec["Id"] not in self.stopping \
                        and not self.shutting_down and not await self._alive(rec["Id"]):
                    try:
                        await self._start(rec)
                    except Exception as e:   # noqa: BLE001 - logged; the next exit tries again
                        log.warning("plugin %s could not be started again: %s", rec["Name"], e)
        t = asyncio.ensure_future(again())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _stop(self, pid: str) -> None:
        """SIGTERM, then SIGKILL after 10 s (as dockerd stops a plugin), then the runtime's delete."""
        self.stopping.add(pid)
        try:
            await self._stop_process(pid)
        finally:
            self.stopping.discard(pid)
            self.restarts.pop(pid, None)

    async def _stop_process(self, pid: str) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            await self.monitor.runtime(self.runtime, ["kill", pid, str(int(sig))])
            deadline = time.monotonic() + wait
            while await self._alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the monitor
                await asyncio.sleep(0.05)
            if not await self._alive(pid):
                break
        await self.monitor.runtime(self.runtime, ["delete", "--force", pid])
        try:
            await self.monitor.request({"op": "forget", "id": pid})
        except Exception:   # noqa: BLE001 - nothing to forget
            pass
        await asyncio.to_thread(shutil.rmtree, self.socket_dir(pid), True)

    def _log_tail(self, pid: str) -> str:
        try:
            lines = (self._dir(pid) / "plugin.log").read_text().splitlines()[-3:]
        except OSError:
            return ""
        return " | ".join(json.loads(x).get("log", "").strip() for x in lines if x.strip())

    # --- the API's view ---------------------------------------------------------------------------------
    @staticmethod
    def view(rec: dict[str, Any]) -> dict[str, Any]:
        return {"Id": rec["Id"], "Name": rec["Name"], "Enabled": rec["Enabled"], "Settings": rec["Settings"],
                "PluginReference": rec["PluginReference"], "Config": rec["Config"]}
