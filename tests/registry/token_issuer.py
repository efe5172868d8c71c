"""A small token server for Distribution's token auth (the flow Docker Hub uses): `GET /token`
with `service`, `scope` (repeated) and basic auth (with `offline_token=true` it also answers a
`refresh_token`), and OAuth2's `POST /token` with `grant_type=refresh_token`; answers a JWT
(RS256, its certificate in the `x5c` header) that docker-registry checks against the certificate
given as its rootcertbundle. Known users get every action they ask for; anonymous requests get
none. Requests are recorded so tests can see the flow happen."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER, SERVICE = "dockyard-test-issuer", "dockyard-test-registry"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Serve on 127.0.0.1:`port`; `cert_path` is the bundle the registry trusts."""

    def __init__(self, base: Path, users: dict[str, str]) -> None:
        self.users = users
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard token signer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = base / "token-signer.crt"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, object]] = []   # {account, scopes, granted, grant}
        self.refresh: dict[str, str] = {}   # refresh token → user
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                issuer._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                issuer._refresh(self)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, h: BaseHTTPRequestHandler) -> None:
        q = parse_qs(urlsplit(h.path).query)
        user = ""
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(u) != p:
                h.send_response(401)
                h.end_headers()
                self.requests.append({"account": u, "scopes": q.get("scope", []), "granted": None, "grant": "basic"})
                return
            user = u
        extra = {}
        if user and q.get("offline_token") == ["true"]:
            token = uuid.uuid4().hex
            self.refresh[token] = user
            extra["refresh_token"] = token
        self._issue(h, user, q.get("scope", []), q.get("service", [SERVICE])[0], extra, "basic")

    def _refresh(self, h: BaseHTTPRequestHandler) -> None:
        form = parse_qs(h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode())
        user = self.refresh.get(form.get("refresh_token", [""])[0], "")
        if form.get("grant_type") != ["refresh_token"] or not user:
            h.send_response(401)
            h.send_header("Content-Length", "0")
            h.end_headers()
            self.requests.append({"account": "", "scopes": [], "granted": None, "grant": "refresh_token"})
            return
        self._issue(h, user, form.get("scope", [""])[0].split(), form.get("service", [SERVICE])[0], {}, "refresh_token")

    def _issue(self, h: BaseHTTPRequestHandler, user: str, scopes: list[str], service: str,
               extra: dict[str, str], grant: str) -> None:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if user:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self.requests.append({"account": user, "scopes": scopes, "granted": access, "grant": grant})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": user, "aud": service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        body = json.dumps({"token": f"{signing}.{_b64(sig)}", "expires_in": 300, **extra}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
