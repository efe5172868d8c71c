"""`docker images --filter`: dangling, label, reference, before, since."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from .. import units
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from .service import Image, ImageService

KNOWN = {"dangling", "label", "reference", "before", "since", "until"}


def label_match(labels: dict[str, str], wanted: list[str]) -> bool:
    """All of `key` / `key=value` / `key!=value` hold."""
    for w in wanted:
        if "!=" in w:
            k, v = w.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in w:
            k, v = w.split("=", 1)
            if labels.get(k) != v:
                return False
        elif w not in labels:
            return False
    return True


def labels_pass(labels: dict[str, str], f: dict[str, list[str]]) -> bool:
    """The `label` filters all hold and no `label!` one does (prune's filters)."""
    return label_match(labels, f.get("label") or []) and \
        not any(label_match(labels, [x]) for x in f.get("label!") or [])


def _ref_match(img: "Image", patterns: list[str]) -> bool:
    for pat in patterns:
        for t in img.tags:
            repo = t.rsplit(":", 1)[0]
            if fnmatch.fnmatchcase(t, pat) or fnmatch.fnmatchcase(repo, pat) or \
                    (":" not in pat and fnmatch.fnmatchcase(repo, pat)):
                return True
    return False


def matches(img: "Image", filters: dict[str, list[str]]) -> bool:
    """Filters that need no other image."""
    for k, vals in filters.items():
        if k not in KNOWN:
            raise InvalidArgument(f"invalid filter '{k}'")
        if k == "dangling":
            want = vals[-1].lower()
            if want not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={vals[-1]}'")
            if (want in ("true", "1")) != (not img.tags):
                return False
        elif k == "label":
            if not label_match(img.container_config.get("Labels") or {}, vals):
                return False
        elif k == "reference":
            if not _ref_match(img, vals):
                return False
        elif k == "until":
            try:
                limit = min(units.parse_time(v) for v in vals)
                created = units.rfc3339_to_ts(img.created)
            except ValueError as e:
                raise InvalidArgument(f"invalid filter 'until': {e}") from None
            if created >= limit:
                return False
    return True


def apply(svc: "ImageService", images: list["Image"], filters: dict[str, list[str]]) -> list["Image"]:
    """Filter a list of images."""
    out = [i for i in images if matches(i, {k: v for k, v in filters.items() if k not in ("before", "since")})]
    for key in ("before", "since"):
        for v in filters.get(key, []):
            ref = svc.resolve(v)
            out = [i for i in out if (i.created < ref.created if key == "before" else i.created > ref.created)]
    return out
