"""`dockyard stats`: CPU, memory, network, block I/O and PIDs, computed as the docker CLI does."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from ...client.api import APIError, Client
from ...units import bytes_size, human_size
from ..flags import Parser

HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
           "PIDs": "PIDS"}
DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def row(ref: str, s: dict[str, Any]) -> dict[str, str]:
    """One container's line, from a stats record (its precpu_stats giving the CPU delta)."""
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_pct = cpu_delta / sys_delta * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = s.get("memory_stats") or {}
    usage, st = mem.get("usage", 0), mem.get("stats") or {}
    if "total_inactive_file" in st and st["total_inactive_file"] < usage:
        usage -= st["total_inactive_file"]
    elif st.get("inactive_file", usage) < usage:
        usage -= st["inactive_file"]
    limit = mem.get("limit", 0)
    rx = sum(n.get("rx_bytes", 0) for n in (s.get("networks") or {}).values())
    tx = sum(n.get("tx_bytes", 0) for n in (s.get("networks") or {}).values())
    blk = (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    rd = sum(e["value"] for e in blk if e.get("op", "").lower() == "read")
    wr = sum(e["value"] for e in blk if e.get("op", "").lower() == "write")
    cid = s.get("id") or ref
    running = s.get("read", "").startswith("0001") is False
    return {"ID": cid[:12], "Container": ref, "Name": (s.get("name") or "").lstrip("/") or "--",
            "CPUPerc": f"{cpu_pct:.2f}%" if running else "0.00%",
            "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}" if running else "0B / 0B",
            "MemPerc": f"{usage / limit * 100:.2f}%" if limit else "0.00%",
            "NetIO": f"{human_size(rx)} / {human_size(tx)}", "BlockIO": f"{human_size(rd)} / {human_size(wr)}",
            "PIDs": str((s.get("pids_stats") or {}).get("current", 0))}


def stats(cli: Client, prog: str, args: list[str]) -> int:
    """`dockyard stats [-a] [--no-stream] [--no-trunc] [--format] [CONTAINER...]`."""
    from ..output import format_rows
    p = Parser(prog, "[OPTIONS] [CONTAINER...]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format")
    p.add_argument("containers", nargs="*")
    ns = p.parse_args(args)
    refs = ns.containers
    if not refs:
        refs = [c["Id"] for c in cli.json("GET", "/containers/json", {"all": 1 if ns.all else None})]
    latest: dict[str, dict[str, Any]] = {}
    errors: list[str] = []

    def follow(ref: str) -> None:
        try:
            resp = cli.call("GET", f"/containers/{ref}/stats", {"stream": 0 if ns.no_stream else 1})
            for line in resp.lines():
                latest[ref] = json.loads(line)
        except APIError as e:
            errors.append(e.message)
        except OSError:
            pass

    threads = [threading.Thread(target=follow, args=(r,), daemon=True) for r in refs]
    for t in threads:
        t.start()
    fmt = ns.format or DEFAULT

    def show() -> None:
        rows = [row(r, latest[r]) for r in refs if r in latest]
        if ns.no_trunc:
            for r, item in zip([r for r in refs if r in latest], rows, strict=True):
                item["ID"] = latest[r].get("id", item["ID"])
        format_rows(fmt, rows, HEADERS)
    if ns.no_stream:
        for t in threads:
            t.join()
        for e in errors:
            print(f"Error response from daemon: {e}", file=sys.stderr)
        show()
        return 1 if errors and not latest else 0
    try:
        while True:
            time.sleep(1.0)
            if sys.stdout.isatty():
                sys.stdout.write("\033[2J\033[H")
            show()
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
