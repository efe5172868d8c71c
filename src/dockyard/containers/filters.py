"""`docker ps --filter`: id, name, label, status, exited, health, ancestor, before, since."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from ..images.filters import label_match
from .model import Container, Status

if TYPE_CHECKING:
    from ..images.service import ImageService

KNOWN = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "health", "network",
         "volume", "publish", "expose", "isolation", "is-task"}
STATUSES = {s.value for s in Status}


def build(filters: dict[str, list[str]], lookup: Callable[[str], Container],
          images: "ImageService") -> Callable[[Container], bool]:
    """A predicate for the given filters (validated up front)."""
    for k in filters:
        if k not in KNOWN:
            raise InvalidArgument(f"invalid filter '{k}'")
    for s in filters.get("status", []):
        if s not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={s}'")
    exited = []
    for e in filters.get("exited", []):
        try:
            exited.append(int(e))
        except ValueError:
            raise InvalidArgument(f"invalid filter 'exited={e}'") from None
    ancestors: set[str] = set()
    for a in filters.get("ancestor", []):
        try:
            ancestors.add(images.resolve(a).id)
        except Exception:  # noqa: BLE001 - an unknown ancestor matches nothing, as in Docker
            ancestors.add("-")
    for h in filters.get("health", []):
        if h not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidArgument(f"Unrecognised filter value for health: {h}")
    before = [lookup(b).cfg.created for b in filters.get("before", [])]
    since = [lookup(s).cfg.created for s in filters.get("since", [])]

    def pred(c: Container) -> bool:
        if "id" in filters and not any(c.id.startswith(v) for v in filters["id"]):
            return False
        if "name" in filters and not any(re.search(v, c.name) for v in filters["name"]):
            return False
        if "label" in filters and not label_match(c.cfg.config.get("Labels") or {}, filters["label"]):
            return False
        if "status" in filters and c.state.status.value not in filters["status"]:
            return False
        if "health" in filters and ((c.state.health or {}).get("Status") or "none") not in filters["health"]:
            return False
        if exited and (c.state.status != Status.EXITED or c.state.exit_code not in exited):
            return False
        if ancestors and c.cfg.image_id not in ancestors:
            return False
        if before and not all(c.cfg.created < b for b in before):
            return False
        if since and not all(c.cfg.created > s for s in since):
            return False
        return True

    return pred
