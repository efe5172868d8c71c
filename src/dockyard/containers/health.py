"""Healthchecks, as dockerd runs them: `Config.Healthcheck` (merged with the image's HEALTHCHECK)
probed by an exec in the container every interval; `State.Health` keeps the status (`starting`,
`healthy`, `unhealthy`), the failing streak and the last five probes; a change of status is a
`health_status: …` event.

Beyond Docker (moby #28400): the label `dockyard.health-on-failure=restart|stop|kill` (which
`dockyard run --health-on-failure` sets, so any client can ask) acts when a container turns
unhealthy; the action's events carry `healthOnFailure`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from ..errors import EngineError, InvalidArgument
from ..images.service import now_iso

if TYPE_CHECKING:
    from .execs import ExecService
    from .model import Container
    from .service import ContainerService

log = logging.getLogger(__name__)
SECOND = 1_000_000_000
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0, "StartInterval": 5 * SECOND}
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000   # 1 ms, dockerd's minimum
KEEP = 5                   # probes kept in State.Health.Log
MAX_OUTPUT = 4096          # bytes of a probe's output kept
LABEL = "dockyard.health-on-failure"
ACTIONS = ("none", "restart", "stop", "kill")
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def validate(hc: Any, warnings: list[str] | None = None) -> dict[str, Any] | None:
    """A Healthcheck as given (400 for what dockerd refuses). dockerd takes any Test at create
    and, for a type it does not know, runs no probe; here that is said in `warnings`."""
    if hc is None:
        return None
    if not isinstance(hc, dict):
        raise InvalidArgument("Healthcheck must be an object")
    for k in hc:
        if k not in ("Test", *_DURATIONS, "Retries"):
            raise InvalidArgument(f"unknown Healthcheck field {k!r}")
    test = hc.get("Test")
    if test is not None:
        if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
            raise InvalidArgument("Healthcheck.Test must be a list of strings")
        if test and test[0] not in ("NONE", "CMD", "CMD-SHELL") and warnings is not None:
            warnings.append(f"Healthcheck.Test: unknown type {test[0]!r} (expected CMD, CMD-SHELL or NONE): "
                            "no health check will run")
        if test and test[0] in ("CMD", "CMD-SHELL") and len(test) < 2 and warnings is not None:
            warnings.append(f"Healthcheck.Test {test[0]} has no command: every probe will fail")
    for k in _DURATIONS:
        v = hc.get(k)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool):
            raise InvalidArgument(f"Healthcheck.{k} must be an integer (nanoseconds)")
        if v != 0 and v < MIN_DURATION:
            raise InvalidArgument(f"{k} in Healthcheck cannot be less than 1ms")
    r = hc.get("Retries")
    if r is not None and (not isinstance(r, int) or isinstance(r, bool) or r < 0):
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    # as dockerd stores it (Go's omitempty): unset, empty and zero values are left out
    return {k: v for k, v in hc.items() if v}


def merge(user: Any, image: Any, warnings: list[str] | None = None) -> dict[str, Any] | None:
    """The container's Healthcheck over the image's, as dockerd merges them: an empty Test takes
    the image's, and so does every zero or unset duration and retry count."""
    mine = validate(user, warnings)
    base = image if isinstance(image, dict) else None
    if mine is None:
        return dict(base) if base else None
    if base:
        if not mine.get("Test"):
            mine["Test"] = base.get("Test")
        for k in (*_DURATIONS, "Retries"):
            if not mine.get(k) and base.get(k):
                mine[k] = base[k]
    return mine


def action_of(labels: dict[str, str]) -> str:
    """The health-on-failure action a container's labels ask for (400 for an unknown one)."""
    a = labels.get(LABEL, "none") or "none"
    if a not in ACTIONS:
        raise InvalidArgument(f"invalid {LABEL} label {a!r}: want one of {', '.join(ACTIONS)}")
    return a


def probe_argv(hc: dict[str, Any] | None, shell: list[str] | None) -> list[str] | None:
    """What a probe runs (None: no healthcheck)."""
    test = (hc or {}).get("Test") or []
    if not test or test[0] not in ("CMD", "CMD-SHELL"):   # NONE, or a type dockerd does not probe either
        return None
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), " ".join(test[1:])]
    return list(test[1:])


def _seconds(hc: dict[str, Any], k: str) -> float:
    return (hc.get(k) or DEFAULTS[k]) / SECOND


def _human(s: float) -> str:
    """A duration as Go prints one (`300ms`, `30s`, `1m30s`)."""
    if s < 1:
        return f"{s * 1000:g}ms"
    whole = int(s)
    if whole != s or whole < 60:
        return f"{s:g}s"
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    return (f"{h}h" if h else "") + f"{m}m{sec}s"


class HealthMonitor:
    """One probing task per running container that has a healthcheck."""

    def __init__(self, containers: ContainerService, execs: ExecService) -> None:
        self.containers, self.execs = containers, execs
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.actions: set[asyncio.Task[None]] = set()

    def on_event(self, action: str, c: Container) -> None:
        """Follow the container's lifecycle events."""
        if action == "start":
            self.watch(c, fresh=True)
        elif action in ("die", "destroy"):
            self.unwatch(c.id)

    def resume(self) -> None:
        """After the daemon (re)starts: probe the running containers again, their status kept."""
        for c in self.containers.by_id.values():
            if c.state.running:
                self.watch(c, fresh=False)

    def watch(self, c: Container, fresh: bool) -> None:
        self.unwatch(c.id)
        hc = c.cfg.config.get("Healthcheck")
        argv = probe_argv(hc, c.cfg.config.get("Shell"))
        if argv is None:
            if c.state.health is not None:
                c.state.health = None
            return
        if fresh or c.state.health is None:
            c.state.health = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.tasks[c.id] = asyncio.get_running_loop().create_task(self._loop(c, dict(hc or {}), argv))

    def unwatch(self, cid: str) -> None:
        t = self.tasks.pop(cid, None)
        if t is not None:
            t.cancel()

    def stop_all(self) -> None:
        for cid in list(self.tasks):
            self.unwatch(cid)

    async def _loop(self, c: Container, hc: dict[str, Any], argv: list[str]) -> None:
        loop = asyncio.get_running_loop()
        begun = loop.time()
        start_period = _seconds(hc, "StartPeriod") if hc.get("StartPeriod") else 0.0
        try:
            while True:
                starting = (c.state.health or {}).get("Status") == "starting"
                early = loop.time() - begun < start_period
                wait = _seconds(hc, "StartInterval") if (early and starting and hc.get("StartInterval")) else \
                    _seconds(hc, "Interval")
                await asyncio.sleep(wait)
                if not c.state.running or c.removed:
                    return
                if c.state.status.value == "paused":
                    continue
                early = loop.time() - begun < start_period
                entry = await self._probe(c, hc, argv)
                if entry is None:
                    return
                self._record(c, hc, entry, early)
        except asyncio.CancelledError:
            raise
        except Exception:   # noqa: BLE001 - a probe's trouble never takes the daemon down
            log.exception("healthcheck of %s", c.id[:12])

    async def _probe(self, c: Container, hc: dict[str, Any], argv: list[str]) -> dict[str, Any] | None:
        timeout = _seconds(hc, "Timeout")
        start = now_iso()
        out = bytearray()
        try:
            e = self.execs.create(c.id, {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
            _, frames = await self.execs.start(e.id)
        except EngineError as err:
            if not c.state.running:
                return None
            return {"Start": start, "End": now_iso(), "ExitCode": -1, "Output": err.message}

        async def collect() -> None:
            async for _, data in frames:
                if len(out) < MAX_OUTPUT:
                    out.extend(data[: MAX_OUTPUT - len(out)])
        task = asyncio.ensure_future(collect())
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            if e.pid:
                try:
                    os.kill(e.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                await asyncio.wait_for(task, 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
            return {"Start": start, "End": now_iso(), "ExitCode": -1,
                    "Output": f"Health check exceeded timeout ({_human(timeout)})"}
        except asyncio.CancelledError:
            task.cancel()
            raise
        code = e.exit_code if e.exit_code is not None else -1
        return {"Start": start, "End": now_iso(), "ExitCode": code, "Output": out.decode("utf-8", "replace")}

    def _record(self, c: Container, hc: dict[str, Any], entry: dict[str, Any], early: bool) -> None:
        h = c.state.health
        if h is None:
            return
        h["Log"] = (h["Log"] + [entry])[-KEEP:]
        old = h["Status"]
        if entry["ExitCode"] == 0:
            h["FailingStreak"] = 0
            h["Status"] = "healthy"
        elif not (early and old == "starting"):   # failures in the start period do not count
            h["FailingStreak"] += 1
            if h["FailingStreak"] >= (hc.get("Retries") or DEFAULT_RETRIES):
                h["Status"] = "unhealthy"
        self.containers._persist(c)
        if h["Status"] != old:
            self.containers.on_event(f"health_status: {h['Status']}", c, {})
            if h["Status"] == "unhealthy":
                self._act(c)

    def _act(self, c: Container) -> None:
        action = action_of(c.cfg.config.get("Labels") or {})
        if action == "none":
            return
        log.warning("%s is unhealthy: %s (%s)", c.id[:12], action, LABEL)
        t = asyncio.get_running_loop().create_task(self._do(c, action))
        self.actions.add(t)
        t.add_done_callback(self.actions.discard)

    async def _do(self, c: Container, action: str) -> None:
        svc = self.containers
        svc.on_event("health_on_failure", c, {"healthOnFailure": action})
        try:
            if action == "restart":
                await svc.restart(c.id)
            elif action == "stop":
                await svc.stop(c.id)
            else:
                await svc.kill(c.id, "SIGKILL")
        except EngineError as err:
            log.warning("health-on-failure %s of %s: %s", action, c.id[:12], err.message)
