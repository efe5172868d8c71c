"""The writer that worker threads use to stream to a response never blocks the event loop's own
thread: a BufferedWriter dropped with bytes in it (a failed export or cp) and flushed by the
garbage collector on that thread once deadlocked the daemon for good."""

from __future__ import annotations

import asyncio
import gc
import io

import pytest

from dockyard.api.streams import _QueueWriter


def test_loop_thread_is_refused_worker_threads_hand_over():
    async def main() -> None:
        q: asyncio.Queue[bytes] = asyncio.Queue(1)
        w = _QueueWriter(q, asyncio.get_running_loop())
        with pytest.raises(BrokenPipeError):
            w.write(b"x")
        await asyncio.to_thread(w.write, b"y")
        assert await q.get() == b"y"
        bw = io.BufferedWriter(w, 1 << 20)
        bw.write(b"buffered")
        del bw   # finalised here, on the loop's thread: its flush fails instead of waiting forever
        gc.collect()
        assert q.empty()
    asyncio.run(main())
