"""Issue 11: where a volume plugin is found, as dockerd looks (socket, .spec, .json), and that
a plugin's answers become errors with its words."""

from __future__ import annotations

import json

import pytest

from dockyard.errors import NotFound
from dockyard.volumes import plugins


def test_discovery_order(tmp_path, monkeypatch):
    socks, specs = tmp_path / "run", tmp_path / "etc"
    socks.mkdir()
    specs.mkdir()
    monkeypatch.setattr(plugins, "SOCKET_DIRS", [str(socks)])
    monkeypatch.setattr(plugins, "SPEC_DIRS", [str(specs)])
    with pytest.raises(NotFound, match='plugin "p" not found'):
        plugins.find("p")
    (specs / "p.json").write_text(json.dumps({"Name": "p", "Addr": "tcp://127.0.0.1:9"}))
    assert plugins.find("p") == "tcp://127.0.0.1:9"
    (specs / "p.spec").write_text("unix:///run/x.sock\n")
    assert plugins.find("p") == "unix:///run/x.sock"
    (socks / "p").mkdir()
    (socks / "p" / "p.sock").write_text("")
    assert plugins.find("p") == f"unix://{socks}/p/p.sock"
    (socks / "p.sock").write_text("")
    assert plugins.find("p") == f"unix://{socks}/p.sock"
