"""Imports point down only (DESIGN.md): walk every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dockyard"

# package → packages it may import (besides itself and the bottom modules)
BOTTOM = {"errors", "oci", "linux", "units", "signals", "archive", "detachkeys", "__init__"}
ALLOWED = {
    "cli": {"client"},
    "client": set(),
    "api": {"containers", "images", "events", "registry", "network", "volumes", "builder", "plugins"},
    "daemon": {"api", "containers", "images", "store", "monitor", "runtime", "events", "registry", "network",
               "volumes", "builder", "plugins", "cri"},
    "cri": {"containers", "network", "registry"},   # a second front door over the engine's services (DESIGN.md)
    "plugins": {"containers", "monitor", "registry", "images"},
    "builder": {"containers", "images", "store", "registry"},
    "containers": {"images", "store", "monitor", "runtime", "network", "volumes"},
    "volumes": {"store"},
    "images": {"store"},
    "registry": {"images"},
    "registryd": {"registry"},     # the registry server reuses the engine's registry client for its upstreams
    "network": set(),
    "monitor": {"runtime"},
    "runtime": set(),
    "store": set(),
    "oci": set(),
    "linux": set(),
    "archive": set(),
    "events": set(),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    pkg_parts = path.relative_to(SRC).parts
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg_parts[:-1])[: len(pkg_parts) - node.level]
                mod = (node.module or "").split(".") if node.module else []
                target = base + mod
                if target:
                    out.add(target[0])
                else:
                    for a in node.names:
                        n = a.name.split(".")[0]
                        is_mod = (SRC / n).is_dir() or (SRC / f"{n}.py").exists()
                        out.add(n if is_mod else "__init__")
            elif node.module and node.module.startswith("dockyard."):
                out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("dockyard."):
                    out.add(a.name.split(".")[1])
    return out


def test_imports_point_down():
    bad = []
    for path in SRC.rglob("*.py"):
        top = path.relative_to(SRC).parts[0].removesuffix(".py")
        if top not in ALLOWED:
            continue
        for imp in _imports(path):
            if imp == top or imp in BOTTOM:
                continue
            if imp not in ALLOWED[top]:
                bad.append(f"{path.relative_to(SRC)} imports {imp}")
    assert not bad, bad


def test_api_does_no_syscalls_or_store_access():
    for path in (SRC / "api").rglob("*.py"):
        text = path.read_text()
        for forbidden in ("import ctypes", "subprocess", "dockyard.store", "..store", "...store", "os.mount"):
            assert forbidden not in text, f"{path.name}: {forbidden}"
