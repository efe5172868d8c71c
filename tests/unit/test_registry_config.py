"""Issue 9: the daemon's registry settings (flags and daemon.json) and what they decide."""

from __future__ import annotations

import json

import pytest

from dockyard.daemon import config
from dockyard.errors import InvalidArgument
from dockyard.registry.hosts import RegistryHosts


def _load(tmp_path, data: dict, *flags: str) -> config.Config:
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps(data))
    return config.load(["--config-file", str(f), *flags])


def test_registry_keys_are_applied(tmp_path):
    cfg = _load(tmp_path, {"insecure-registries": ["reg.example:5000", "10.1.0.0/16"],
                           "registry-mirrors": ["https://mirror.example"],
                           "registry-mirrors-for": {"reg.example:5000": ["http://127.0.0.1:7000"]},
                           "max-concurrent-downloads": 1}, "--max-concurrent-uploads", "2",
                "--insecure-loopback=false")
    h = config.registry_hosts(cfg)
    assert (h.downloads, h.uploads) == (1, 2)
    assert h.is_insecure("reg.example:5000") and h.is_insecure("10.1.2.3:443") and not h.is_insecure("127.0.0.1:5000")
    assert h.mirrors_of("docker.io") == ["https://mirror.example"]
    assert h.mirrors_of("reg.example:5000") == ["http://127.0.0.1:7000"] and h.mirrors_of("other:1") == []
    assert h.info()["Mirrors"] == ["https://mirror.example/"]


def test_loopback_is_insecure_by_default():
    h = RegistryHosts()
    assert h.is_insecure("127.0.0.1:5000") and h.is_insecure("[::1]:5000") and h.is_insecure("localhost:5000")
    assert not h.is_insecure("10.0.0.1:5000")


@pytest.mark.parametrize("data", [{"max-concurrent-downloads": 0}, {"max-concurrent-uploads": "3"},
                                  {"insecure-registries": ["http://x"]}, {"registry-mirrors": ["x"]},
                                  {"registry-mirrors-for": {"a": "http://b"}}, {"insecure-loopback": "no"}])
def test_bad_registry_settings_are_refused(tmp_path, data):
    with pytest.raises(InvalidArgument):
        _load(tmp_path, data)
