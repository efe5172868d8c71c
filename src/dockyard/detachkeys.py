"""Detach keys: the sequence that, typed on an attached stdin, leaves the container running and
ends the attachment (`ctrl-p,ctrl-q` unless the client or the daemon says otherwise). Watched
by the daemon (for every API client) and by the CLI (which hangs up itself, as the docker CLI).

The syntax is Docker's: a comma-separated list of single characters or `ctrl-X` where X is a
letter or one of `@ [ \\ ] ^ _`. The filter passes input through, holding back bytes while they
could still be the start of the sequence, and reports when the whole sequence was typed.
"""

from __future__ import annotations

from .errors import InvalidArgument

DEFAULT = "ctrl-p,ctrl-q"
_CTRL = {**{chr(c): c - 0x60 for c in range(ord("a"), ord("z") + 1)},
         "@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_keys(keys: str) -> bytes:
    """The bytes of a detach sequence; 400 for a sequence Docker would refuse."""
    out = bytearray()
    for part in keys.split(","):
        p = part.strip()
        low = p.lower()
        if len(p) == 1:
            out.append(ord(p))
        elif low.startswith("ctrl-") and len(low) == 6 and low[5] in _CTRL:
            out.append(_CTRL[low[5]])
        else:
            raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
    if not out:
        raise InvalidArgument(f"Invalid detach keys ({keys}) provided")
    return bytes(out)


class EscapeFilter:
    """Feed input chunks; get what to forward, and whether the sequence was completed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, detached). Bytes after a completed sequence are dropped."""
        out = bytearray()
        for b in data:
            cand = self.held + bytes([b])
            if self.keys.startswith(cand):
                if len(cand) == len(self.keys):
                    self.held = b""
                    return bytes(out), True
                self.held = cand
                continue
            # not (or no longer) the sequence: what was held goes through, and this byte may
            # start the sequence anew
            out += self.held
            self.held = b""
            if self.keys[:1] == bytes([b]):
                self.held = bytes([b])
            else:
                out.append(b)
        return bytes(out), False

    def flush(self) -> bytes:
        """Held bytes at the end of the input."""
        held, self.held = self.held, b""
        return held
