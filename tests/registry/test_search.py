"""Issue 9: search. `host:port/term` searches a v2 registry's catalog (dockerd cannot search a
private registry, moby #14081); docker CLI, docker-py and dockyard as clients; limits and
filters as dockerd validates them."""

from __future__ import annotations

import subprocess

import docker
import pytest

from ..helpers import BIN, DOCKER
from .conftest import save_image, skopeo_copy

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def catalog(registry, daemon, tmp_path_factory):
    tar = save_image(daemon, "busybox:latest", tmp_path_factory.mktemp("search") / "busybox.tar")
    for name in ("findme/alpha", "findme/alphabet", "other/beta"):
        skopeo_copy(tar, f"{registry}/{name}:1")
    return registry


def test_search_a_private_registry(catalog, daemon):
    c = docker.DockerClient(base_url=daemon.host, version="1.41")
    names = [r["name"] for r in c.images.search(f"{catalog}/alpha")]
    assert names == [f"{catalog}/findme/alpha", f"{catalog}/findme/alphabet"], names
    assert [r["name"] for r in c.api.search(f"{catalog}/beta")] == [f"{catalog}/other/beta"]
    assert c.api.search(f"{catalog}/nothing-like-this") == []
    r = c.api._get(c.api._url("/images/search"), params={"term": f"{catalog}/alpha", "limit": 1})
    assert len(r.json()) == 1
    r = c.api._get(c.api._url("/images/search"), params={"term": f"{catalog}/alpha", "limit": 0})
    assert r.status_code == 400 and "Limit 0 is outside the range of [1, 100]" in r.json()["message"]
    r = c.api._get(c.api._url("/images/search"), params={"term": f"{catalog}/alpha",
                                                         "filters": '{"stars": ["1"]}'})
    assert r.json() == []
    r = c.api._get(c.api._url("/images/search"), params={"term": f"{catalog}/alpha", "filters": '{"color": ["x"]}'})
    assert r.status_code == 400 and "invalid filter 'color'" in r.json()["message"]
    c.close()


def test_search_with_both_clis(catalog, daemon):
    p = subprocess.run([DOCKER, "search", f"{catalog}/alpha"], env=daemon.env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    assert [ln.split()[0] for ln in lines[1:]] == [f"{catalog}/findme/alpha", f"{catalog}/findme/alphabet"]
    p = subprocess.run([str(BIN / "dockyard"), "search", "--limit", "1", f"{catalog}/alpha"], env=daemon.env(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"] and len(lines) == 2
    p = subprocess.run([str(BIN / "dockyard"), "search", "--format", "{{.Name}}", f"{catalog}/beta"],
                       env=daemon.env(), capture_output=True, text=True)
    assert p.stdout == f"{catalog}/other/beta\n", p.stderr
