"""Variable substitution and word splitting in Dockerfile arguments, with Docker's rules:
quotes, the escape character, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR#pat}`, `${VAR%pat}` (and `##`, `%%`)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from ..errors import InvalidArgument

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Scan:
    def __init__(self, text: str, escape: str, env: Mapping[str, str]) -> None:
        self.s, self.i, self.esc, self.env = text, 0, escape, env

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def word(self, stop: str = "") -> str:
        """Characters up to `stop` (outside quotes) or the end, quotes removed, variables expanded."""
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.peek()
            if stop and ch in stop:
                break
            self.i += 1
            if ch == self.esc:
                if self.i < len(self.s):
                    out.append(self.next())
            elif ch == "'":
                end = self.s.find("'", self.i)
                if end < 0:
                    raise InvalidArgument(f"unexpected end of statement while looking for matching single-quote: {self.s}")
                out.append(self.s[self.i:end])
                self.i = end + 1
            elif ch == '"':
                out.append(self.double())
            elif ch == "$":
                out.append(self.dollar())
            else:
                out.append(ch)
        return "".join(out)

    def double(self) -> str:
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise InvalidArgument(f"unexpected end of statement while looking for matching double-quote: {self.s}")
            ch = self.next()
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch == self.esc and self.peek() in ('"', "$", self.esc) and self.peek():
                out.append(self.next())
            else:
                out.append(ch)

    def dollar(self) -> str:
        ch = self.peek()
        if ch == "{":
            self.i += 1
            m = _NAME.match(self.s, self.i)
            if not m:
                raise InvalidArgument(f"bad substitution: {self.s}")
            name = m.group(0)
            self.i = m.end()
            op = self.peek()
            if op == "}":
                self.i += 1
                return self.env.get(name, "")
            for candidate in (":-", ":+", ":?", "##", "%%", "-", "+", "?", "#", "%"):
                if self.s.startswith(candidate, self.i):
                    op = candidate
                    break
            else:
                raise InvalidArgument(f"unsupported modifier ({op}) in substitution: {self.s}")
            self.i += len(op)
            word = self.word(stop="}")
            if self.next() != "}":
                raise InvalidArgument(f"syntax error: missing '}}' in {self.s}")
            return _modify(name, op, word, self.env)
        m = _NAME.match(self.s, self.i)
        if not m:
            return "$"
        self.i = m.end()
        return self.env.get(m.group(0), "")


def _modify(name: str, op: str, word: str, env: Mapping[str, str]) -> str:
    val = env.get(name)
    if op == ":-":
        return val if val else word
    if op == "-":
        return val if val is not None else word
    if op == ":+":
        return word if val else ""
    if op == "+":
        return word if val is not None else ""
    if op in (":?", "?"):
        if (val is None) or (op == ":?" and not val):
            raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
        return val
    v = val or ""
    if op in ("#", "##"):
        cuts = range(len(v) + 1) if op == "#" else range(len(v), -1, -1)
        for n in cuts:
            if fnmatch.fnmatchcase(v[:n], word):
                return v[n:]
        return v
    cuts = range(len(v), -1, -1) if op == "%" else range(len(v) + 1)
    for n in cuts:
        if fnmatch.fnmatchcase(v[n:], word):
            return v[:n]
    return v


def word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, variables expanded."""
    return _Scan(text, escape, env).word()


def split(text: str, escape: str = "\\") -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (to be expanded one by one)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and quote != "'" and i + 1 < len(text):
            cur.append(ch + text[i + 1])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Whitespace-separated words, each expanded."""
    return [word(w, env, escape) for w in split(text, escape)]


def pairs(text: str, env: Mapping[str, str], escape: str, what: str) -> list[tuple[str, str]]:
    """`ENV`/`LABEL` arguments: `k=v k2="v 2"`, or the legacy `k value with spaces`."""
    ws = split(text, escape)
    if not ws:
        raise InvalidArgument(f"{what} requires at least one argument")
    if "=" not in ws[0]:
        if len(ws) < 2:
            raise InvalidArgument(f"{what} must have two arguments")
        key = ws[0]
        value = text.strip()[len(key):].strip()
        return [(word(key, env, escape), word(value, env, escape))]
    out = []
    for w in ws:
        if "=" not in w:
            raise InvalidArgument(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value")
        k, _, v = w.partition("=")
        key = word(k, env, escape)
        if not key:
            raise InvalidArgument(f"{what} names can not be blank")
        out.append((key, word(v, env, escape)))
    return out


def heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """A heredoc's content with variables expanded and quotes left alone (an unquoted delimiter)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and text.startswith("$", i + 1):
            out.append("$")
            i += 2
        elif ch == "$":
            sc = _Scan(text, escape, env)
            sc.i = i + 1
            out.append(sc.dollar())
            i = sc.i
        else:
            out.append(ch)
            i += 1
    return "".join(out)
