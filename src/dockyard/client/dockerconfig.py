"""The client's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`), as the docker CLI keeps it:
`auths` maps a registry to `{"auth": base64(user:password)}`, or credentials are kept by a helper
program (`credsStore` for all registries, `credHelpers` per registry): `docker-credential-<name>`
with `get`, `store` and `erase`, the server on stdin, JSON out (the docker-credential-helpers
protocol). The user name `<token>` means the secret is an identity token."""

from __future__ import annotations

import base64
import json
import os
import subprocess
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


class HelperError(ValueError):
    """A credential helper failed (its message, never the secret)."""


def _helper(name: str, action: str, data: str) -> str:
    exe = f"docker-credential-{name}"
    try:
        p = subprocess.run([exe, action], input=data, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise HelperError(f"error getting credentials - err: exec: \"{exe}\": executable file not found in $PATH"
                          ) from None
    if p.returncode != 0:
        msg = (p.stdout.strip() or p.stderr.strip() or f"exit status {p.returncode}")
        if "credentials not found" in msg:
            return ""
        raise HelperError(f"error {action} credentials - {exe}: {msg}")
    return p.stdout


def get(server: str) -> tuple[str, str, str]:
    """(username, password, identity token) for a registry, from its helper or `auths`; empty
    strings if none. A helper's user `<token>` means its secret is an identity token."""
    cfg = load()
    name = helper_named(cfg, server)
    if name:
        out = _helper(name, "get", key(server))
        if not out.strip():
            return "", "", ""
        try:
            doc = json.loads(out)
        except ValueError:
            raise HelperError(f"docker-credential-{name} get: not JSON") from None
        user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
        return ("", "", secret) if user == "<token>" else (user, secret, "")
    entry = (cfg.get("auths") or {}).get(key(server)) or {}
    user = pw = ""
    if entry.get("auth"):
        user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
    return user, pw, str(entry.get("identitytoken") or "")


def store(server: str, user: str, secret: str, identity: str = "") -> None:
    """Keep credentials — the identity token instead of the password when the registry gave one
    — with the helper if one is named (the config keeps an empty entry, as the docker CLI does),
    else in `auths`."""
    cfg = load()
    name = helper_named(cfg, server)
    entry: dict[str, str] = {}
    if name:
        record = {"ServerURL": key(server), "Username": "<token>" if identity else user,
                  "Secret": identity or secret}
        _helper(name, "store", json.dumps(record))
    elif identity:
        entry = {"auth": base64.b64encode(f"{user}:".encode()).decode(), "identitytoken": identity}
    else:
        entry = {"auth": base64.b64encode(f"{user}:{secret}".encode()).decode()}
    cfg.setdefault("auths", {})[key(server)] = entry
    save(cfg)


def erase(server: str) -> bool:
    """Forget a registry's credentials; False if there were none."""
    cfg = load()
    name = helper_named(cfg, server)
    had = key(server) in (cfg.get("auths") or {})
    if name:
        had = bool(_helper(name, "get", key(server)).strip()) or had
        _helper(name, "erase", key(server))
    if key(server) in (cfg.get("auths") or {}):
        del cfg["auths"][key(server)]
        save(cfg)
    return had


def auth_header(server: str) -> str:
    """The X-Registry-Auth value for a registry ("" when the config has nothing for it)."""
    user, secret, identity = get(server)
    if not user and not secret and not identity:
        return ""
    doc = {"username": user, "password": secret, "serveraddress": key(server)}
    if identity:
        doc = {"username": user, "identitytoken": identity, "serveraddress": key(server)}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
