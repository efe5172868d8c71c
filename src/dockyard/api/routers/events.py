"""`GET /events`: past events from `since`, then live ones until `until` or the client leaves."""

from __future__ import annotations

import json

from aiohttp import web

from ... import units
from ...errors import InvalidArgument
from ...events import filters as event_filters
from ...events.bus import EventBus
from .. import params
from ..server import Routes


class EventsRouter:
    """Route table for the event stream."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def routes(self, r: Routes) -> None:
        """Register."""
        r.add("GET", "/events", self.events)

    async def events(self, req: web.Request) -> web.StreamResponse:
        """One JSON object a line, flushed as each event happens."""
        f = params.filters(req)
        event_filters.check(f)
        try:
            since = units.parse_time(req.query["since"]) if req.query.get("since") else None
            until = units.parse_time(req.query["until"]) if req.query.get("until") else None
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(req)
        async for ev in self.bus.stream(since, until):
            if event_filters.matches(ev, f):
                await resp.write((json.dumps(ev) + "\n").encode())
        await resp.write_eof()
        return resp
