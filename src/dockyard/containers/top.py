"""`docker top`: the host's `ps` with the caller's options, cut down to the processes in the
container's cgroup, parsed as dockerd parses it (merging the overhanging last column)."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from ..errors import InvalidArgument, SystemError_
from .cgroupfs import pids as cgroup_pids


def top(init_pid: int, ps_args: str) -> dict[str, Any]:
    """`GET /containers/{id}/top` body: {"Titles": [...], "Processes": [[...], ...]}."""
    try:
        args = shlex.split(ps_args) if ps_args else ["-ef"]
    except ValueError as e:
        raise InvalidArgument(f"invalid ps_args: {e}") from None
    pids = cgroup_pids(init_pid)
    p = subprocess.run(["ps", *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemError_(f"ps: {(p.stderr or p.stdout).strip()}")
    return parse_ps(p.stdout, pids)


def parse_ps(output: str, pids: set[int]) -> dict[str, Any]:
    """Keep the rows of `pids` (and thread rows that follow one of them, with `ps -m`)."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise SystemError_("Couldn't find PID field in ps output")
    idx = titles.index("PID")
    procs: list[list[str]] = []
    kept = False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if fields[idx] == "-":
            if kept:
                procs.append(_fit(fields, len(titles)))
            continue
        try:
            pid = int(fields[idx])
        except ValueError:
            raise SystemError_(f"Unexpected pid '{fields[idx]}' in ps output") from None
        kept = pid in pids
        if kept:
            procs.append(_fit(fields, len(titles)))
    return {"Titles": titles, "Processes": procs}


def _fit(fields: list[str], n: int) -> list[str]:
    return fields[:n - 1] + [" ".join(fields[n - 1:])]
