"""Accounts and auth (the book's index, 4.2.3 / 4.3.4): htpasswd Basic; dockyard-registry's own
accounts, teams, robots and personal access tokens with its token server (GET /token with Basic,
POST /token with the password and refresh_token grants, identity tokens, down-scoping); tokens of
an outside token server (`auth.token`); anonymous pull per repository; rate-limited bad
passwords; driven by the docker CLI, `dockyard`, docker-py and skopeo."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import bcrypt
import docker
import jwt
import pytest
import requests

from ..helpers import BIN, DOCKER
from .images import docker_archive, random_layer

pytestmark = pytest.mark.root
ADMIN_PW, ALICE_PW, BOB_PW, EVE_PW = "admin-pass-1", "alice-pass-1", "bob-pass-12", "eve-pass-123"


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


def _user(reg, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dockyard-registry"), "user", str(reg.config), *args,
                           *(["--password-stdin"] if password else [])], input=(password + "\n") if password else None,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return docker_archive(tmp_path_factory.mktemp("auth-img") / "img.tar", [random_layer(20_000)])


@pytest.fixture
def accounts_registry(make_registry, tmp_path):
    reg = make_registry(f"dockyard:\n  accounts:\n    database: {tmp_path}/accounts.db\n"
                        f"    admin: {{username: admin, password: {ADMIN_PW}}}\n    anonymous: ['public/*']\n"
                        "    loginattempts: 4\n    lockout: 30s\n")
    for name, pw in (("alice", ALICE_PW), ("bob", BOB_PW), ("eve", EVE_PW)):
        p = _user(reg, "add", name, password=pw)
        assert p.returncode == 0, p.stderr
    # bob reads alice's namespace through a grant; eve has nothing
    assert _user(reg, "grant", "bob", "--repository", "alice/*", "--actions", "pull").returncode == 0
    return reg


def test_token_server_challenge_down_scoping_and_claims(accounts_registry):
    base = accounts_registry.url
    r = requests.get(f"{base}/v2/")
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge == f'Bearer realm="{base}/token",service="dockyard-registry"'
    r = requests.get(f"{base}/v2/alice/app/tags/list")
    assert r.status_code == 401 and 'scope="repository:alice/app:pull"' in r.headers["WWW-Authenticate"]
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    # bob asks for pull and push on alice/app: gets pull only
    r = requests.get(f"{base}/token", params={"service": "dockyard-registry", "scope": "repository:alice/app:pull,push"},
                     auth=("bob", BOB_PW))
    assert r.status_code == 200
    tok = r.json()["token"]
    header = jwt.get_unverified_header(tok)
    claims = jwt.decode(tok, options={"verify_signature": False})
    assert header["kid"] and header["alg"] == "ES256"
    assert claims["aud"] == "dockyard-registry" and claims["sub"] == "bob" and claims["exp"] > claims["iat"]
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]
    # a bad password is a 401; the password is not in the log
    r = requests.get(f"{base}/token", params={"service": "dockyard-registry"}, auth=("bob", "wrong-password"))
    assert r.status_code == 401
    assert BOB_PW not in accounts_registry.log.read_text() and "wrong-password" not in accounts_registry.log.read_text()


def test_oauth2_password_and_refresh_grants(accounts_registry):
    base = accounts_registry.url
    r = requests.post(f"{base}/token", data={"grant_type": "password", "username": "alice", "password": ALICE_PW,
                                             "service": "dockyard-registry", "scope": "repository:alice/x:push,pull",
                                             "access_type": "offline", "client_id": "test"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] and body["refresh_token"] and body["expires_in"] > 0
    assert body["scope"] == "repository:alice/x:push,pull"
    r = requests.post(f"{base}/token", data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                             "service": "dockyard-registry", "scope": "repository:alice/x:pull"})
    assert r.status_code == 200
    tok = r.json()["access_token"]
    r = requests.get(f"{base}/v2/alice/x/tags/list", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 404   # allowed, the repository just does not exist yet
    r = requests.post(f"{base}/token", data={"grant_type": "refresh_token", "refresh_token": "dyr_forged",
                                             "service": "dockyard-registry"})
    assert r.status_code == 401
    # a token signed by someone else is refused
    forged = jwt.encode({"iss": "dockyard-registry", "aud": "dockyard-registry", "exp": 9999999999, "sub": "alice",
                         "access": [{"type": "repository", "name": "alice/x", "actions": ["pull"]}]}, "k", "HS256")
    assert requests.get(f"{base}/v2/alice/x/tags/list", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_bad_passwords_are_rate_limited(accounts_registry):
    base = accounts_registry.url
    codes = [requests.get(f"{base}/token", params={"service": "dockyard-registry"}, auth=("eve", f"bad{i}")).status_code
             for i in range(6)]
    assert codes[:4] == [401] * 4 and codes[4:] == [429, 429]
    # locked out even with the right password until the window passes
    assert requests.get(f"{base}/token", params={"service": "dockyard-registry"}, auth=("eve", EVE_PW)).status_code == 429
    # another account is not affected
    assert requests.get(f"{base}/token", params={"service": "dockyard-registry"}, auth=("bob", BOB_PW)).status_code == 200


def test_clients_login_push_pull_with_permissions(accounts_registry, fresh_daemon, archive, tmp_path):
    reg = accounts_registry
    a = reg.addr
    # skopeo with --creds pushes into alice's namespace (push-to-create) and into public/
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"alice:{ALICE_PW}",
                f"docker-archive:{archive}", f"docker://{a}/alice/app:1")
    assert p.returncode == 0, p.stderr
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"admin:{ADMIN_PW}",
                f"docker-archive:{archive}", f"docker://{a}/public/app:1")
    assert p.returncode == 0, p.stderr
    # eve may not push into alice's namespace
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"eve:{EVE_PW}",
                f"docker-archive:{archive}", f"docker://{a}/alice/evil:1")
    assert p.returncode != 0 and "403" in p.stderr, p.stderr
    # anonymous: public/* pulls, alice/* does not, and never another repository's data
    assert _skopeo("inspect", "--tls-verify=false", f"docker://{a}/public/app:1").returncode == 0
    p = _skopeo("inspect", "--tls-verify=false", f"docker://{a}/alice/app:1")
    assert p.returncode != 0
    manifest = requests.get(f"{reg.url}/v2/alice/app/manifests/1")
    assert manifest.status_code == 401 and b"layers" not in manifest.content
    # the docker CLI through dockyardd: login, pull (bob may), push (bob may not)
    d = fresh_daemon(image=False)
    env = {**d.env(), "DOCKER_CONFIG": str(tmp_path / "cfg")}
    p = subprocess.run([DOCKER, "login", "-u", "bob", "--password-stdin", a], env=env, input="nope\n",
                       capture_output=True, text=True)
    assert p.returncode != 0, p.stdout
    p = subprocess.run([DOCKER, "login", "-u", "bob", "--password-stdin", a], env=env, input=BOB_PW + "\n",
                       capture_output=True, text=True)
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    auth = json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"][a]
    assert "identitytoken" in auth or "auth" in auth
    p = subprocess.run([DOCKER, "pull", f"{a}/alice/app:1"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    subprocess.run([DOCKER, "tag", f"{a}/alice/app:1", f"{a}/alice/bobs:1"], env=env, check=True)
    p = subprocess.run([DOCKER, "push", f"{a}/alice/bobs:1"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "denied" in p.stderr, p.stderr
    # catalog: bob sees what he may pull (alice's and public), not the rest
    tok = requests.get(f"{reg.url}/token", params={"service": "dockyard-registry", "scope": "registry:catalog:*"},
                       auth=("bob", BOB_PW)).json()["token"]
    cat = requests.get(f"{reg.url}/v2/_catalog", headers={"Authorization": f"Bearer {tok}"}).json()["repositories"]
    assert cat == ["alice/app", "public/app"]
    # docker-py and dockyard with a personal access token (made on the account; used as the password)
    from .web_helpers import create_token
    pat = create_token(reg, "alice", ALICE_PW, "ci")
    c = docker.APIClient(base_url=d.host, version="1.41")
    assert c.login("alice", pat, registry=a, reauth=True)["Status"] == "Login Succeeded"
    c.tag(f"{a}/alice/app:1", f"{a}/alice/pushed-with-pat", "1")
    out = list(c.push(f"{a}/alice/pushed-with-pat", tag="1", stream=True, decode=True,
                      auth_config={"username": "alice", "password": pat}))
    assert not [m for m in out if "error" in m], out
    c.close()
    p = subprocess.run([str(BIN / "dockyard"), "login", "-u", "bob", "--password-stdin", a], env=env,
                       input=BOB_PW + "\n", capture_output=True, text=True)
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    p = subprocess.run([str(BIN / "dockyard"), "pull", f"{a}/alice/pushed-with-pat:1"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_robot_account(accounts_registry, archive):
    p = _user(accounts_registry, "add", "alice+ci", "--robot")
    assert p.returncode == 0, p.stderr
    robot, secret = p.stdout.split()
    assert robot == "alice+ci" and secret.startswith("dyp_")
    assert _user(accounts_registry, "grant", robot, "--repository", "alice/*", "--actions", "pull,push").returncode == 0
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"{robot}:{secret}",
                f"docker-archive:{archive}", f"docker://{accounts_registry.addr}/alice/by-robot:1")
    assert p.returncode == 0, p.stderr
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"{robot}:{secret}",
                f"docker-archive:{archive}", f"docker://{accounts_registry.addr}/bob/by-robot:1")
    assert p.returncode != 0


def test_htpasswd_basic(make_registry, tmp_path, archive):
    hashed = bcrypt.hashpw(b"basic-secret", bcrypt.gensalt(5)).decode()
    (tmp_path / "htpasswd").write_text(f"carol:{hashed}\n")
    reg = make_registry(f"auth:\n  htpasswd:\n    realm: dy-basic\n    path: {tmp_path}/htpasswd\n")
    r = requests.get(f"{reg.url}/v2/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="dy-basic"'
    assert requests.get(f"{reg.url}/v2/", auth=("carol", "basic-secret")).status_code == 200
    assert requests.get(f"{reg.url}/v2/", auth=("carol", "wrong")).status_code == 401
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "carol:basic-secret",
                f"docker-archive:{archive}", f"docker://{reg.addr}/c/img:1")
    assert p.returncode == 0, p.stderr


def test_outside_token_server(make_registry, tmp_path, archive):
    """`auth.token` as distribution: tokens from another server, trusted by its certificate."""
    from ..registry.token_issuer import ISSUER, SERVICE, TokenIssuer
    issuer = TokenIssuer(tmp_path, {"dave": "dave-pass"})
    try:
        reg = make_registry(f"auth:\n  token:\n    realm: {issuer.realm}\n    service: {SERVICE}\n"
                            f"    issuer: {ISSUER}\n    rootcertbundle: {issuer.cert_path}\n")
        r = requests.get(f"{reg.url}/v2/")
        assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="{issuer.realm}",service="{SERVICE}"')
        p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "dave:dave-pass",
                    f"docker-archive:{archive}", f"docker://{reg.addr}/d/img:1")
        assert p.returncode == 0, p.stderr
        assert any(x["account"] == "dave" for x in issuer.requests)
    finally:
        issuer.close()


def test_teams_grant_what_their_members_may_do(accounts_registry):
    base = accounts_registry.url
    p = _user(accounts_registry, "grant", "x", "--team", "qa", "--repository", "alice/*", "--actions", "pull,push")
    assert p.returncode == 0, p.stderr

    def scope(user: str, pw: str) -> str:
        return requests.get(f"{base}/token", params={"service": "dockyard-registry",
                                                      "scope": "repository:alice/app:pull,push,delete"},
                            auth=(user, pw)).json()["scope"]
    assert scope("eve", EVE_PW) == "repository:alice/app:"
    assert _user(accounts_registry, "join", "eve", "--team", "qa").returncode == 0
    assert scope("eve", EVE_PW) == "repository:alice/app:pull,push"
    assert scope("alice", ALICE_PW) == "repository:alice/app:pull,push,delete"     # her own namespace
    assert _user(accounts_registry, "revoke", "x", "--team", "qa", "--repository", "alice/*").returncode == 0
    assert scope("eve", EVE_PW) == "repository:alice/app:"
    listing = _user(accounts_registry, "list").stdout
    assert "alice\tuser" in listing and "admin\tadmin" in listing


def test_mount_from_a_repository_one_may_not_pull_uploads_instead(accounts_registry, archive):
    base = accounts_registry.url
    p = _skopeo("copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"alice:{ALICE_PW}",
                f"docker-archive:{archive}", f"docker://{accounts_registry.addr}/alice/src:1")
    assert p.returncode == 0, p.stderr
    m = requests.get(f"{base}/v2/alice/src/manifests/1", auth=("alice", ALICE_PW),
                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}).json()
    layer = m["layers"][0]["digest"]
    tok = requests.get(f"{base}/token", params={"service": "dockyard-registry", "scope": [
        "repository:eve/copy:pull,push", "repository:alice/src:pull"]}, auth=("eve", EVE_PW)).json()["token"]
    r = requests.post(f"{base}/v2/eve/copy/blobs/uploads/", params={"mount": layer, "from": "alice/src"},
                      headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 202, r.text          # not mounted: an upload session
    assert requests.get(f"{base}/v2/eve/copy/blobs/{layer}", headers={"Authorization": f"Bearer {tok}"}).status_code == 404
    # bob may pull alice's: his mount happens
    tok = requests.get(f"{base}/token", params={"service": "dockyard-registry", "scope": [
        "repository:bob/copy:pull,push", "repository:alice/src:pull"]}, auth=("bob", BOB_PW)).json()["token"]
    r = requests.post(f"{base}/v2/bob/copy/blobs/uploads/", params={"mount": layer, "from": "alice/src"},
                      headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 201, r.text


def test_outside_token_server_autoredirect(make_registry, tmp_path):
    from ..registry.token_issuer import ISSUER, SERVICE, TokenIssuer
    issuer = TokenIssuer(tmp_path, {})
    try:
        reg = make_registry(f"auth:\n  token:\n    realm: https://auth.example.invalid/v2/token\n    service: {SERVICE}\n"
                            f"    issuer: {ISSUER}\n    rootcertbundle: {issuer.cert_path}\n    autoredirect: true\n")
        r = requests.get(f"{reg.url}/v2/")
        assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="http://{reg.addr}/v2/token"')
    finally:
        issuer.close()
