"""Registry credentials as the Engine API carries them: the `X-Registry-Auth` header (base64url
JSON of an AuthConfig) on pulls, and `POST /auth` (`docker login`), which checks them against the
registry. Credentials are never logged nor put in errors or events."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidArgument
from ..oci import reference

INDEX_SERVER = "https://index.docker.io/v1/"


def decode_header(value: str) -> dict[str, str] | None:
    """The AuthConfig of an `X-Registry-Auth` header; None for none (docker-py sends `e30=`, `{}`)."""
    if not value:
        return None
    try:
        pad = "=" * (-len(value) % 4)
        cfg = json.loads(base64.urlsafe_b64decode(value + pad))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("invalid X-Registry-Auth header: not base64-encoded JSON") from None
    if not isinstance(cfg, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: not a JSON object")
    return credentials(cfg)


def credentials(cfg: dict[str, Any]) -> dict[str, str] | None:
    """username/password (or the `auth` field's user:password, or an identity token), if any."""
    for k in ("username", "password", "auth", "identitytoken", "serveraddress", "email"):
        if cfg.get(k) is not None and not isinstance(cfg[k], str):
            raise InvalidArgument(f"invalid auth config: {k} must be a string")
    user, pw = str(cfg.get("username") or ""), str(cfg.get("password") or "")
    if not user and cfg.get("auth"):
        try:
            user, _, pw = base64.b64decode(str(cfg["auth"])).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("invalid auth field: not base64 of user:password") from None
    token = str(cfg.get("identitytoken") or "")
    if not user and not token:
        return None
    return {"username": user, "password": pw, "identitytoken": token}


def domain_of(server: str) -> str:
    """The registry host[:port] of a login's server address (`https://host:5000/v2/`, `host:5000`);
    Docker Hub's index address and the empty one are docker.io."""
    if not server or server.rstrip("/") in (INDEX_SERVER.rstrip("/"), "docker.io", "index.docker.io"):
        return reference.DEFAULT_DOMAIN
    s = server if "://" in server else f"//{server}"
    try:
        parts = urlsplit(s)
        host = parts.netloc
        _ = parts.port   # a bad port or bracketed host raises here
    except ValueError:
        host = ""
    if not host or any(c.isspace() for c in host):
        raise InvalidArgument(f"invalid registry address {server!r}")
    return host
