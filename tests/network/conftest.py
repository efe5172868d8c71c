"""The network tests' daemon: a bridge of its own (a random name and /24), so daemons side by
side never share one; what it leaves on the host is removed and then reported."""

from __future__ import annotations

import random

import pytest

from .netutil import links, remove_bridge, rules


def own_bridge(fresh_daemon, *extra: str):
    """A daemon with its own bridge (a random name and /24, plus `extra` flags); yields (daemon,
    bridge name, gateway). The bridges of the user-defined networks it makes (`br-…`) must be gone
    too once it stops, and every rule of theirs (iptables and ip6tables)."""
    name = f"dyt{random.randrange(16 ** 6):06x}"
    net = random.randrange(1, 250)
    before = set(links("br-"))
    d = fresh_daemon("--bridge", name, "--bip", f"10.213.{net}.1/24", *extra)
    yield d, name, f"10.213.{net}.1"
    d.cleanup()
    made = sorted(set(links("br-")) - before)
    left_links = links(name) + made
    text = rules()
    left_rules = [b for b in [name, *made] if b in text]
    for b in [name, *made]:
        remove_bridge(b)   # what a daemon that died left: gone from the host whatever the verdict
    assert not left_links, f"bridges outlived their daemon: {left_links}"
    assert not left_rules, f"iptables rules outlived the daemon: {left_rules}"


@pytest.fixture
def bridged(fresh_daemon):
    """A daemon with its own bridge; yields (daemon, bridge name, gateway)."""
    yield from own_bridge(fresh_daemon)
