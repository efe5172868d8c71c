"""Driving the registry's web pages with plain HTTP (the browser test drives them in Chromium)."""

from __future__ import annotations

import re

import requests


def signed_in(reg, user: str, password: str) -> requests.Session:
    s = requests.Session()
    r = s.post(f"{reg.url}/login", data={"username": user, "password": password, "next": "/"}, allow_redirects=False)
    assert r.status_code == 303, r.text
    return s


def csrf(s: requests.Session, url: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', s.get(url).text)
    assert m, "no CSRF token on the page"
    return m.group(1)


def create_token(reg, user: str, password: str, name: str) -> str:
    """A personal access token made on the account page."""
    s = signed_in(reg, user, password)
    r = s.post(f"{reg.url}/account/tokens", data={"name": name, "csrf": csrf(s, f"{reg.url}/account")})
    m = re.search(r'id="new-token">([^<]+)<', r.text)
    assert r.status_code == 200 and m, r.text[:2000]
    return m.group(1)
