"""The web pages end to end in headless Chromium (Debian's chromium and chromium-driver, driven
with selenium): sign in, browse, search, read a manifest's layers and history, create a personal
access token and `docker login` with it, delete a tag, manage accounts as an admin — on a desktop
window and on a phone-sized one. Screenshots are kept in test-artifacts/registry-web/."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from ..helpers import BIN, DOCKER, REPO
from .images import docker_archive, random_layer

pytestmark = pytest.mark.root
ARTIFACTS = REPO / "test-artifacts" / "registry-web"
ADMIN_PW, ALICE_PW = "admin-web-pass", "alice-web-pass"


@pytest.fixture
def browser(tmp_path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,900"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    drv.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield drv
    drv.quit()


def _loads(drv, action) -> None:
    """Do something that loads a new page and wait until it has loaded (else the next lookup may find the old
    page's elements). The old page is marked with a script variable a new page does not have; asking whether an
    old element went stale is racy in Chromium (an unknown error instead of a stale-element one)."""
    from selenium.webdriver.support.ui import WebDriverWait
    drv.execute_script("window.__dyOldPage = true;")
    action()
    WebDriverWait(drv, 20).until(
        lambda d: d.execute_script("return !window.__dyOldPage && document.readyState === 'complete';"))


def _go(drv, by: str, what: str) -> None:
    """Click something that loads a new page, and wait until it has."""
    _loads(drv, lambda: drv.find_element(by, what).click())


def _shot(drv, name: str) -> None:
    drv.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_sign_in_browse_search_token_login_delete(browser, make_registry, tmp_path, fresh_daemon):
    from selenium.webdriver.common.by import By
    reg = make_registry(f"dockyard:\n  accounts:\n    database: {tmp_path}/acc.db\n"
                        f"    admin: {{username: admin, password: {ADMIN_PW}}}\n  web:\n    title: Team registry\n")
    p = subprocess.run([str(BIN / "dockyard-registry"), "user", str(reg.config), "add", "alice", "--password-stdin"],
                       input=ALICE_PW + "\n", capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    archive = docker_archive(tmp_path / "img.tar", [random_layer(300_000), random_layer(2000, "etc.conf")],
                             cmd=["/bin/app"])
    for tag in ("1", "2"):
        p = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", f"alice:{ALICE_PW}",
                            f"docker-archive:{archive}", f"docker://{reg.addr}/alice/web:{tag}"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    b, base = browser, reg.url
    b.get(base + "/")
    assert "Team registry" in b.title
    assert "alice/web" not in b.page_source             # anonymous sees nothing private
    _go(b, By.ID, "sign-in")
    b.find_element(By.ID, "username").send_keys("alice")
    b.find_element(By.ID, "password").send_keys("not-her-password")
    _go(b, By.ID, "submit")
    assert "Wrong user name or password" in b.find_element(By.ID, "message").text
    b.find_element(By.ID, "username").send_keys("alice")
    b.find_element(By.ID, "password").send_keys(ALICE_PW)
    _go(b, By.ID, "submit")
    assert b.find_element(By.ID, "account").text == "alice"
    assert b.find_element(By.LINK_TEXT, "alice/web")
    _shot(b, "01-home")
    b.find_element(By.NAME, "q").send_keys("we")
    _loads(b, lambda: b.find_element(By.NAME, "q").submit())
    rows = b.find_elements(By.CSS_SELECTOR, "#repositories td a")
    assert [r.text for r in rows] == ["alice/web"]
    _go(b, By.LINK_TEXT, "alice/web")
    assert b.find_element(By.ID, "pull-repo").get_attribute("value") == f"docker pull {reg.addr}/alice/web"
    assert {e.get_attribute("id") for e in b.find_elements(By.CSS_SELECTOR, "#tags tr[id]")} == {"tag-1", "tag-2"}
    _shot(b, "02-repository")
    _go(b, By.LINK_TEXT, "1")
    layers = b.find_elements(By.CSS_SELECTOR, "#layers tr")[1:]
    assert len(layers) == 2 and "layer 0" in layers[0].text and "KiB" in layers[0].text
    assert b.find_element(By.ID, "pull-cmd").get_attribute("value").startswith(f"docker pull {reg.addr}/alice/web@sha256:")
    assert "linux/amd64" in b.page_source
    _shot(b, "03-manifest")
    # a token, then docker login with it
    b.get(base + "/account")
    b.find_element(By.ID, "token-name").send_keys("laptop")
    _go(b, By.ID, "create-token")
    token = b.find_element(By.ID, "new-token").text.strip()
    assert token.startswith("dyp_")
    assert "laptop" in b.find_element(By.ID, "tokens").text
    _shot(b, "04-token")
    d = fresh_daemon(image=False)
    env = {**d.env(), "DOCKER_CONFIG": str(tmp_path / "dcfg")}
    p = subprocess.run([DOCKER, "login", "-u", "alice", "--password-stdin", reg.addr], env=env, input=token + "\n",
                       capture_output=True, text=True)
    assert p.returncode == 0 and "Login Succeeded" in p.stdout, p.stderr
    p = subprocess.run([DOCKER, "pull", f"{reg.addr}/alice/web:2"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # delete a tag from its page (accepting the confirmation)
    b.get(base + "/r/alice/web")

    def delete_tag_1():
        b.find_element(By.ID, "delete-1").click()
        b.switch_to.alert.accept()
    _loads(b, delete_tag_1)
    assert {e.get_attribute("id") for e in b.find_elements(By.CSS_SELECTOR, "#tags tr[id]")} == {"tag-2"}
    r = requests.get(f"{reg.url}/v2/alice/web/manifests/1", auth=("alice", ALICE_PW))
    assert r.status_code == 404
    # readable on a phone: nothing wider than the screen
    b.set_window_size(390, 844)
    for path, name in (("/r/alice/web", "05-phone-repository"), ("/r/alice/web/manifests/2", "06-phone-manifest")):
        b.get(base + path)
        assert b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        _shot(b, name)
    b.set_window_size(1280, 900)
    # the admin manages accounts and permissions; alice may not
    b.get(base + "/admin")
    assert "administrators only" in b.page_source
    _go(b, By.ID, "sign-out")
    b.get(base + "/login")
    b.find_element(By.ID, "username").send_keys("admin")
    b.find_element(By.ID, "password").send_keys(ADMIN_PW)
    _go(b, By.ID, "submit")
    _go(b, By.ID, "admin-link")
    b.find_element(By.ID, "new-user").send_keys("bob")
    b.find_element(By.ID, "new-password").send_keys("bob-web-pass")
    _go(b, By.ID, "add-user")
    b.find_element(By.ID, "grant-subject").send_keys("bob")
    b.find_element(By.ID, "grant-pattern").send_keys("alice/*")
    b.find_element(By.ID, "grant-actions").send_keys("pull")
    _go(b, By.ID, "add-grant")
    assert "user:bob" in b.find_element(By.ID, "grants").text and "bob" in b.find_element(By.ID, "users").text
    _shot(b, "07-admin")
    tok = requests.get(f"{reg.url}/token", params={"service": "dockyard-registry", "scope": "repository:alice/web:pull,push"},
                       auth=("bob", "bob-web-pass")).json()
    assert tok["scope"] == "repository:alice/web:pull"
    # forms without the CSRF token are refused
    s = requests.Session()
    s.post(f"{reg.url}/login", data={"username": "admin", "password": ADMIN_PW}, allow_redirects=False)
    assert s.post(f"{reg.url}/admin/users/delete", data={"name": "bob"}).status_code == 403
