"""Web pages (the book's 4.2.2): repositories, tags, manifests with layers, sizes, platforms and
history, copyable pull commands, search, sign-in, personal access tokens, account and permission
management for admins, tag deletion for those allowed. Server-rendered with Jinja2; a signed
session cookie (keyed by `http.secret`); forms carry a CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from ..units import bytes_size
from . import digests, manifests
from .errors import RegistryError

if TYPE_CHECKING:
    from .server import RegistryApp

COOKIE = "dyreg_session"
SESSION_TTL = 12 * 3600


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "never"


class Web:
    """The pages of one registry."""

    def __init__(self, app: RegistryApp) -> None:
        self.app = app
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("dockyard.registryd", "templates"),
                                      autoescape=True)
        secret = app.config.get("http.secret")
        self.key = secret.encode() if secret else secrets.token_bytes(32)
        self.title = app.config.get("dockyard.web.title", "Dockyard registry")

    # ---- who is looking
    @property
    def accounts(self) -> Any:
        return getattr(self.app.auth, "accounts", None)

    def _sign(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()

    def user(self, request: web.Request) -> str:
        raw = request.cookies.get(COOKIE, "")
        value, _, mac = raw.rpartition(".")
        if not value or not hmac.compare_digest(self._sign(value), mac):
            return ""
        user, _, exp = urllib.parse.unquote(value).rpartition("|")
        return user if exp.isdigit() and int(exp) > time.time() else ""

    def csrf(self, request: web.Request) -> str:
        return self._sign("csrf|" + request.cookies.get(COOKIE, ""))

    async def form(self, request: web.Request) -> Any:
        data = await request.post()
        if not hmac.compare_digest(str(data.get("csrf", "")), self.csrf(request)):
            raise web.HTTPForbidden(text="invalid or missing CSRF token; reload the page")
        return data

    async def allowed(self, user: str, repo: str) -> set[str]:
        auth = self.app.auth
        if self.accounts is not None:
            return set(await self.app.run(self.accounts.allowed, user, repo))
        if auth.checks_nothing:
            return {"pull", "push", "delete", "*"}
        return {"pull", "push", "delete", "*"} if user else set()

    async def is_admin(self, user: str) -> bool:
        if self.accounts is None:
            return False
        u = await self.app.run(self.accounts.user, user) if user else None
        return bool(u and u.admin)

    async def render(self, request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
        request["route"] = "web"
        user = self.user(request)
        base = {"title": self.title, "user": user, "csrf": self.csrf(request), "is_admin": await self.is_admin(user),
                "can_sign_in": self.app.auth.passwords,
                "host": request.headers.get("X-Forwarded-Host") or request.host}
        html = self.env.get_template(template).render(**base, **ctx)
        return web.Response(text=html, content_type="text/html", status=status,
                            headers={"X-Frame-Options": "DENY", "Cache-Control": "no-store"})

    # ---- browsing
    async def _visible(self, user: str, q: str = "") -> list[dict[str, str]]:
        names = await self.app.run(self.app.store.repositories)
        out = []
        for n in names:
            if q.lower() in n.lower() and "pull" in await self.allowed(user, n):
                desc = (await self.app.run(self.accounts.repo_info, n))[0] if self.accounts else ""
                out.append({"name": n, "description": desc})
        return out

    async def home(self, request: web.Request) -> web.Response:
        repos = await self._visible(self.user(request))
        return await self.render(request, "repositories.html", repos=repos, heading="Repositories")

    async def search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").strip()
        repos = await self._visible(self.user(request), q)
        return await self.render(request, "repositories.html", repos=repos, q=q, heading=f"Search: {q}")

    async def _repo(self, request: web.Request) -> tuple[str, str, set[str]]:
        repo = request.match_info["name"]
        digests.check_name(repo)
        user = self.user(request)
        allowed = await self.allowed(user, repo)
        if "pull" not in allowed or not await self.app.run(self.app.store.exists, repo):
            raise web.HTTPNotFound(text="no such repository, or you may not see it")
        return repo, user, allowed

    async def repository(self, request: web.Request) -> web.Response:
        repo, user, allowed = await self._repo(request)

        def tags() -> list[dict[str, Any]]:
            out = []
            for t in self.app.store.tags(repo):
                target = self.app.store.tag_target(repo, t)
                if not target:
                    continue
                try:
                    body, _, digest = self.app.store.get_manifest(repo, target[0])
                    size = _total(self.app.store, json.loads(body))
                except (RegistryError, ValueError):
                    continue
                out.append({"name": t, "digest": digest, "size": bytes_size(size), "pushed": _when(target[1]),
                            "ts": target[1]})
            return sorted(out, key=lambda x: -x["ts"])
        desc, public = (await self.app.run(self.accounts.repo_info, repo)) if self.accounts else ("", False)
        return await self.render(request, "repository.html", repo=repo, tags=await self.app.run(tags),
                                 description=desc, public=public, can_admin=bool(self.accounts) and "*" in allowed,
                                 can_delete="delete" in allowed and self.app.config.delete_enabled)

    async def manifest(self, request: web.Request) -> web.Response:
        repo, _, _ = await self._repo(request)
        ref = request.match_info["ref"]
        try:
            body, media, digest = await self.app.run(self.app.store.get_manifest, repo, ref)
        except RegistryError:
            raise web.HTTPNotFound(text="no such manifest") from None
        doc = json.loads(body)
        ctx: dict[str, Any] = {"repo": repo, "ref": ref, "digest": digest, "media_type": media}
        if media in manifests.INDEXES:
            ctx["platforms"] = [{"platform": _platform(d.get("platform") or {}), "digest": d["digest"],
                                 "size": bytes_size(d.get("size", 0))} for d in doc.get("manifests", [])]
            ctx["total"] = bytes_size(sum(d.get("size", 0) for d in doc.get("manifests", [])))
        else:
            history, platform = await self.app.run(_config_facts, self.app.store, doc)
            built = [h for h in history if not h.get("empty_layer")]
            ctx["layers"] = [{"digest": layer["digest"], "size": bytes_size(layer.get("size", 0)),
                              "created_by": (built[i].get("created_by", "") if i < len(built) else "")}
                             for i, layer in enumerate(doc.get("layers", []))]
            ctx["history"] = [{"created": h.get("created", ""), "created_by": h.get("created_by", "")} for h in history]
            ctx["platform"] = platform
            ctx["total"] = bytes_size(_total(self.app.store, doc))
        return await self.render(request, "manifest.html", **ctx)

    async def delete_tag(self, request: web.Request) -> web.StreamResponse:
        repo, user, allowed = await self._repo(request)
        data = await self.form(request)
        if "delete" not in allowed or not self.app.config.delete_enabled:
            raise web.HTTPForbidden(text="you may not delete in this repository")
        self.app.writable()
        tag = str(data.get("tag", ""))
        digests.check_tag(tag)
        await self.app.run(self.app.store.delete_manifest, repo, tag)
        self.app.notify("delete", request, repo, tag=tag)
        raise web.HTTPSeeOther(f"/r/{repo}")

    async def settings(self, request: web.Request) -> web.StreamResponse:
        repo, user, allowed = await self._repo(request)
        data = await self.form(request)
        if not self.accounts or "*" not in allowed:
            raise web.HTTPForbidden(text="you may not change this repository")
        await self.app.run(self.accounts.set_repo, repo, str(data.get("description", ""))[:500], data.get("public") == "1")
        raise web.HTTPSeeOther(f"/r/{repo}")

    # ---- signing in
    async def login_page(self, request: web.Request) -> web.Response:
        return await self.render(request, "login.html", next=request.query.get("next", "/"))

    async def login(self, request: web.Request) -> web.StreamResponse:
        data = await request.post()
        name, pw = str(data.get("username", "")), str(data.get("password", ""))
        nxt = str(data.get("next", "/"))
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        try:
            auth: Any = self.app.auth
            if self.accounts is not None:
                await auth.login(request, name, pw)
            else:
                import base64
                req = request.clone(headers={**request.headers,
                                             "Authorization": "Basic " + base64.b64encode(f"{name}:{pw}".encode()).decode()})
                await self.app.auth.identify(req, [])
        except RegistryError as e:
            return await self.render(request, "login.html", status=e.status, next=nxt, error=True,
                                     message="Too many attempts; wait a minute" if e.status == 429
                                     else "Wrong user name or password")
        value = urllib.parse.quote(f"{name}|{int(time.time()) + SESSION_TTL}")
        resp = web.HTTPSeeOther(nxt)
        resp.set_cookie(COOKIE, f"{value}.{self._sign(value)}", httponly=True, samesite="Lax", max_age=SESSION_TTL,
                        secure=request.scheme == "https")
        raise resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await self.form(request)
        resp = web.HTTPSeeOther("/")
        resp.del_cookie(COOKIE)
        raise resp

    # ---- the account page: tokens, password
    def _signed_in(self, request: web.Request) -> str:
        user = self.user(request)
        if not user or self.accounts is None:
            raise web.HTTPSeeOther(f"/login?next={urllib.parse.quote(request.path)}")
        return user

    async def account(self, request: web.Request, new_token: str = "", message: str = "", error: bool = False
                      ) -> web.Response:
        user = self._signed_in(request)
        tokens = [{**t, "created": _when(t["created"]), "last_used": _when(t["last_used"])}
                  for t in await self.app.run(self.accounts.tokens, user)]
        return await self.render(request, "account.html", tokens=tokens, new_token=new_token, message=message,
                                 error=error)

    async def create_token(self, request: web.Request) -> web.Response:
        user = self._signed_in(request)
        data = await self.form(request)
        name = str(data.get("name", "")).strip()[:100] or "token"
        token = await self.app.run(self.accounts.new_token, user, name)
        return await self.account(request, new_token=token, message=f"Token {name!r} created")

    async def revoke_token(self, request: web.Request) -> web.StreamResponse:
        user = self._signed_in(request)
        data = await self.form(request)
        await self.app.run(self.accounts.revoke_token, user, str(data.get("id", "")))
        raise web.HTTPSeeOther("/account")

    async def password(self, request: web.Request) -> web.Response:
        user = self._signed_in(request)
        data = await self.form(request)
        try:
            auth: Any = self.app.auth
            await auth.login(request, user, str(data.get("old", "")))
            await self.app.run(self.accounts.set_password, user, str(data.get("new", "")))
        except (RegistryError, ValueError) as e:
            return await self.account(request, message=f"Password not changed: {e}", error=True)
        return await self.account(request, message="Password changed")

    # ---- administration
    async def _admin(self, request: web.Request) -> str:
        user = self._signed_in(request)
        if not await self.is_admin(user):
            raise web.HTTPForbidden(text="administrators only")
        return user

    async def admin(self, request: web.Request, **ctx: Any) -> web.Response:
        user = self._signed_in(request)
        if not await self.is_admin(user):
            return await self.render(request, "repositories.html", status=403, repos=[], heading="Administration",
                                     message="administrators only", error=True)
        return await self.render(request, "admin.html", users=await self.app.run(self.accounts.users),
                                 grants=await self.app.run(self.accounts.grants), **ctx)

    async def admin_post(self, request: web.Request) -> web.StreamResponse:
        await self._admin(request)
        data = await self.form(request)
        what = request.match_info["what"]
        acc = self.accounts
        try:
            if what == "users":
                if data.get("robot") == "1":
                    owner, _, name = str(data.get("name", "")).partition("+")
                    robot, secret = await self.app.run(acc.add_robot, owner, name or "robot")
                    return await self.admin(request, robot_secret=f"{robot}  {secret}", message=f"Robot {robot} added")
                await self.app.run(lambda: acc.add_user(str(data.get("name", "")), str(data.get("password", "")),
                                                        admin=data.get("admin") == "1"))
            elif what == "users/delete":
                await self.app.run(acc.delete_user, str(data.get("name", "")))
            elif what == "grants":
                await self.app.run(acc.grant, str(data.get("subject", "")), str(data.get("pattern", "")),
                                   {a.strip() for a in str(data.get("actions", "")).split(",") if a.strip()},
                                   str(data.get("kind", "user")))
            elif what == "grants/revoke":
                await self.app.run(acc.revoke, str(data.get("subject", "")), str(data.get("pattern", "")),
                                   str(data.get("kind", "user")))
            elif what == "members":
                await self.app.run(acc.add_member, str(data.get("team", "")), str(data.get("user", "")))
            else:
                raise web.HTTPNotFound()
        except ValueError as e:
            return await self.admin(request, message=str(e), error=True)
        raise web.HTTPSeeOther("/admin")


def _platform(p: dict[str, Any]) -> str:
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x) or "unknown"


def _total(store: Any, doc: dict[str, Any]) -> int:
    if "manifests" in doc:
        return sum(int(d.get("size", 0)) for d in doc.get("manifests", []))
    return int(doc.get("config", {}).get("size", 0)) + sum(int(x.get("size", 0)) for x in doc.get("layers", []))


def _config_facts(store: Any, doc: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """History and platform from an image's config blob (nothing for artifacts)."""
    cfg = doc.get("config", {})
    if not cfg.get("digest") or cfg.get("size", 0) > 1 << 20:
        return [], ""
    try:
        config = json.loads(store.d.get(store.blob_path(cfg["digest"])))
    except (FileNotFoundError, ValueError, RegistryError):
        return [], ""
    if not isinstance(config, dict):
        return [], ""
    return [h for h in config.get("history") or [] if isinstance(h, dict)], _platform(config)


def install(app: RegistryApp) -> None:
    w = Web(app)
    app.web = w
    app.extra_routes += [
        ("GET", "/", w.home), ("GET", "/search", w.search),
        ("GET", r"/r/{name:.+}/manifests/{ref}", w.manifest), ("POST", r"/r/{name:.+}/delete-tag", w.delete_tag),
        ("POST", r"/r/{name:.+}/settings", w.settings), ("GET", r"/r/{name:.+}", w.repository),
        ("GET", "/login", w.login_page), ("POST", "/login", w.login), ("POST", "/logout", w.logout),
        ("GET", "/account", w.account), ("POST", "/account/tokens", w.create_token),
        ("POST", "/account/tokens/revoke", w.revoke_token), ("POST", "/account/password", w.password),
        ("GET", "/admin", w.admin), ("POST", r"/admin/{what:.+}", w.admin_post)]
