"""The runtime's create handshake, without forking anything."""

from __future__ import annotations

import pytest


def test_runtime_create_takes_its_two_messages_in_either_order():
    """The middle process's {"pid"} and the init's {"ready"} share a socket; under load the init
    can speak first (a full test run once failed create with KeyError 'pid' and leaked the init)."""
    from dockyard.runtime.init import CreateError, await_init
    for msgs in ([{"pid": 42}, {"ready": True}], [{"ready": True}, {"pid": 42}]):
        it = iter(msgs)
        assert await_init(it.__next__) == 42
    for msgs in ([{"pid": 42}, {"error": "exec failed"}], [{"error": "exec failed"}, {"pid": 42}]):
        it = iter(msgs)
        with pytest.raises(CreateError, match="exec failed"):
            await_init(it.__next__)
    it = iter([{"pid": 42}, {"error": "container init exited unexpectedly"}])
    with pytest.raises(CreateError, match="exited unexpectedly"):
        await_init(it.__next__)
