"""The compose tests' daemon: a bridge of its own, as the network tests' (the fixture is theirs)."""

from ..network.conftest import bridged  # noqa: F401 - the fixture, shared
