"""Terminals of attached clients: window sizes."""

from __future__ import annotations

from ..errors import InvalidArgument

MAX_SIZE = 65535   # the kernel keeps rows and columns as u16


def check_size(h: int, w: int) -> None:
    """A window size the kernel can hold (0 is "unknown", as the kernel has it)."""
    for name, v in (("height", h), ("width", w)):
        if v < 0 or v > MAX_SIZE:
            raise InvalidArgument(f"invalid terminal {name} {v}: must be between 0 and {MAX_SIZE}")
