"""`GET /events` filters: values of one key are alternatives, keys must all match."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument

KEYS = {"type", "event", "container", "image", "label", "scope", "network"}


def check(filters: dict[str, list[str]]) -> None:
    """400 for keys Docker does not know (or we do not serve)."""
    for k in filters:
        if k not in KEYS:
            raise InvalidArgument(f"invalid filter '{k}'")


def matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Whether an event passes every filter."""
    attrs = ev["Actor"]["Attributes"]
    for key, wanted in filters.items():
        if not wanted:
            continue
        if key == "type":
            ok = ev["Type"] in wanted
        elif key == "event":
            ok = ev["Action"] in wanted or ev["Action"].split(":")[0] in wanted
        elif key == "scope":
            ok = ev.get("scope") in wanted
        elif key == "container":
            ok = ev["Type"] == "container" and any(
                ev["Actor"]["ID"].startswith(w) or attrs.get("name") == w for w in wanted)
        elif key == "network":
            ok = ev["Type"] == "network" and any(
                ev["Actor"]["ID"].startswith(w) or attrs.get("name") == w for w in wanted)
        elif key == "image":
            ok = any(w in (attrs.get("image"), attrs.get("name"), ev["Actor"]["ID"]) for w in wanted) or (
                ev["Type"] == "image" and any(ev["Actor"]["ID"].startswith(w) for w in wanted))
        else:  # label: key or key=value
            ok = any(attrs.get(w.split("=", 1)[0]) == w.split("=", 1)[1] if "=" in w else w in attrs for w in wanted)
        if not ok:
            return False
    return True
