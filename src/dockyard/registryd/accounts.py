"""Dockyard's own accounts and token server (`dockyard.accounts`), the book's index: users, teams
and robot accounts with per-repository and per-namespace permissions in SQLite, passwords hashed
with bcrypt, personal access tokens, and a token server speaking Docker's token spec —
`GET /token` (Basic), `POST /token` (OAuth2 `password` and `refresh_token` grants), identity
tokens — that down-scopes a request to what the account may do instead of failing."""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bcrypt
from aiohttp import web

from .access import Identity, Scope
from .auth_basic import basic_credentials, check_bcrypt
from .config import Config
from .errors import ConfigError, RegistryError
from .ratelimit import LoginLimiter
from .tokens import BearerAuthorizer, Signer

if TYPE_CHECKING:
    from .server import RegistryApp

ACTIONS = ("pull", "push", "delete")
SCHEMA = """
CREATE TABLE IF NOT EXISTS users(name TEXT PRIMARY KEY, hash TEXT NOT NULL, admin INTEGER NOT NULL DEFAULT 0,
    robot INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members(team TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY(team, user));
CREATE TABLE IF NOT EXISTS grants(subject TEXT NOT NULL, kind TEXT NOT NULL, pattern TEXT NOT NULL,
    actions TEXT NOT NULL, PRIMARY KEY(subject, kind, pattern));
CREATE TABLE IF NOT EXISTS tokens(id TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL, hash TEXT UNIQUE NOT NULL,
    kind TEXT NOT NULL, created REAL NOT NULL, last_used REAL);
CREATE TABLE IF NOT EXISTS repos(name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '',
    public INTEGER NOT NULL DEFAULT 0);
"""
NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_.+")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(pattern: str, repo: str) -> bool:
    """`*` everything, `team/*` the namespace and below, else the repository itself."""
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return repo.startswith(pattern[:-1])
    return repo == pattern


def expand(actions: set[str]) -> set[str]:
    return set(ACTIONS) | {"*"} if "admin" in actions or "*" in actions else actions


@dataclass
class User:
    name: str
    admin: bool
    robot: bool
    created: float


class Accounts:
    """The account database (blocking; one connection shared under a lock)."""

    def __init__(self, path: str, anonymous: list[str] | None = None, push_creates: bool = True) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        os.chmod(path, 0o600)
        self.lock = threading.Lock()
        self.anonymous = list(anonymous or [])
        self.push_creates = push_creates

    def _q(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    # ---- users
    def add_user(self, name: str, password: str, admin: bool = False, robot: bool = False, rounds: int = 10) -> None:
        if not name or not set(name) <= NAME_OK or len(name) > 64:
            raise ValueError(f"invalid account name {name!r} (lower-case letters, digits, - _ . +)")
        if len(password) < 8:
            raise ValueError("a password needs at least 8 characters")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
        try:
            self._q("INSERT INTO users(name, hash, admin, robot, created) VALUES (?,?,?,?,?)", name, hashed, int(admin),
                    int(robot), time.time())
        except sqlite3.IntegrityError:
            raise ValueError(f"account {name!r} already exists") from None

    def set_password(self, name: str, password: str) -> None:
        if len(password) < 8:
            raise ValueError("a password needs at least 8 characters")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()
        if not self._q("UPDATE users SET hash=? WHERE name=? RETURNING name", hashed, name):
            raise KeyError(name)

    def delete_user(self, name: str) -> None:
        for sql in ("DELETE FROM users WHERE name=?", "DELETE FROM members WHERE user=?",
                    "DELETE FROM grants WHERE subject=? AND kind='user'", "DELETE FROM tokens WHERE user=?"):
            self._q(sql, name)

    def user(self, name: str) -> User | None:
        rows = self._q("SELECT name, admin, robot, created FROM users WHERE name=?", name)
        return User(rows[0][0], bool(rows[0][1]), bool(rows[0][2]), rows[0][3]) if rows else None

    def users(self) -> list[User]:
        return [User(r[0], bool(r[1]), bool(r[2]), r[3]) for r in
                self._q("SELECT name, admin, robot, created FROM users ORDER BY name")]

    def authenticate(self, name: str, secret: str) -> str | None:
        """The account a password or a personal access token / robot secret belongs to."""
        if secret.startswith("dyp_"):
            rows = self._q("SELECT user, id FROM tokens WHERE hash=? AND kind IN ('pat', 'robot')", _hash_token(secret))
            if rows and rows[0][0] == name:
                self._q("UPDATE tokens SET last_used=? WHERE id=?", time.time(), rows[0][1])
                return name
            return None
        rows = self._q("SELECT hash FROM users WHERE name=? AND robot=0", name)
        return name if rows and check_bcrypt(secret, rows[0][0]) else None

    # ---- tokens (personal access tokens, robot secrets, refresh tokens)
    def new_token(self, user: str, name: str, kind: str = "pat") -> str:
        token = ("dyp_" if kind in ("pat", "robot") else "dyr_") + secrets.token_urlsafe(32)
        self._q("INSERT INTO tokens(id, user, name, hash, kind, created) VALUES (?,?,?,?,?,?)", secrets.token_hex(8), user,
                name, _hash_token(token), kind, time.time())
        return token

    def tokens(self, user: str) -> list[dict[str, Any]]:
        return [{"id": r[0], "name": r[1], "created": r[2], "last_used": r[3]} for r in
                self._q("SELECT id, name, created, last_used FROM tokens WHERE user=? AND kind='pat' ORDER BY created", user)]

    def revoke_token(self, user: str, token_id: str) -> None:
        self._q("DELETE FROM tokens WHERE user=? AND id=?", user, token_id)

    def refresh_user(self, token: str) -> str | None:
        rows = self._q("SELECT user FROM tokens WHERE hash=? AND kind='refresh'", _hash_token(token))
        return rows[0][0] if rows else None

    def add_robot(self, owner: str, name: str) -> tuple[str, str]:
        """A robot account `owner+name` with a generated secret (shown once)."""
        robot = f"{owner}+{name}"
        self.add_user(robot, secrets.token_urlsafe(24), robot=True)
        return robot, self.new_token(robot, "robot secret", "robot")

    # ---- teams and permissions
    def add_member(self, team: str, user: str) -> None:
        self._q("INSERT OR IGNORE INTO members(team, user) VALUES (?,?)", team, user)

    def grant(self, subject: str, pattern: str, actions: set[str], kind: str = "user") -> None:
        bad = actions - set(ACTIONS) - {"admin"}
        if bad:
            raise ValueError(f"unknown actions {sorted(bad)} (pull, push, delete, admin)")
        self._q("INSERT OR REPLACE INTO grants(subject, kind, pattern, actions) VALUES (?,?,?,?)", subject, kind, pattern,
                ",".join(sorted(actions)))

    def revoke(self, subject: str, pattern: str, kind: str = "user") -> None:
        self._q("DELETE FROM grants WHERE subject=? AND kind=? AND pattern=?", subject, kind, pattern)

    def grants(self) -> list[dict[str, str]]:
        return [{"subject": r[0], "kind": r[1], "pattern": r[2], "actions": r[3]} for r in
                self._q("SELECT subject, kind, pattern, actions FROM grants ORDER BY subject, pattern")]

    def allowed(self, user: str, repo: str) -> set[str]:
        """What `user` ('' for anonymous) may do on `repo`."""
        got: set[str] = set()
        if any(matches(p, repo) for p in self.anonymous) or self._q("SELECT 1 FROM repos WHERE name=? AND public=1", repo):
            got.add("pull")
        if not user:
            return got
        u = self.user(user)
        if u is None:
            return got
        if u.admin:
            return expand({"admin"})
        owner = user.split("+", 1)[0]
        if self.push_creates and not u.robot and repo.startswith(owner + "/"):
            return expand({"admin"})
        teams = [r[0] for r in self._q("SELECT team FROM members WHERE user=?", user)]
        rows = self._q("SELECT pattern, actions FROM grants WHERE (kind='user' AND subject=?)", user)
        for t in teams:
            rows += self._q("SELECT pattern, actions FROM grants WHERE kind='team' AND subject=?", t)
        for pattern, actions in rows:
            if matches(pattern, repo):
                got |= expand(set(actions.split(",")))
        return got

    # ---- repositories' descriptions and visibility
    def repo_info(self, name: str) -> tuple[str, bool]:
        rows = self._q("SELECT description, public FROM repos WHERE name=?", name)
        return (rows[0][0], bool(rows[0][1])) if rows else ("", False)

    def set_repo(self, name: str, description: str | None = None, public: bool | None = None) -> None:
        desc, pub = self.repo_info(name)
        self._q("INSERT OR REPLACE INTO repos(name, description, public) VALUES (?,?,?)", name,
                desc if description is None else description, int(pub if public is None else public))


class AccountsAuthorizer(BearerAuthorizer):
    """Bearer tokens signed by this registry; Basic credentials accepted directly too."""

    passwords = True

    def __init__(self, app: RegistryApp, accounts: Accounts, signer: Signer, service: str, issuer: str,
                 ttl: float, limiter: LoginLimiter) -> None:
        super().__init__("", service, issuer, {signer.kid: signer.key.public_key()})
        self.app, self.accounts, self.signer, self.ttl, self.limiter = app, accounts, signer, ttl, limiter

    def realm_for(self, request: web.Request) -> str:
        return self.app.url(request, "/token")

    async def login(self, request: web.Request, name: str, secret: str) -> str:
        """Check credentials (rate-limited); the account name, else 401."""
        remote = request.remote or ""
        self.limiter.check(name, remote)
        who = await self.app.run(self.accounts.authenticate, name, secret)
        if who is None:
            self.limiter.failed(name, remote)
            raise RegistryError("UNAUTHORIZED", "invalid username or password")
        self.limiter.succeeded(name, remote)
        return who

    async def grant(self, user: str, scopes: list[Scope]) -> list[dict[str, Any]]:
        """The requested scopes cut down to what `user` may do (Quay's down-scoping)."""
        out = []
        for s in scopes:
            if s.type == "repository":
                allowed = await self.app.run(self.accounts.allowed, user, s.name)
                acts = [a for a in s.actions if a in allowed]
            elif s.type == "registry" and s.name == "catalog":
                acts = ["*"] if "*" in s.actions else []
            else:
                acts = []
            out.append({"type": s.type, "name": s.name, "actions": acts})
        return out

    async def fallback(self, request: web.Request, needed: list[Scope]) -> Identity | None:
        creds = basic_credentials(request)
        user = await self.login(request, *creds) if creds else ""
        ident = Identity(user)
        for a in await self.grant(user, needed):
            ident.granted[(a["type"], a["name"])] = set(a["actions"])
        if all(ident.may(s.type, s.name, act) for s in needed for act in s.actions):
            return ident
        if user:
            from .access import denied
            raise denied(needed)
        return None

    async def known_elsewhere(self, ident: Identity, missing: list[Scope]) -> bool:
        for s in missing:
            if s.type == "repository":
                allowed = await self.app.run(self.accounts.allowed, ident.name, s.name)
                if not set(s.actions) <= allowed:
                    return True
        return False

    async def extra_grant(self, request: web.Request, ident: Identity, repo: str, action: str) -> bool:
        return action in await self.app.run(self.accounts.allowed, ident.name, repo)

    async def description(self, repo: str) -> str:
        return (await self.app.run(self.accounts.repo_info, repo))[0]

    # ---- the token server
    async def token_get(self, request: web.Request) -> web.StreamResponse:
        request["route"] = "token"
        q = request.query
        creds = basic_credentials(request)
        user = await self.login(request, *creds) if creds else ""
        request["identity"] = Identity(user)
        scopes = [s for s in (Scope.parse(x) for x in q.getall("scope", []) for x in x.split(" ")) if s]
        extra = {}
        if user and q.get("offline_token") == "true":
            extra["refresh_token"] = await self.app.run(self.accounts.new_token, user, q.get("client_id", "docker"),
                                                        "refresh")
        return await self._issue(user, scopes, q.get("service", self.service), extra)

    async def token_post(self, request: web.Request) -> web.StreamResponse:
        request["route"] = "token"
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        scopes = [s for s in (Scope.parse(x) for x in str(form.get("scope", "")).split(" ") if x) if s]
        extra: dict[str, str] = {}
        if grant == "password":
            user = await self.login(request, str(form.get("username", "")), str(form.get("password", "")))
            if form.get("access_type") == "offline":
                extra["refresh_token"] = await self.app.run(self.accounts.new_token, user,
                                                            str(form.get("client_id", "")), "refresh")
        elif grant == "refresh_token":
            got = await self.app.run(self.accounts.refresh_user, str(form.get("refresh_token", "")))
            if got is None:
                raise RegistryError("UNAUTHORIZED", "invalid refresh token")
            user = got
            extra["refresh_token"] = str(form.get("refresh_token"))
        else:
            raise RegistryError("UNSUPPORTED", f"unsupported grant_type {grant!r}", status=400)
        request["identity"] = Identity(user)
        return await self._issue(user, scopes, str(form.get("service", self.service)), extra)

    async def _issue(self, user: str, scopes: list[Scope], service: str, extra: dict[str, str]) -> web.StreamResponse:
        if service != self.service:
            raise RegistryError("DENIED", f"this token server serves {self.service!r}, not {service!r}", status=400)
        access = await self.grant(user, scopes)
        token, now = self.signer.sign(self.issuer, user, self.service, access, self.ttl)
        body = {"token": token, "access_token": token, "expires_in": int(self.ttl),
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "scope": " ".join(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access), **extra}
        return web.json_response(body)


def open_accounts(config: Config) -> Accounts:
    db = config.get("dockyard.accounts.database")
    if not db:
        raise ConfigError("dockyard.accounts.database is required")
    return Accounts(db, config.get("dockyard.accounts.anonymous") or [], config.get("dockyard.accounts.pushcreates", True))


def install(app: RegistryApp) -> None:
    """Turn on accounts: the authorizer and `/token`."""
    c = app.config
    accounts = open_accounts(c)
    admin = c.get("dockyard.accounts.admin") or {}
    if admin and accounts.user(str(admin.get("username"))) is None:
        accounts.add_user(str(admin["username"]), str(admin["password"]), admin=True)
    signer = Signer(c.get("dockyard.accounts.database") + ".key")
    service = c.get("dockyard.accounts.service", "dockyard-registry")
    limiter = LoginLimiter(int(c.get("dockyard.accounts.loginattempts", 5)), c.seconds("dockyard.accounts.lockout", 60))
    auth = AccountsAuthorizer(app, accounts, signer, service, c.get("dockyard.accounts.issuer", service),
                              c.seconds("dockyard.accounts.tokenttl", 300), limiter)
    app.auth = auth
    app.extra_routes += [("GET", "/token", auth.token_get), ("POST", "/token", auth.token_post)]


def run_cli(config: Config, a: argparse.Namespace) -> int:
    """`dockyard-registry user ...`."""
    acc = open_accounts(config)
    if a.action == "list":
        for u in acc.users():
            print(f"{u.name}\t{'admin' if u.admin else 'robot' if u.robot else 'user'}")
        for g in acc.grants():
            print(f"{g['kind']}:{g['subject']}\t{g['pattern']}\t{g['actions']}")
        return 0
    if not a.name:
        print("dockyard-registry: an account name is required", file=sys.stderr)
        return 1
    if a.action in ("add", "passwd") and not a.robot:
        pw = sys.stdin.readline().rstrip("\n") if a.password_stdin else __import__("getpass").getpass("Password: ")
        if a.action == "add":
            acc.add_user(a.name, pw, admin=a.admin)
        else:
            acc.set_password(a.name, pw)
    elif a.action == "add":
        owner, _, robot = a.name.partition("+")
        name, secret = acc.add_robot(owner, robot or "robot")
        print(f"{name}\t{secret}")
    elif a.action == "delete":
        acc.delete_user(a.name)
    elif a.action == "grant":
        acc.grant(a.team or a.name, a.repository or "*", set(a.actions.split(",")), "team" if a.team else "user")
    elif a.action == "revoke":
        acc.revoke(a.team or a.name, a.repository or "*", "team" if a.team else "user")
    elif a.action == "join":
        if not a.team:
            print("dockyard-registry: join needs --team", file=sys.stderr)
            return 1
        acc.add_member(a.team, a.name)
    return 0



