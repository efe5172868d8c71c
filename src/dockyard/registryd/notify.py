"""Webhook notifications in distribution's envelope (`application/vnd.docker.distribution.events.v1+json`):
push, pull, delete and mount events, queued per endpoint and sent in order, retried with back-off
until the endpoint takes them (a bounded queue: the oldest are dropped, and logged, past 10 000)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from .config import Config, duration

log = logging.getLogger("dockyard.registry.notify")
MEDIA = "application/vnd.docker.distribution.events.v1+json"
QUEUE_MAX = 10_000


class Endpoint:
    """One webhook: its queue and its sender task."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.name = spec.get("name") or spec["url"]
        self.url = spec["url"]
        self.headers = {k: (", ".join(v) if isinstance(v, list) else str(v)) for k, v in (spec.get("headers") or {}).items()}
        self.timeout = duration(spec.get("timeout", "1s"))
        self.backoff = duration(spec.get("backoff", "1s"))
        self.threshold = int(spec.get("threshold", 10))     # failures in a row retried at once, then back-off
        ignore = spec.get("ignore") or {}
        self.ignored_media = set(spec.get("ignoredmediatypes") or []) | set(ignore.get("mediatypes") or [])
        self.ignored_actions = set(ignore.get("actions") or [])
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.task: asyncio.Task[None] | None = None
        self.sent = self.failures = self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        if event["action"] in self.ignored_actions or event["target"].get("mediaType") in self.ignored_media:
            return
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.task = asyncio.ensure_future(self._send_loop())
        if self.queue.qsize() >= QUEUE_MAX:
            self.queue.get_nowait()
            self.dropped += 1
            log.warning("notifications to %s: queue full, oldest event dropped", self.name)
        self.queue.put_nowait(event)

    async def _send_loop(self) -> None:
        assert self.queue is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            while True:
                batch = [await self.queue.get()]
                while not self.queue.empty() and len(batch) < 100:
                    batch.append(self.queue.get_nowait())
                delay, failed = self.backoff, 0
                while True:
                    try:
                        async with session.post(self.url, json={"events": batch},
                                                headers={**self.headers, "Content-Type": MEDIA}) as r:
                            if 200 <= r.status < 400:
                                self.sent += len(batch)
                                break
                            why = f"HTTP {r.status}"
                    except (TimeoutError, aiohttp.ClientError, OSError) as e:
                        why = str(e) or type(e).__name__
                    self.failures += 1
                    failed += 1
                    if failed < self.threshold:
                        await asyncio.sleep(0.05)
                        continue
                    log.warning("notifications to %s failed %d times (%s); retrying in %.1f s", self.name, failed, why,
                                delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60.0)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class Notifier:
    """Every configured endpoint."""

    def __init__(self, config: Config) -> None:
        self.endpoints = [Endpoint(e) for e in config.get("notifications.endpoints") or [] if not e.get("disabled")]
        self.instance = str(uuid.uuid4())
        self.source = f"{socket.gethostname()}:{str(config.get('http.addr', ':5000')).rpartition(':')[2]}"

    def emit(self, action: str, request: web.Request, repo: str, target: dict[str, Any]) -> None:
        ident = request.get("identity")
        t: dict[str, Any] = {"repository": repo}
        if target.get("media_type"):
            t["mediaType"] = target["media_type"]
        if target.get("digest"):
            t["digest"] = target["digest"]
            kind = "manifests" if request.get("route") == "manifest" else "blobs"
            t["url"] = f"{request.scheme}://{request.host}/v2/{repo}/{kind}/{target['digest']}"
        if target.get("size") is not None:
            t["size"] = t["length"] = target["size"]
        if target.get("tag"):
            t["tag"] = target["tag"]
        if target.get("source"):
            t["fromRepository"] = target["source"]
        event = {"id": str(uuid.uuid4()), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
                 "action": action, "target": t,
                 "request": {"id": request.get("id", ""), "addr": request.remote or "", "host": request.host,
                             "method": request.method, "useragent": request.headers.get("User-Agent", "")},
                 "actor": {"name": ident.name if ident else ""},
                 "source": {"addr": self.source, "instanceID": self.instance}}
        for e in self.endpoints:
            e.offer(event)

    async def close(self) -> None:
        for e in self.endpoints:
            await e.close()
