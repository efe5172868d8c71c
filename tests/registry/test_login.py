"""Issue 9: basic auth. A registry with htpasswd (Debian's docker-registry): `docker login`
(POST /auth) checks the credentials against it, the docker CLI then pulls with the
X-Registry-Auth header it sends; docker-py's login and pull with auth_config; a wrong password
is a 401 with Docker's words; without credentials the pull is refused; the password never
appears in the daemon's log."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest

from ..helpers import BIN, DOCKER
from .conftest import PASSWORD, USER, save_image, skopeo_copy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def secured(auth_registry, daemon, tmp_path_factory):
    tar = save_image(daemon, "busybox:latest", tmp_path_factory.mktemp("auth-archive") / "busybox.tar")
    skopeo_copy(tar, f"{auth_registry}/private/bb:1", creds=f"{USER}:{PASSWORD}")
    return auth_registry


def test_docker_cli_login_then_pull(secured, fresh_daemon, tmp_path):
    d = fresh_daemon(image=False)
    env = {**d.env(), "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    p = subprocess.run([DOCKER, "pull", f"{secured}/private/bb:1"], env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "denied" in p.stderr, p.stderr
    p = subprocess.run([DOCKER, "login", "-u", USER, "--password-stdin", secured], env=env, input="wrong\n",
                       capture_output=True, text=True)
    assert p.returncode != 0 and "401 Unauthorized" in p.stderr, p.stderr
    p = subprocess.run([DOCKER, "login", "-u", USER, "--password-stdin", secured], env=env, input=PASSWORD + "\n",
                       capture_output=True, text=True)
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    p = subprocess.run([DOCKER, "run", "--rm", f"{secured}/private/bb:1", "echo", "private"], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "private\n", p.stderr
    assert PASSWORD not in d.log.read_text()


def test_docker_py_login_and_pull_with_auth_config(secured, fresh_daemon):
    d = fresh_daemon(image=False)
    c = docker.DockerClient(base_url=d.host, version="1.41")
    with pytest.raises(docker.errors.APIError) as e:
        c.login(username=USER, password="nope", registry=f"http://{secured}", reauth=True)
    assert e.value.status_code == 401
    assert c.login(username=USER, password=PASSWORD, registry=f"http://{secured}", reauth=True)["Status"] == \
        "Login Succeeded"
    img = c.images.pull(f"{secured}/private/bb", tag="1", auth_config={"username": USER, "password": PASSWORD})
    assert f"{secured}/private/bb:1" in img.tags
    r = c.api._post(c.api._url("/images/create"), params={"fromImage": f"{secured}/private/bb", "tag": "1"},
                    headers={"X-Registry-Auth": "not base64 json!"})
    assert r.status_code == 400 and "X-Registry-Auth" in r.json()["message"]
    c.close()
    assert PASSWORD not in d.log.read_text()


def test_dockyard_login_pull_logout(secured, fresh_daemon, tmp_path):
    d = fresh_daemon(image=False)
    env = {**d.env(), "DOCKER_CONFIG": str(tmp_path / "cfg")}
    dy = str(BIN / "dockyard")
    p = subprocess.run([dy, "login", "-u", USER, "--password-stdin", secured], env=env, input="bad\n",
                       capture_output=True, text=True)
    assert p.returncode == 1 and "401" in p.stderr, p.stderr
    p = subprocess.run([dy, "login", "-u", USER, "--password-stdin", secured], env=env, input=PASSWORD + "\n",
                       capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "Login Succeeded\n", p.stderr
    cfg = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert secured in cfg["auths"] and oct((tmp_path / "cfg" / "config.json").stat().st_mode & 0o777) == "0o600"
    p = subprocess.run([dy, "pull", "-q", f"{secured}/private/bb:1"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"{secured}/private/bb:1", p.stderr
    p = subprocess.run([dy, "logout", secured], env=env, capture_output=True, text=True)
    assert p.stdout == f"Removing login credentials for {secured}\n"
    assert secured not in json.loads((tmp_path / "cfg" / "config.json").read_text())["auths"]
    assert PASSWORD not in d.log.read_text()


def test_dockyard_login_with_a_credential_helper(secured, fresh_daemon, tmp_path):
    """`credsStore`: the password goes to the helper, not config.json; pull and run use it; logout
    erases it. A helper that is not installed is a clear error."""
    import os
    from pathlib import Path
    d = fresh_daemon(image=False)
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    (cfgdir / "config.json").write_text(json.dumps({"credsStore": "dytest"}))
    env = {**d.env(), "DOCKER_CONFIG": str(cfgdir), "DYTEST_CREDS": str(tmp_path / "creds.json"),
           "PATH": f"{Path(__file__).parent / 'bin'}:{os.environ['PATH']}"}

    def dy(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "dockyard"), *args], env=env, capture_output=True, text=True, input=input)
    p = dy("login", "-u", USER, "--password-stdin", secured, input=PASSWORD + "\n")
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    assert PASSWORD not in (cfgdir / "config.json").read_text()
    assert json.loads((tmp_path / "creds.json").read_text())[secured]["Secret"] == PASSWORD
    p = dy("run", "--rm", f"{secured}/private/bb:1", "echo", "helped")
    assert p.returncode == 0 and p.stdout == "helped\n", p.stderr
    assert "Unable to find image" in p.stderr
    p = dy("logout", secured)
    assert p.returncode == 0 and f"Removing login credentials for {secured}" in p.stdout, p.stderr
    assert secured not in json.loads((tmp_path / "creds.json").read_text())
    p = dy("pull", f"{secured}/private/bb:1")
    assert p.returncode != 0 and "denied" in p.stderr, p.stderr
    (cfgdir / "config.json").write_text(json.dumps({"credHelpers": {secured: "absent"}}))
    p = dy("pull", f"{secured}/private/bb:1")
    assert p.returncode != 0 and "docker-credential-absent" in p.stderr, p.stderr
    assert PASSWORD not in d.log.read_text()
