"""dockerd's JSON progress stream as the docker CLI shows it: on a terminal one line per layer,
rewritten in place (a bar drawn from `progressDetail`); otherwise plain `id: status` lines for
the statuses that are not progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from ..units import human_size


def bar(current: int, total: int, width: int) -> str:
    """`[=====>      ]  1.2MB/3.4MB`, as the docker CLI draws it."""
    size = f"{human_size(current)}/{human_size(total)}"
    n = max(10, min(50, width - len(size) - 30))
    done = n * current // total if total else n
    done = min(done, n)
    return f"[{'=' * done}{'>' if done < n else ''}{' ' * max(0, n - done - 1)}] {size:>17}"


class Display:
    """Consumes messages; raises nothing: `error` is kept for the caller."""

    def __init__(self, out: TextIO, tty: bool, quiet: bool = False, width: int = 80) -> None:
        self.out, self.tty, self.quiet, self.width = out, tty, quiet, width
        self.lines: list[str] = []   # ids, in the order their lines were printed
        self.error = ""

    def feed(self, msg: dict[str, Any]) -> None:
        if "error" in msg:
            self.error = str(msg["error"])
            return
        status = str(msg.get("status") or "")
        if self.quiet or not status:
            return
        ident = str(msg.get("id") or "")
        detail = msg.get("progressDetail") or {}
        if not self.tty:   # as the docker CLI: progress bars are for terminals only
            if not (detail.get("current") or detail.get("total")):
                self.out.write(f"{ident}: {status}\n" if ident else f"{status}\n")
            return
        text = f"{ident}: {status}" if ident else status
        if detail.get("total"):
            text += " " + bar(int(detail.get("current") or 0), int(detail["total"]), self.width)
        text = text[: self.width - 1]
        if not ident:
            self.out.write(text + "\n")
            self.lines = []   # a new block: lines above are no longer rewritten
        elif ident in self.lines:
            up = len(self.lines) - self.lines.index(ident)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        else:
            self.lines.append(ident)
            self.out.write(text + "\n")
        self.out.flush()


def show(lines: Iterable[bytes | str], quiet: bool = False, seen: Callable[[dict[str, Any]], None] = lambda _: None,
         out: TextIO | None = None) -> str:
    """Show a whole stream; returns the error it ended with ('' if none)."""
    import os
    import shutil
    o = out or sys.stdout
    tty = o.isatty() and os.environ.get("TERM", "") != "dumb"
    d = Display(o, tty, quiet, shutil.get_terminal_size((80, 24)).columns)
    for line in lines:
        msg = json.loads(line)
        seen(msg)
        d.feed(msg)
        if d.error:
            break
    return d.error
