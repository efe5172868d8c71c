"""Dockerfile parsing, apart from evaluation: directives, continuations, comments, flags,
JSON (exec) forms and heredocs, as Docker's frontend reads them. Errors name the line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import InvalidArgument

INSTRUCTIONS = {"from", "run", "cmd", "entrypoint", "env", "arg", "label", "expose", "volume", "user", "workdir",
                "copy", "add", "healthcheck", "shell", "stopsignal", "onbuild", "maintainer"}
_FLAGGED = {"from", "run", "copy", "add", "healthcheck"}   # instructions that take --flags
_HEREDOC_OK = {"run", "copy", "add"}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([a-zA-Z_][a-zA-Z0-9_]*)\2")


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be parsed or built; the message names its line."""


@dataclass
class Heredoc:
    name: str
    content: str
    expand: bool     # an unquoted name: variables in the content are expanded
    strip_tabs: bool


@dataclass
class Instruction:
    cmd: str                      # lower case
    args: str                     # the text after the instruction and its flags
    line: int                     # first line in the file (1-based)
    original: str                 # as written (continuations joined), for messages and history
    flags: dict[str, list[str]] = field(default_factory=dict)
    heredocs: list[Heredoc] = field(default_factory=list)

    def json_args(self) -> list[str] | None:
        """The exec (JSON array of strings) form of the arguments, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        try:
            v = json.loads(text)
        except ValueError:
            return None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        return None

    def flag(self, name: str, default: str = "") -> str:
        v = self.flags.get(name)
        return v[-1] if v else default

    def error(self, msg: str) -> DockerfileError:
        return DockerfileError(f"Dockerfile:{self.line}: {self.cmd.upper()}: {msg}")


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def parse(text: str | bytes) -> Dockerfile:
    """A Dockerfile's instructions; DockerfileError names the first bad line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DockerfileError("the Dockerfile is not UTF-8 text") from None
    lines = text.replace("\r\n", "\n").split("\n")
    directives: dict[str, str] = {}
    i = 0
    while i < len(lines):   # parser directives: only at the very top, each once
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        key = m.group(1).lower()
        if key in directives:
            raise DockerfileError(f"Dockerfile:{i + 1}: only one {key} parser directive can be used")
        directives[key] = m.group(2)
        i += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape token '{escape}' does not match ` or \\")
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        text = raw.lstrip()
        while True:   # join continuations; comment and blank lines inside them are skipped
            body = text.rstrip()
            if body.endswith(escape):
                parts.append(body[:-1])
                i += 1
                while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                    i += 1
                if i >= len(lines):
                    break
                text = lines[i]
                continue
            parts.append(text)
            i += 1
            break
        logical = "".join(parts).strip()
        word, _, rest = logical.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        cmd = word.lower()
        if cmd not in INSTRUCTIONS:
            raise DockerfileError(f"Dockerfile:{start + 1}: unknown instruction: {word.upper()}")
        rest = rest.strip()
        inst = Instruction(cmd, rest, start + 1, logical)
        if cmd in _FLAGGED:
            inst.args = _take_flags(inst, rest)
        if cmd in _HEREDOC_OK:
            i = _read_heredocs(inst, lines, i)
        elif cmd == "onbuild":
            inner = inst.args.split(None, 1)[0].lower() if inst.args else ""
            if inner in ("onbuild", "from", "maintainer"):
                raise inst.error(f"{inner.upper()} isn't allowed as an ONBUILD trigger")
        if not inst.args and cmd not in ("cmd", "entrypoint", "run") and not inst.heredocs:
            raise inst.error("requires at least one argument" if cmd != "healthcheck" else "missing command")
        out.append(inst)
    if not out:
        raise DockerfileError("the Dockerfile (Dockerfile) cannot be empty")
    return Dockerfile(out, escape, directives)


def _take_flags(inst: Instruction, rest: str) -> str:
    """Leading `--name=value` (or `--name`) words into inst.flags; the remaining text."""
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            return after.strip()
        name, eq, value = word[2:].partition("=")
        if not name:
            raise inst.error(f"invalid flag {word!r}")
        inst.flags.setdefault(name.lower(), []).append(value if eq else "true")
        rest = after.lstrip()
    return rest


def _read_heredocs(inst: Instruction, lines: list[str], i: int) -> int:
    """The bodies of the heredocs the instruction names (`<<EOF`, `<<-EOF`, `<<"EOF"`), read
    from the lines that follow it; returns the index of the line after the last terminator."""
    for m in _HEREDOC.finditer(inst.args):
        if inst.json_args() is not None:
            break
        strip, quote, name = m.group(1) == "-", m.group(2), m.group(3)
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise inst.error(f"unterminated heredoc {name!r}")
            ln = lines[i]
            i += 1
            if (ln.lstrip("\t") if strip else ln) == name:
                break
            body.append(ln.lstrip("\t") if strip else ln)
        inst.heredocs.append(Heredoc(name, "\n".join(body) + "\n", not quote, strip))
    return i
