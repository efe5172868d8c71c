"""Join a client's connection (hijacked HTTP or a websocket) to a container's or an exec's
channel in the monitor: output one way, stdin the other, detach keys watched on the way in.

The attachment ends when the output ends (the process exited and its output was drained), when
the client typed the detach keys, or when the client went away; in the last two cases the
process runs on and nothing of the attachment is left (its tasks end, the channel closes).
A client that ends its input (a half-close, or a websocket's close) ends stdin: the monitor
closes the process's stdin if it was created with StdinOnce (or is an exec); on a terminal it
ends the attachment instead and the terminal stays open, as with dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from ..detachkeys import EscapeFilter

ENDED, DETACHED, GONE = "ended", "detached", "gone"


class Input(Protocol):
    """Where stdin goes."""

    async def send(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    def close(self) -> None: ...


async def splice(frames: AsyncIterator[tuple[int, bytes]], ch: Input,
                 read: Callable[[], Awaitable[bytes | None]], write: Callable[[bytes], Awaitable[None]],
                 encode: Callable[[int, bytes], bytes | None], stdin: bool, keys: bytes | None,
                 tty: bool = False) -> str:
    """Run both directions; return ENDED, DETACHED or GONE."""
    filt = EscapeFilter(keys) if keys else None

    async def pump_out() -> None:
        async for s, data in frames:
            out = encode(s, data)
            if out:
                await write(out)

    async def pump_in() -> str:
        open_ = stdin
        while True:
            data = await read()
            if data is None:
                return GONE
            if not open_:
                continue   # no stdin: read on only to see the client leave
            try:
                if not data:
                    if filt is not None and (held := filt.flush()):
                        await ch.send(held)
                    if tty:
                        return DETACHED   # as dockerd: the end of a terminal's input ends the attachment
                    await ch.close_stdin()
                    open_ = False
                    continue
                if filt is None:
                    await ch.send(data)
                    continue
                data, detached = filt.feed(data)
                if data:
                    await ch.send(data)
                if detached:
                    return DETACHED
            except ConnectionError:
                # the process is gone and the monitor hung up its side: its last output and exit
                # are still on their way to pump_out, which must not be cut short by this
                open_ = False

    out_t = asyncio.create_task(pump_out())
    in_t = asyncio.create_task(pump_in())
    try:
        await asyncio.wait([out_t, in_t], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (out_t, in_t):
            if not t.done():
                t.cancel()
        await asyncio.gather(out_t, in_t, return_exceptions=True)
        ch.close()
    if out_t.done() and not out_t.cancelled() and in_t.cancelled():
        out_t.result()   # an error of the output side is the caller's to report
        return ENDED
    if in_t.done() and not in_t.cancelled():
        with contextlib.suppress(Exception):
            return in_t.result()
        return GONE
    out_t.result()
    return ENDED
