"""What `run` and `exec` share about the process they start: its environment (`-e`,
`--env-file`) and the detach keys. Small on purpose: `exec` imports it, not `run`'s flags."""

from __future__ import annotations

import os
import sys


def _env(items: list[str], files: list[str]) -> list[str]:
    out = []
    for f in files:
        try:
            lines = open(f).read().splitlines()
        except OSError as err:
            print(f"open {f}: {(err.strerror or '').lower()}", file=sys.stderr)
            sys.exit(125)
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line)
    out = [*out, *items]
    res: list[str] = []
    for e in out:
        if "=" in e:
            res.append(e)
        elif e in os.environ:
            res.append(f"{e}={os.environ[e]}")
    return res


def _keys(v: str | None) -> bytes | None:
    from ...detachkeys import DEFAULT, parse_keys
    from ...errors import InvalidArgument
    try:
        return parse_keys(v or DEFAULT)
    except InvalidArgument as e:
        print(f"dockyard: {e}", file=sys.stderr)
        sys.exit(125)
