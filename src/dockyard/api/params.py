"""Query-string and body parsing shared by the routers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..errors import InvalidArgument


def qbool(req: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: 1/true/True/yes → True; 0/false/'' → False."""
    v = req.query.get(name)
    if v is None:
        return default
    return v.lower() not in ("", "0", "false", "no")


def qint(req: web.Request, name: str, default: int | None = None) -> int | None:
    """An integer query value, 400 if malformed."""
    v = req.query.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def window(req: web.Request) -> tuple[int, int]:
    """`h` and `w` of a resize (both required, as dockerd)."""
    h, w = qint(req, "h"), qint(req, "w")
    if h is None or w is None:
        raise InvalidArgument('strconv.Atoi: parsing "": invalid syntax')
    return h, w


def filters(req: web.Request, known: set[str] | None = None) -> dict[str, list[str]]:
    """`filters` as JSON: {"k": ["v"]} or the old {"k": {"v": true}}; a key not in `known` (when
    given) is dockerd's "invalid filter"."""
    raw = req.query.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidArgument(f"invalid filter: {raw!r} is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filter: must be a JSON object")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        else:
            out[k] = [str(v)]
    bad = sorted(set(out) - known) if known is not None else []
    if bad:
        raise InvalidArgument(f"invalid filter '{bad[0]}'")
    return out


async def json_body(req: web.Request, required: bool = True) -> Any:
    """The JSON body, 400 with a clear message if malformed."""
    data = await req.read()
    if not data:
        if required:
            raise InvalidArgument("request body is required")
        return None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid JSON: {e}") from None
