"""The aiohttp application: version prefixes and negotiation, headers, error mapping."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from .. import API_VERSION, MIN_API_VERSION, __version__
from ..errors import EngineError, InvalidArgument, describe
from .status import status_for

log = logging.getLogger("dockyard.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_VERSION_RE = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def _v(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split("."))


class Routes:
    """Collects (method, path, handler); each path is served with and without `/v1.NN`."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        """Register one route."""
        self.items.append((method, path, handler))

    def install(self, app: web.Application) -> None:
        """Add every route to the app."""
        for method, path, handler in self.items:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, r"/v{api_version:[0-9]+\.[0-9]+}" + path, handler)


def error_response(status: int, message: str) -> web.Response:
    """Docker's error shape."""
    # exactly "application/json" (no charset): the docker CLI shows the raw body otherwise
    return web.Response(status=status, body=(json.dumps({"message": message}) + "\n").encode(),
                        content_type="application/json")


@web.middleware
async def errors_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map engine errors (and anything unexpected) to `{"message": ...}` responses."""
    try:
        v = request.match_info.get("api_version")
        if v:
            if _v(v) > _v(API_VERSION):
                raise InvalidArgument(f"client version {v} is too new. Maximum supported API version is {API_VERSION}")
            if _v(v) < _v(MIN_API_VERSION):
                raise InvalidArgument(f"client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                                      "please upgrade your client to a newer version")
        return await handler(request)
    except EngineError as e:
        code = status_for(e)
        if code == 304:
            return web.Response(status=304)
        return error_response(code, e.message)
    except web.HTTPException as e:
        if e.status == 404:
            return error_response(404, "page not found")
        if e.status == 405:
            return error_response(405, "method not allowed")
        raise
    except ConnectionError as e:
        # a client that leaves mid-stream (events, logs, attach, wait, stats) is normal: one line,
        # no traceback; the answer below is never sent (aiohttp drops it on the closed transport)
        log.info("client went away during %s %s (%s)", request.method, request.path, e)
        return web.Response(status=499)
    except Exception as e:  # noqa: BLE001 - the daemon answers 500, never dies
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, describe(e))


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Dockyard/{__version__} (linux)"


def make_app(routes: Routes) -> web.Application:
    """The application for a route table."""
    app = web.Application(middlewares=[errors_mw], client_max_size=1 << 40)
    app.on_response_prepare.append(_headers)
    routes.install(app)
    return app
