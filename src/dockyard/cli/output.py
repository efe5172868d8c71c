"""Tables as Docker prints them (Go tabwriter: min width 10, padding 3) and `--format`."""

from __future__ import annotations

import sys

from ..client import jsonlite

TYPE_CHECKING = False   # typing costs ms of every CLI start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def table(rows: Sequence[Sequence[str]], out: Any = None, min_width: int = 10) -> None:
    """Print rows; every column but the last is padded to max(width)+3, at least `min_width`."""
    out = out or sys.stdout
    if not rows:
        return
    ncol = max(len(r) for r in rows)
    widths = [0] * ncol
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for r in rows:
        parts = []
        for i, cell in enumerate(r):
            if i < len(r) - 1:
                parts.append(cell.ljust(max(min_width, widths[i] + 3)))
            else:
                parts.append(cell)
        lines.append("".join(parts).rstrip() if r[-1] == "" else "".join(parts))
    out.write("\n".join(lines) + "\n")


def format_rows(fmt: str, items: list[dict[str, Any]], headers: dict[str, str]) -> None:
    """Apply a `--format` value to a list of field maps (`table` prefix → header + tabwriter)."""
    from .gotemplate import render
    if fmt.startswith("table"):
        tmpl = fmt[len("table"):].strip()
        tmpl = tmpl.replace("\\t", "\t")
        head_dot = {k: v for k, v in headers.items()}
        rows = [render(tmpl, _HeaderDot(head_dot)).split("\t")]
        for it in items:
            rows.append(render(tmpl, it).split("\t"))
        table(rows)
        return
    tmpl = fmt.replace("\\t", "\t").replace("\\n", "\n")
    for it in items:
        sys.stdout.write(render(tmpl, it) + "\n")


class _HeaderDot(dict):
    """Header row: every field renders as its column title."""

    def __missing__(self, key: str) -> str:
        return key.upper()


def dump_json(obj: Any) -> str:
    """Go's json.MarshalIndent(v, "", "    ") look."""
    return jsonlite.pretty(obj)
