""".dockerignore: Docker's pattern rules (`*`, `?`, `[...]`, `**`, `!` exceptions, the last
matching pattern wins, a pattern that matches a directory matches everything under it)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def read(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore file (comments and blank lines dropped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        out.append(ln)
    return out


def _compile(p: str) -> re.Pattern[str]:
    rx = ["^"]
    i = 0
    while i < len(p):
        ch = p[i]
        if ch == "*":
            if p.startswith("**", i):
                i += 2
                if i >= len(p):
                    rx.append(".*")
                elif p[i] == "/":
                    rx.append("(.*/)?")
                    i += 1
                else:
                    rx.append(".*")
                continue
            rx.append("[^/]*")
        elif ch == "?":
            rx.append("[^/]")
        elif ch == "\\" and i + 1 < len(p):
            i += 1
            rx.append(re.escape(p[i]))
        elif ch == "[":
            end = p.find("]", i + 1)
            if end < 0:
                rx.append(re.escape(ch))
            else:
                body = p[i + 1:end]
                if body.startswith("^"):
                    body = "^" + body[1:]
                elif body.startswith("!"):
                    body = "^" + body[1:]
                rx.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            rx.append(re.escape(ch))
        i += 1
    rx.append("$")
    return re.compile("".join(rx))


class Matcher:
    """Patterns in order; `excluded(path)` for a path relative to the context root."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for p in patterns:
            excl = p.startswith("!")
            if excl:
                p = p[1:].strip()
            p = posixpath.normpath(p) if p else p
            if len(p) > 1 and p.startswith("/"):
                p = p.lstrip("/") or "/"
            if not p:
                continue
            self.patterns.append(Pattern(p, excl, _compile(p)))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        path = posixpath.normpath(path).lstrip("/")
        parents = path.split("/")[:-1]
        matched = False
        for p in self.patterns:
            hit = bool(p.regex.match(path))
            if not hit and parents:
                for i in range(len(parents)):
                    if p.regex.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not p.exclusion
        return matched

    def may_include_under(self, dirpath: str) -> bool:
        """Whether a directory that is itself excluded may hold files an exception brings back
        (so a walk must still enter it)."""
        if not self.has_exclusions:
            return False
        prefix = dirpath.rstrip("/") + "/"
        for p in self.patterns:
            if p.exclusion and (p.text.startswith(prefix) or "*" in p.text or "?" in p.text or "[" in p.text):
                return True
        return False
