"""System endpoints through docker-py and raw HTTP."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


def test_ping_version_info(client):
    assert client.ping() is True
    v = client.version()
    assert v["ApiVersion"] == "1.41"
    assert v["Os"] == "linux"
    info = client.info()
    assert info["Driver"] == "overlay2"
    assert info["Images"] >= 1
    assert "dockyard" in info["Runtimes"]


def test_version_prefix_and_negotiation(daemon):
    import docker
    low = docker.APIClient(base_url=daemon.host, version="1.30")
    assert low.version()["ApiVersion"] == "1.41"
    low.close()
    too_new = docker.APIClient(base_url=daemon.host, version="1.99")
    with pytest.raises(docker.errors.APIError) as e:
        too_new.containers()
    assert e.value.status_code == 400
    assert "too new" in str(e.value)
    too_new.close()


def test_head_ping_and_headers(daemon):
    import docker
    api = docker.APIClient(base_url=daemon.host, version="auto")
    r = api._get(api.base_url + "/_ping")
    assert r.text == "OK"
    assert r.headers["Api-Version"] == "1.41"
    r = api.head(api.base_url + "/_ping") if hasattr(api, "head") else api._result(api.get(api.base_url + "/_ping"))
    api.close()


def test_unknown_route_is_404_json(daemon):
    import docker
    api = docker.APIClient(base_url=daemon.host, version="auto")
    r = api._get(api._url("/nonexistent/thing"))
    assert r.status_code == 404
    assert "message" in r.json()
    api.close()
