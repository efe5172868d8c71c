"""Human units as Docker prints them (go-units): durations and decimal sizes. Pure functions,
shared by the API (container status text) and the CLI."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def human_size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision (decimal units): 1982488 → '1.98MB'."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    s = f"{n:.{precision}g}"
    if "e" in s:
        s = f"{n:.0f}"
    return s + units[i]


def bytes_size(n: float) -> str:
    """go-units BytesSize (binary units): 1048576 → '1MiB'."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    n = float(n)
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.4g}{units[i]}"


def unix_seconds(rfc: str) -> int:
    """RFC 3339 → whole unix seconds, 0 for an unparsable value (Docker's list `Created`)."""
    try:
        return int(rfc3339_to_ts(rfc))
    except ValueError:
        return 0


def parse_time(v: str) -> float:
    """Docker's `since`/`until`: unix seconds (with fraction), RFC 3339, or a duration like 10m."""
    if not v:
        return 0.0
    try:
        return float(v)
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600}
    if v[-1] in units and v[:-1].replace(".", "", 1).isdigit():
        import time
        return time.time() - float(v[:-1]) * units[v[-1]]
    try:
        return rfc3339_to_ts(v)
    except ValueError:
        raise ValueError(f"invalid time value {v!r}") from None


def rfc3339_to_ts(s: str) -> float:
    """RFC 3339 (nanoseconds allowed) → unix seconds."""
    s = s.strip()
    frac = 0.0
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float("0." + digits) if digits else 0.0
        s = head + rest
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    import datetime as _dt  # here: the CLI imports this module on every run
    d = _dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    return d.timestamp() + frac


def ram_in_bytes(s: str) -> int:
    """go-units RAMInBytes (binary multiples, case-insensitive): '10m' → 10485760, '512k', '1g', '100'."""
    import re
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", s, re.IGNORECASE)
    if not m:
        raise ValueError(f"invalid size: '{s}'")
    mult = 1024 ** "bkmgtp".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * mult)


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
             "h": 3_600_000_000_000}


def go_duration(s: str) -> int:
    """Go's time.ParseDuration (`1m30s`, `500ms`, `2h`, `0`) in nanoseconds."""
    import re
    t = s.strip()
    neg = t.startswith("-")
    t = t.lstrip("+-")
    if t == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", t)
    if not t or "".join(a + b for a, b in parts) != t:
        raise ValueError(f"time: invalid duration \"{s}\"")
    n = round(sum(float(a) * _GO_UNITS[b] for a, b in parts))
    return -n if neg else n
