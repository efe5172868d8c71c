"""A subset of Go's text/template, enough for `--format` as people use it:
`{{.Field.Sub}}`, `{{json .}}`, `{{json .Config}}`, `{{index .Labels "k"}}`, `{{join .X ","}}`,
`{{upper .X}}`, `{{lower .X}}`, `{{title .X}}`, `{{println .X}}`, `{{.Label "k"}}`,
`{{range .X}}…{{end}}`, `{{if .X}}…{{else}}…{{end}}`, and the `table` prefix."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


class TemplateError(Exception):
    """The template cannot be parsed or evaluated."""


def _field(obj: Any, path: str) -> Any:
    cur = obj
    for part in [p for p in path.split(".") if p]:
        if isinstance(cur, dict):
            if part in cur or hasattr(type(cur), "__missing__"):
                cur = cur[part]
            else:
                low = {k.lower(): k for k in cur}
                if part.lower() in low and not isinstance(cur, FieldMap):
                    cur = cur[low[part.lower()]]
                else:
                    raise TemplateError(f'template: :1: executing "" at <.{part}>: can\'t evaluate field {part}')
        else:
            attr = getattr(cur, part, None)
            if attr is None:
                raise TemplateError(f'can\'t evaluate field {part}')
            cur = attr
    return cur


class FieldMap(dict):
    """A dict whose values may be callables taking arguments (`.Label "k"`)."""


def _to_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(_to_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_to_str(x)}" for k, x in sorted(v.items())) + "]"
    return str(v)


def _eval(expr: str, dot: Any) -> Any:
    try:
        words = shlex.split(expr, posix=True)
    except ValueError as e:
        raise TemplateError(str(e)) from None
    if not words:
        return ""

    def arg(w: str) -> Any:
        if w == ".":
            return dot
        if w.startswith("."):
            return _field(dot, w)
        if w.lstrip("-").isdigit():
            return int(w)
        return w

    fn = words[0]
    funcs: dict[str, Callable[..., Any]] = {
        "json": lambda v: json.dumps({k: x for k, x in v.items() if not callable(x)} if isinstance(v, dict) else v,
                                     separators=(",", ":"), ensure_ascii=False),
        "index": lambda v, *ks: _index(v, ks),
        "join": lambda v, sep: sep.join(_to_str(x) for x in (v or [])),
        "upper": lambda v: _to_str(v).upper(), "lower": lambda v: _to_str(v).lower(),
        "title": lambda v: _to_str(v).title(), "println": lambda *v: " ".join(_to_str(x) for x in v) + "\n",
        "len": lambda v: len(v or []), "printf": lambda f, *v: _printf(f, v),
        "split": lambda v, sep: _to_str(v).split(sep), "truncate": lambda v, n: _to_str(v)[:n],
    }
    if fn in funcs:
        return funcs[fn](*[arg(w) for w in words[1:]])
    if fn.startswith(".") and len(words) > 1:
        v = _field(dot, fn)
        if callable(v):
            return v(*[arg(w) for w in words[1:]])
    if len(words) == 1:
        return arg(fn)
    raise TemplateError(f'function "{fn}" not defined')


def _printf(f: str, vals: tuple[Any, ...]) -> str:
    out = re.sub(r"%[-+ 0#]*\d*(?:\.\d+)?[vsdq]", "{}", f)
    return out.format(*[_to_str(v) for v in vals])


def _index(v: Any, keys: tuple[Any, ...]) -> Any:
    for k in keys:
        if v is None:
            return None
        v = v.get(k) if isinstance(v, dict) else v[int(k)]
    return v


def render(tmpl: str, dot: Any) -> str:
    """Evaluate the template against `dot`."""
    tokens = _tokenize(tmpl)
    out, _ = _run(tokens, 0, dot, stop=())
    return out


def _tokenize(tmpl: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(tmpl):
        if m.start() > pos:
            toks.append(("text", tmpl[pos:m.start()]))
        toks.append(("action", m.group(1)))
        pos = m.end()
    if pos < len(tmpl):
        toks.append(("text", tmpl[pos:]))
    return toks


def _run(toks: list[tuple[str, str]], i: int, dot: Any, stop: tuple[str, ...]) -> tuple[str, int]:
    out = []
    while i < len(toks):
        kind, val = toks[i]
        if kind == "text":
            out.append(val)
            i += 1
            continue
        word = val.split(" ", 1)[0]
        if word in stop:
            return "".join(out), i
        if word == "range":
            seq = _eval(val[len("range"):], dot) or []
            body_start = i + 1
            _, end = _run(toks, body_start, dot, stop=("end",))
            for item in (seq.values() if isinstance(seq, dict) else seq):
                s, _ = _run(toks, body_start, item, stop=("end",))
                out.append(s)
            i = end + 1
        elif word == "if":
            cond = _eval(val[len("if"):], dot)
            s_true, j = _run(toks, i + 1, dot, stop=("else", "end"))
            s_false = ""
            if toks[j][1].split(" ", 1)[0] == "else":
                s_false, j = _run(toks, j + 1, dot, stop=("end",))
            out.append(s_true if cond else s_false)
            i = j + 1
        else:
            v = _eval(val, dot)
            out.append(v if isinstance(v, str) else _to_str(v))
            i += 1
    if stop:
        raise TemplateError("unexpected EOF in template")
    return "".join(out), i
