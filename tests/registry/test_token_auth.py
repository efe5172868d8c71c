"""Issue 9, the bearer-token flow: docker-registry with token auth, tokens signed by the test
suite's issuer. Anonymous pulls are refused; `docker login` (POST /auth) gets a token with the
user's credentials; push and pull with docker-py's auth_config and with the docker CLI after
login; a mount from another repository asks for pull on that repository in the same token."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest

from ..helpers import DOCKER
from .conftest import PASSWORD, USER

pytestmark = pytest.mark.root


def test_token_auth_login_push_pull(token_registry, fresh_daemon, tmp_path):
    reg, issuer = token_registry
    auth = {"username": USER, "password": PASSWORD}
    d = fresh_daemon()
    c = docker.APIClient(base_url=d.host, version="1.41")
    iid = c.inspect_image("busybox")["Id"]
    c.tag("busybox", f"{reg}/tok/bb", "1")
    with docker.APIClient(base_url=d.host, version="1.41") as anonymous:
        out = [json.loads(x) for x in anonymous.push(f"{reg}/tok/bb", tag="1", stream=True)]
    assert "denied" in out[-1].get("error", ""), out[-1]
    with pytest.raises(docker.errors.APIError) as e:
        c.login(username=USER, password="wrong", registry=f"http://{reg}", reauth=True)
    assert e.value.status_code == 401
    assert c.login(username=USER, password=PASSWORD, registry=f"http://{reg}", reauth=True)["Status"] == \
        "Login Succeeded"
    out = [json.loads(x) for x in c.push(f"{reg}/tok/bb", tag="1", stream=True, auth_config=auth)]
    assert any("aux" in m for m in out), out
    assert any("repository:tok/bb:pull,push" in r["scopes"] and r["account"] == USER for r in issuer.requests)
    c.tag("busybox", f"{reg}/tok/copy", "1")   # mounted from tok/bb: the token must cover both
    out = [json.loads(x) for x in c.push(f"{reg}/tok/copy", tag="1", stream=True, auth_config=auth)]
    assert any(m.get("status") == "Mounted from tok/bb" for m in out), out
    assert any({"repository:tok/copy:pull,push", "repository:tok/bb:pull"} <= set(r["scopes"])
               for r in issuer.requests)
    c.close()

    other = fresh_daemon(image=False)
    oc = docker.APIClient(base_url=other.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as e:
        oc.pull(f"{reg}/tok/bb", tag="1")
    assert "denied" in str(e.value.explanation)
    oc.pull(f"{reg}/tok/bb", tag="1", auth_config=auth)
    assert oc.inspect_image(f"{reg}/tok/bb:1")["Id"] == iid
    oc.close()
    if DOCKER:
        env = {**other.env(), "DOCKER_CONFIG": str(tmp_path / "cfg")}
        p = subprocess.run([DOCKER, "login", "-u", USER, "--password-stdin", reg], env=env, input=PASSWORD + "\n",
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        p = subprocess.run([DOCKER, "pull", f"{reg}/tok/copy:1"], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    assert PASSWORD not in d.log.read_text() and PASSWORD not in other.log.read_text()


def test_login_keeps_an_identity_token_not_the_password(token_registry, fresh_daemon, tmp_path):
    """The token server gives a refresh token at login (offline_token): POST /auth answers it as
    IdentityToken, `dockyard login` keeps it instead of the password, and pulls use it through
    OAuth2's refresh_token grant."""
    import base64

    from ..helpers import BIN
    reg, issuer = token_registry
    d = fresh_daemon()
    c = docker.APIClient(base_url=d.host, version="1.41")
    c.tag("busybox", f"{reg}/ident/bb", "1")
    c.push(f"{reg}/ident/bb", tag="1", auth_config={"username": USER, "password": PASSWORD})
    rep = c._post_json(c._url("/auth"), data={"username": USER, "password": PASSWORD, "serveraddress": reg}).json()
    assert rep["Status"] == "Login Succeeded" and rep["IdentityToken"], rep
    c.close()
    cfgdir = tmp_path / "cfg"
    other = fresh_daemon(image=False)
    env = {**other.env(), "DOCKER_CONFIG": str(cfgdir)}
    p = subprocess.run([str(BIN / "dockyard"), "login", "-u", USER, "--password-stdin", reg], env=env,
                       input=PASSWORD + "\n", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    entry = json.loads((cfgdir / "config.json").read_text())["auths"][reg]
    assert entry["identitytoken"] and PASSWORD not in json.dumps(entry)
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:"
    before = len([r for r in issuer.requests if r["grant"] == "refresh_token"])
    p = subprocess.run([str(BIN / "dockyard"), "pull", f"{reg}/ident/bb:1"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len([r for r in issuer.requests if r["grant"] == "refresh_token" and r["granted"]]) > before
    entry["identitytoken"] = "forged"
    (cfgdir / "config.json").write_text(json.dumps({"auths": {reg: entry}}))
    p = subprocess.run([str(BIN / "dockyard"), "pull", f"{reg}/ident/bb:1"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "denied" in p.stderr, p.stderr
