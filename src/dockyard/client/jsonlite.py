"""JSON for the CLI's start-up path, on the C accelerator `_json` alone.

`import json` costs ~6 ms on every CLI start here (json.decoder imports `re`, which imports `enum`;
measured with `python -X importtime`); the C scanner and encoder that json itself uses need neither.
`loads` and `dumps` behave as json's (strict strings, NaN/Infinity accepted, `ValueError` on bad
input); `pretty` prints what `json.dumps(obj, indent=4, ensure_ascii=False)` prints."""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What the C scanner reads of a decoder (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context())   # type: ignore[arg-type]
_WS = " \t\n\r"


class DecodeError(ValueError):
    """Not JSON (a ValueError, as json.JSONDecodeError is)."""


def loads(s: str | bytes | bytearray) -> Any:
    if isinstance(s, (bytes, bytearray)):
        s = bytes(s).decode("utf-8-sig" if s[:3] == b"\xef\xbb\xbf" else "utf-8")
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = _scan(s, i)
    except StopIteration as e:
        raise DecodeError(f"Expecting value: char {e.value}") from None
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        raise DecodeError(f"Extra data: char {end}")
    return obj


def _refuse(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o in (float("inf"), float("-inf")):
        return "Infinity" if o > 0 else "-Infinity"
    return float.__repr__(o)


_encode = _json.make_encoder({}, _refuse, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)


def dumps(obj: Any) -> str:
    """json.dumps(obj) (ASCII, `, ` and `: ` separators)."""
    return "".join(_encode(obj, 0))


def pretty(obj: Any, level: int = 0) -> str:
    """json.dumps(obj, indent=4, ensure_ascii=False)."""
    if isinstance(obj, str):
        return _json.encode_basestring(obj)
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return _float(obj)
    inner = "\n" + "    " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = (inner + _key(k) + ": " + pretty(v, level + 1) for k, v in obj.items())
        return "{" + ",".join(items) + "\n" + "    " * level + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        return "[" + ",".join(inner + pretty(v, level + 1) for v in obj) + "\n" + "    " * level + "]"
    return pretty(_refuse(obj), level)


def _key(k: Any) -> str:
    if isinstance(k, str):
        return _json.encode_basestring(k)
    if k is True or k is False or k is None:
        return '"' + pretty(k) + '"'
    if isinstance(k, (int, float)):
        return '"' + pretty(k) + '"'
    return str(_refuse(k))
