"""One registry endpoint, spoken to in blocking calls (from worker threads): scheme and TLS
settings as `hosts` decides them (an insecure registry: HTTPS unverified, then plain HTTP; others
HTTPS only, verified with certs.d's CAs), basic auth and bearer tokens, and Docker's error
messages."""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPResponse
from typing import Any, cast

from ..errors import InvalidArgument, NotFound, PermissionDenied, SystemError_, Unauthorized
from . import hosts

# no byte for this long on a registry connection: a stall, tried again (DOCKYARD_REGISTRY_TIMEOUT seconds)
TIMEOUT = float(os.environ.get("DOCKYARD_REGISTRY_TIMEOUT") or 30)
CLIENT_ID = "dockyard"   # the OAuth client id sent to token servers (dockerd sends "docker")


class Transient(SystemError_):
    """A failure worth another try: the connection dropped, stalled or was refused, or the
    registry answered 429 or 5xx."""


class Registry:
    """Requests to one registry for one repository."""

    def __init__(self, domain: str, repo: str, creds: dict[str, str] | None = None, scope: str = "pull",
                 base: str | None = None) -> None:
        """`base` (scheme://host[:port]) fixes the endpoint: a mirror's."""
        self.domain, self.repo, self.creds, self.scope = domain, repo, creds, scope
        self.base = base
        if base:
            self.domain = urllib.parse.urlsplit(base).netloc
        self.insecure = hosts.current.is_insecure(self.domain)
        self._ctx: ssl.SSLContext | None = None
        self.token: str | None = None
        self.basic = False   # the registry asked for basic auth
        self.extra_scopes: list[str] = []   # e.g. pull on the repository a blob is mounted from
        self.offline = False        # a login: ask the token server for a refresh token
        self.identity_token = ""    # the refresh token it gave

    # --- transport --------------------------------------------------------------------
    def _endpoint(self) -> str:
        if self.base:
            return self.base
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            try:
                r = self._open(f"{scheme}://{self.domain}/v2/", {}, auth=False)
                r.close()
                self.base = f"{scheme}://{self.domain}"
                return self.base
            except urllib.error.HTTPError as e:   # 401 is an answer: the endpoint is there
                self.base = f"{scheme}://{self.domain}"
                e.close()
                return self.base
            except (urllib.error.URLError, ssl.SSLError, OSError) as e:
                last = e
        raise SystemError_(f"Get \"https://{self.domain}/v2/\": {_reason(last)}")

    def _open(self, url: str, headers: dict[str, str], auth: bool = True, method: str = "GET",
              data: Any = None) -> HTTPResponse:
        if hosts.loopback_only() and not hosts.is_loopback(urllib.parse.urlsplit(url).netloc):
            # the test suite's guard: nothing it does may reach an address outside this machine
            raise PermissionDenied(f"{_redact(url)} is not on loopback (DOCKYARD_LOOPBACK_ONLY)")
        h = dict(headers)
        if auth and self.token:
            h["Authorization"] = f"Bearer {self.token}"
        elif auth and self.basic and self.creds:
            h["Authorization"] = self._basic()
        try:
            req = urllib.request.Request(url, headers=h, method=method, data=data)
        except ValueError as e:
            raise InvalidArgument(f"invalid registry URL {url!r}: {e}") from None
        ctx = None
        if url.startswith("https:"):
            if urllib.parse.urlsplit(url).netloc != self.domain:   # a token server: the system's CAs
                ctx = ssl.create_default_context()
            else:
                if self._ctx is None:
                    self._ctx = hosts.current.tls_context(self.domain, verify=not self.insecure)
                ctx = self._ctx
        return urllib.request.urlopen(req, timeout=TIMEOUT, context=ctx)  # noqa: S310 - registry URLs

    def get(self, path: str, headers: dict[str, str] | None = None) -> HTTPResponse:
        """GET `/v2/<repo>/<path>` (see get_root)."""
        return self.get_root(f"/v2/{self.repo}/{path}", headers)

    def get_root(self, path: str, headers: dict[str, str] | None = None) -> HTTPResponse:
        """GET `path` of the registry (see request)."""
        return self.request("GET", path, headers)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, data: Any = None,
                ok: tuple[int, ...] = ()) -> HTTPResponse:
        """`method` on `path` of the registry (or an absolute URL on it: an upload's Location),
        authenticating once if it asks (a body that is a stream cannot be sent twice: the caller
        authenticates first); a 429 waits as long as its Retry-After says (at most a minute, three
        times). Statuses in `ok` are answers, not errors (a HEAD's 404)."""
        url = path if "://" in path else f"{self._endpoint()}{path}"
        authenticated, waits = False, 0
        while True:
            try:
                return self._open(url, headers or {}, method=method, data=data)
            except urllib.error.HTTPError as e:
                if e.code in ok:
                    return cast(HTTPResponse, e)
                replayable = data is None or isinstance(data, bytes)
                if e.code == 401 and replayable and not authenticated \
                        and self._authenticate(e.headers.get("WWW-Authenticate", "")):
                    authenticated = True
                    e.close()
                    continue
                if e.code == 429 and replayable and waits < 3:
                    waits += 1
                    time.sleep(_retry_after(e.headers.get("Retry-After", ""), waits))
                    e.close()
                    continue
                raise self._error(e, method) from None
            except (urllib.error.URLError, OSError) as e:
                raise Transient(f"{method.capitalize()} \"{_redact(url)}\": {_reason(e)}") from None

    def blob_source(self, digest: str) -> dict[str, Any]:
        """What a worker process needs to fetch a blob itself (see images.unpacker): its URL, the
        authorization this client holds (the manifest's request got it) and the TLS settings."""
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.basic and self.creds:
            headers["Authorization"] = self._basic()
        cas, pairs = hosts.current.tls_files(self.domain)
        return {"url": f"{self._endpoint()}/v2/{self.repo}/blobs/{digest}", "headers": headers, "timeout": TIMEOUT,
                "insecure": self.insecure, "cas": cas, "client_certs": pairs}

    def reauthenticate(self) -> None:
        """A worker was told 401 (a token expired): get a new one."""
        self.token = None
        try:
            self.request("GET", f"/v2/{self.repo}/tags/list?n=1").close()
        except (NotFound, Transient):
            pass

    def url(self, location: str) -> str:
        """An absolute URL for a Location header (registries may answer with a path)."""
        return urllib.parse.urljoin(f"{self._endpoint()}/", location)

    def _basic(self) -> str:
        assert self.creds is not None
        raw = f"{self.creds['username']}:{self.creds['password']}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authenticate(self, challenge: str) -> bool:
        """Basic auth with the caller's credentials, or the bearer-token flow (anonymous, or
        with the credentials sent to the token server)."""
        if challenge.lower().startswith("basic "):
            if not self.creds or self.basic:
                return False
            self.basic = True
            return True
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", "")
        if not realm:
            return False
        scopes = [params.pop("scope")] if params.get("scope") else []
        if self.scope == "catalog":
            scopes.append("registry:catalog:*")
        elif self.repo:
            scopes.append(f"repository:{self.repo}:{self.scope}")
        scopes += self.extra_scopes
        scopes = list(dict.fromkeys(scopes))
        identity = (self.creds or {}).get("identitytoken", "")
        try:
            if identity:   # OAuth2: the identity token a login gave is a refresh token
                form = {"grant_type": "refresh_token", "refresh_token": identity, "client_id": CLIENT_ID,
                        "service": params.get("service", ""), "scope": " ".join(scopes)}
                with self._open(realm, {"Content-Type": "application/x-www-form-urlencoded"}, auth=False,
                                method="POST", data=urllib.parse.urlencode(form).encode()) as r:
                    body = json.loads(r.read(1 << 20))
            else:
                query = list(params.items()) + [("scope", sc) for sc in scopes]
                headers = {}
                if self.creds and self.creds.get("username"):
                    query += [("account", self.creds["username"])]
                    if self.offline:   # a login: ask for a refresh token to keep instead of the password
                        query += [("offline_token", "true"), ("client_id", CLIENT_ID)]
                    headers["Authorization"] = self._basic()
                with self._open(f"{realm}?{urllib.parse.urlencode(query)}", headers, auth=False) as r:
                    body = json.loads(r.read(1 << 20))
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                return False
            raise SystemError_(f"getting a token from {realm}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise SystemError_(f"getting a token from {realm}: {_reason(e)}") from None
        self.token = body.get("token") or body.get("access_token")
        if body.get("refresh_token"):
            self.identity_token = str(body["refresh_token"])
        return bool(self.token)

    def login(self) -> str:
        """`GET /v2/` with the credentials: returns when the registry accepts them, with the
        identity (refresh) token its token server gave, if any, as dockerd's IdentityToken."""
        self.offline = True
        url = f"{self._endpoint()}/v2/"
        for attempt in (0, 1):
            try:
                self._open(url, {}).close()
                return self.identity_token
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 0 and self._authenticate(e.headers.get("WWW-Authenticate", "")):
                    e.close()
                    continue
                raise Unauthorized(f"login attempt to {url} failed with status: {e.code} {e.reason}") from None
            except (urllib.error.URLError, OSError) as e:
                raise SystemError_(f"Get \"{url}\": {_reason(e)}") from None
        raise AssertionError("unreachable")

    def _error(self, e: urllib.error.HTTPError, method: str = "GET") -> Exception:
        try:
            body: Any = json.loads(e.read(1 << 16) or b"{}")
            errs = body.get("errors") or []
        except (ValueError, OSError, AttributeError):
            errs = []
        first = errs[0] if errs else {}
        code, msg = str(first.get("code", "")), str(first.get("message", ""))
        if (e.code in (401, 403) or code in ("UNAUTHORIZED", "DENIED")) and method not in ("GET", "HEAD"):
            return PermissionDenied("denied: requested access to the resource is denied")
        if e.code in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            return PermissionDenied(f"pull access denied for {self.repo}, repository does not exist or may "
                                    "require 'docker login': denied: requested access to the resource is denied")
        if e.code == 404:
            return NotFound(f"{code.lower().replace('_', ' ') or 'not found'}: {msg or e.reason}", )
        if e.code == 400:
            return InvalidArgument(f"{code.lower()}: {msg}" if code else f"registry: {e.reason}")
        if e.code == 429 or e.code >= 500:
            return Transient(f"received unexpected HTTP status: {e.code} {e.reason}")
        return SystemError_(f"received unexpected HTTP status: {e.code} {e.reason}")


def _retry_after(value: str, n: int) -> float:
    try:
        return min(60.0, max(0.0, float(value)))
    except ValueError:
        return float(1 << n)


def _reason(e: Exception | None) -> str:
    if isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError):
        e = e.reason if isinstance(e.reason, Exception) else e
    if isinstance(e, ConnectionRefusedError):
        return "dial tcp: connect: connection refused"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"x509: certificate signed by unknown authority ({e.verify_message})" if e.verify_code in (
            19, 20, 21) else f"x509: {e.verify_message}"
    return str(e)


def _redact(url: str) -> str:
    """An upload URL without its query (state tokens of the registry's upload session)."""
    return url.split("?", 1)[0]
