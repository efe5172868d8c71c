"""Who may do what: the seam between the API and the configured authentication (none,
htpasswd, tokens from an outside token server, or Dockyard's own accounts and token server).
A request's needs are scopes, as the token spec writes them: `repository:<name>:<actions>`."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .errors import RegistryError


@dataclass(frozen=True)
class Scope:
    """One resource and the actions a request needs on it (`pull`, `push`, `delete`, `*`)."""
    type: str
    name: str
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        """`repository:team/app:pull,push` (names may hold ':' only before a port-less path)."""
        parts = text.split(":")
        if len(parts) < 3:
            return None
        return cls(parts[0], ":".join(parts[1:-1]), tuple(a for a in parts[-1].split(",") if a))


@dataclass
class Identity:
    """Who a request is: a user name ('' for anonymous) and what it was granted."""
    name: str = ""
    granted: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    everything: bool = False

    def may(self, type_: str, name: str, action: str) -> bool:
        if self.everything:
            return True
        got = self.granted.get((type_, name), set())
        return action in got or "*" in got


class Authorizer:
    """No authentication: everyone may do everything (distribution without `auth:`)."""

    checks_nothing = True  # no credentials are checked at all
    passwords = False      # the web pages can sign a user in with a user name and password

    async def identify(self, request: web.Request, needed: list[Scope]) -> Identity:
        """The requester's identity, having checked it may do `needed`; raises 401/403 otherwise."""
        return Identity(everything=True)

    async def extra_grant(self, request: web.Request, ident: Identity, repo: str, action: str) -> bool:
        """Whether `ident` may also do `action` on `repo` (beyond what the request was checked for)."""
        return False

    async def challenge_base(self, request: web.Request) -> Identity:
        """For `GET /v2/`: authenticated at all (anonymous is fine when allowed)."""
        return await self.identify(request, [])


def unauthorized(challenge: str, needed: list[Scope], message: str = "authentication required") -> RegistryError:
    """The spec's 401 with the challenge a client follows."""
    detail = [{"Type": s.type, "Name": s.name, "Action": a} for s in needed for a in s.actions] or None
    return RegistryError("UNAUTHORIZED", message, detail, headers={"WWW-Authenticate": challenge})


def denied(needed: list[Scope]) -> RegistryError:
    what = ", ".join(str(s) for s in needed)
    return RegistryError("DENIED", f"requested access to the resource is denied ({what})")
