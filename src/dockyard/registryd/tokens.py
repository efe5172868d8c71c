"""Docker's token authentication: the registry answers `401` with
`WWW-Authenticate: Bearer realm=...,service=...,scope=...`, the client fetches a JWT from the
realm and presents it. `BearerAuthorizer` checks such tokens (signature, `iss`, `aud`, `exp`,
`access`); `ExternalTokens` trusts a token server's certificates (`auth.token`), as distribution."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .access import Authorizer, Identity, Scope, denied, unauthorized
from .config import Config
from .errors import ConfigError

ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256"]


def key_id(public_key: Any) -> str:
    """libtrust's key ID (what distribution puts in `kid`): the first 240 bits of the SHA-256 of
    the DER public key, base32, in 12 groups of 4 separated by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, 48, 4))


class Signer:
    """An ECDSA P-256 key that signs this registry's tokens; kept in a PEM file (0600)."""

    def __init__(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                self.key: Any = serialization.load_pem_private_key(f.read(), None)
        except FileNotFoundError:
            self.key = ec.generate_private_key(ec.SECP256R1())
            import os
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.kid = key_id(self.key.public_key())

    def sign(self, issuer: str, subject: str, audience: str, access: list[dict[str, Any]], ttl: float) -> tuple[str, int]:
        now = int(time.time())
        claims = {"iss": issuer, "sub": subject, "aud": audience, "exp": now + int(ttl), "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid}), now


class BearerAuthorizer(Authorizer):
    """Checks bearer tokens against trusted keys; the challenge names the realm and service."""

    checks_nothing = False

    def __init__(self, realm: str, service: str, issuer: str, keys: dict[str, Any]) -> None:
        self.realm, self.service, self.issuer = realm, service, issuer
        self.keys = keys     # kid → public key

    def challenge(self, request: web.Request, needed: list[Scope], error: str = "") -> str:
        c = f'Bearer realm="{self.realm_for(request)}",service="{self.service}"'
        if needed:
            c += f',scope="{" ".join(str(s) for s in needed)}"'
        if error:
            c += f',error="{error}"'
        return c

    def realm_for(self, request: web.Request) -> str:
        return self.realm

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        candidates = [self.keys[header["kid"]]] if header.get("kid") in self.keys else list(self.keys.values())
        candidates += self._x5c_keys(header)
        for key in candidates:
            try:
                return jwt.decode(token, key, algorithms=ALGORITHMS, audience=self.service, issuer=self.issuer,
                                  leeway=60, options={"require": ["exp", "iss", "aud"]})
            except jwt.PyJWTError:
                continue
        return None

    def _x5c_keys(self, header: dict[str, Any]) -> list[Any]:
        return []

    async def identify(self, request: web.Request, needed: list[Scope]) -> Identity:
        h = request.headers.get("Authorization", "")
        if not h.lower().startswith("bearer "):
            ident = await self.fallback(request, needed)
            if ident is not None:
                return ident
            raise unauthorized(self.challenge(request, needed), needed)
        claims = self.verify(h[7:].strip())
        if claims is None:
            raise unauthorized(self.challenge(request, needed, "invalid_token"), needed, "invalid or expired token")
        ident = Identity(str(claims.get("sub") or ""))
        for a in claims.get("access") or []:
            if isinstance(a, dict):
                ident.granted.setdefault((str(a.get("type")), str(a.get("name"))), set()).update(a.get("actions") or [])
        missing = [s for s in needed if not all(ident.may(s.type, s.name, act) for act in s.actions)]
        if missing:
            if ident.name and await self.known_elsewhere(ident, missing):
                raise denied(missing)
            raise unauthorized(self.challenge(request, needed, "insufficient_scope"), needed,
                               "authentication required")
        return ident

    async def fallback(self, request: web.Request, needed: list[Scope]) -> Identity | None:
        """An identity for a request without a bearer token (none here: the client must fetch one)."""
        return None

    async def challenge_base(self, request: web.Request) -> Identity:
        """`GET /v2/` without credentials is the client's cue to fetch a token: always 401."""
        h = request.headers.get("Authorization", "").lower()
        if not h.startswith(("bearer ", "basic ")):
            raise unauthorized(self.challenge(request, []), [])
        return await self.identify(request, [])

    async def known_elsewhere(self, ident: Identity, missing: list[Scope]) -> bool:
        """Whether a signed-in user lacks rights (403) rather than needing a new token (401)."""
        return False


class ExternalTokens(BearerAuthorizer):
    """`auth.token`: tokens from another token server, trusted by `rootcertbundle`."""

    def __init__(self, config: Config) -> None:
        for k in ("realm", "service", "issuer", "rootcertbundle"):
            if not config.get(f"auth.token.{k}"):
                raise ConfigError(f"auth.token.{k} is required")
        with open(config.get("auth.token.rootcertbundle"), "rb") as f:
            self.certs = x509.load_pem_x509_certificates(f.read())
        keys = {key_id(c.public_key()): c.public_key() for c in self.certs}
        super().__init__(config.get("auth.token.realm"), config.get("auth.token.service"),
                         config.get("auth.token.issuer"), keys)
        self.autoredirect = bool(config.get("auth.token.autoredirect"))

    def realm_for(self, request: web.Request) -> str:
        """With `autoredirect`, the realm's path on the host the client reached this registry by."""
        if not self.autoredirect:
            return self.realm
        from urllib.parse import urlsplit
        proto = request.headers.get("X-Forwarded-Proto") or request.scheme
        return f"{proto}://{request.headers.get('X-Forwarded-Host') or request.host}{urlsplit(self.realm).path}"

    def _x5c_keys(self, header: dict[str, Any]) -> list[Any]:
        """A leaf certificate in `x5c` signed by (or equal to) a trusted certificate."""
        chain = header.get("x5c")
        if not isinstance(chain, list) or not chain:
            return []
        try:
            leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        except ValueError:
            return []
        for ca in self.certs:
            if leaf == ca:
                return [leaf.public_key()]
            try:
                leaf.verify_directly_issued_by(ca)
                return [leaf.public_key()]
            except Exception:  # noqa: BLE001 - a bad signature or a key of another kind: not trusted
                continue
        return []
