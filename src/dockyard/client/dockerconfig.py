"""The client's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`), as the docker CLI keeps it:
`auths` maps a registry to `{"auth": base64(user:password)}`. Credential helpers (`credsStore`,
`credHelpers`) are not supported yet: a config that names one is refused, not ignored."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

INDEX_SERVER = "https://index.docker.io/v1/"


def path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def load() -> dict[str, Any]:
    try:
        cfg = json.loads(path().read_text())
    except FileNotFoundError:
        return {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path()}: not a JSON object")
    return cfg


def save(cfg: dict[str, Any]) -> None:
    p = path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg, indent="\t") + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)


def key(server: str) -> str:
    """The `auths` key of a registry: Docker Hub's index address, else host[:port]."""
    if not server or server in ("docker.io", "index.docker.io", "registry-1.docker.io") or server == INDEX_SERVER:
        return INDEX_SERVER
    return server.split("://", 1)[-1].split("/", 1)[0]


def helper_named(cfg: dict[str, Any], server: str) -> str:
    return str((cfg.get("credHelpers") or {}).get(key(server)) or cfg.get("credsStore") or "")


def auth_header(server: str) -> str:
    """The X-Registry-Auth value for a registry ("" when the config has nothing for it)."""
    cfg = load()
    if helper_named(cfg, server):
        raise ValueError(f"credential helper {helper_named(cfg, server)!r} in {path()}: not supported yet")
    entry = (cfg.get("auths") or {}).get(key(server)) or {}
    if not entry.get("auth"):
        return ""
    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
    doc = {"username": user, "password": pw, "serveraddress": key(server)}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
