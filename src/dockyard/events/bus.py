"""The event bus: Docker's event records, a bounded history for `since`, live subscribers.

Publishing is safe from any thread (image loads run in worker threads): records are handed to
the event loop, which keeps the order they were published in.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

HISTORY = 1024


class EventBus:
    """Publish/subscribe over Docker-shaped event records."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, keep: int = HISTORY) -> None:
        self.loop = loop
        self.history: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=keep)
        self.subs: set[asyncio.Queue[tuple[int, dict[str, Any]]]] = set()
        self.seq = itertools.count(1)
        self.thread = threading.get_ident()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the subscribers (set when the daemon starts)."""
        self.loop, self.thread = loop, threading.get_ident()

    def publish(self, typ: str, action: str, actor_id: str, attrs: dict[str, str]) -> None:
        """Record an event (Docker's shape, with the old `status`/`id`/`from` fields)."""
        now = time.time_ns()
        ev: dict[str, Any] = {}
        if typ in ("container", "image"):
            ev["status"], ev["id"] = action, actor_id
            if typ == "container" and "image" in attrs:
                ev["from"] = attrs["image"]
        ev.update({"Type": typ, "Action": action, "Actor": {"ID": actor_id, "Attributes": dict(attrs)},
                   "scope": "local", "time": now // 1_000_000_000, "timeNano": now})
        if self.loop is None or threading.get_ident() == self.thread:
            self._deliver(ev)
        else:
            self.loop.call_soon_threadsafe(self._deliver, ev)

    def _deliver(self, ev: dict[str, Any]) -> None:
        item = (next(self.seq), ev)
        self.history.append(item)
        for q in list(self.subs):
            q.put_nowait(item)

    async def stream(self, since: float | None, until: float | None) -> AsyncIterator[dict[str, Any]]:
        """Past events from `since` (if given), then live ones until `until` (if given)."""
        q: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self.subs.add(q)
        try:
            last = 0
            if since is not None:
                for seq, ev in list(self.history):
                    t = ev["timeNano"] / 1e9
                    if t >= since and (until is None or t <= until):
                        last = seq
                        yield ev
            while True:
                if until is not None:
                    left = until - time.time()
                    if left <= 0:
                        return
                    try:
                        seq, ev = await asyncio.wait_for(q.get(), left)
                    except TimeoutError:
                        return
                else:
                    seq, ev = await q.get()
                if seq <= last:
                    continue
                if until is not None and ev["timeNano"] / 1e9 > until:
                    return
                yield ev
        finally:
            self.subs.discard(q)
