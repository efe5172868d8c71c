"""`auth.htpasswd`: Basic authentication against an htpasswd file of bcrypt hashes (as
distribution: every authenticated user may do everything; anonymous may do nothing)."""

from __future__ import annotations

import asyncio
import base64
import os

import bcrypt
from aiohttp import web

from .access import Authorizer, Identity, Scope, unauthorized
from .ratelimit import LoginLimiter


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic` header."""
    h = request.headers.get("Authorization", "")
    if not h.lower().startswith("basic "):
        return None
    try:
        user, _, pw = base64.b64decode(h[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, pw


def check_bcrypt(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


class Htpasswd(Authorizer):
    """Users from an htpasswd file (re-read when it changes)."""

    checks_nothing, passwords = False, True

    def __init__(self, realm: str, path: str) -> None:
        self.realm, self.path = realm, path
        self.users: dict[str, str] = {}
        self.mtime = -1.0
        self.limiter = LoginLimiter()
        if not os.path.exists(path):   # distribution creates it, with a generated password, and logs it; we refuse
            raise FileNotFoundError(f"auth.htpasswd.path: {path} does not exist")

    def _load(self) -> None:
        st = os.stat(self.path)
        if st.st_mtime != self.mtime:
            users = {}
            with open(self.path) as f:
                for line in f:
                    user, _, hashed = line.strip().partition(":")
                    if user and hashed:
                        users[user] = hashed
            self.users, self.mtime = users, st.st_mtime

    async def identify(self, request: web.Request, needed: list[Scope]) -> Identity:
        creds = basic_credentials(request)
        challenge = f'Basic realm="{self.realm}"'
        if creds is None:
            raise unauthorized(challenge, needed)
        user, pw = creds
        self.limiter.check(user, request.remote or "")
        self._load()
        hashed = self.users.get(user)
        ok = hashed is not None and await asyncio.to_thread(check_bcrypt, pw, hashed)
        if not ok:
            self.limiter.failed(user, request.remote or "")
            raise unauthorized(challenge, needed, "invalid username or password")
        self.limiter.succeeded(user, request.remote or "")
        return Identity(user, everything=True)
