"""Docker-style flag parsing (pflag's rules) without argparse.

argparse and gettext cost several milliseconds of imports on every CLI start (measured with
`python -X importtime`); this parser covers what the commands need: long flags with `=` or a
separate value, clustered short flags (`-it`, `-dit`), `--flag=false` for booleans, repeated
flags, `--`, and commands whose flags stop at the first positional (run, create)."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs ms of start-up; annotations are strings

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


class Namespace:
    """Parsed values as attributes."""

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__})"


class _Flag:
    def __init__(self, names: tuple[str, ...], dest: str, action: str, default: Any, type_: Callable[[str], Any] | None,
                 choices: list[str] | None) -> None:
        self.names, self.dest, self.action, self.default, self.type, self.choices = names, dest, action, default, type_, choices

    @property
    def takes_value(self) -> bool:
        return self.action in ("store", "append")


class Parser:
    """An argparse-like parser for one command."""

    def __init__(self, prog: str, usage: str, add_help: bool = True) -> None:
        self.prog = f"dockyard {prog}"
        self.usage = f"Usage:  dockyard {prog} {usage}"
        self.flags: dict[str, _Flag] = {}
        self.order: list[_Flag] = []
        self.positionals: list[tuple[str, str | None]] = []
        if add_help:
            self.add_argument("--help", action="help")

    def add_argument(self, *names: str, action: str = "store", default: Any = None, type: Any = None,
                     dest: str | None = None, nargs: str | None = None, choices: list[str] | None = None) -> None:
        """Declare a flag (names start with '-') or a positional."""
        if not names[0].startswith("-"):
            self.positionals.append((names[0], nargs))
            return
        long = next((n for n in names if n.startswith("--")), names[0])
        d = dest or long.lstrip("-").replace("-", "_")
        if action == "store_true" and default is None:
            default = False
        f = _Flag(names, d, action, default, type, choices)
        for n in names:
            self.flags[n] = f
        self.order.append(f)

    def error(self, message: str) -> NoReturn:
        """Print Docker's flag error and exit 125."""
        print(f"{message}\nSee '{self.prog} --help'.", file=sys.stderr)
        sys.exit(125)

    def _help(self) -> NoReturn:
        lines = [self.usage, "", "Options:"]
        for f in self.order:
            lines.append("  " + ", ".join(f.names) + (" value" if f.takes_value else ""))
        print("\n".join(lines))
        sys.exit(0)

    def _set(self, ns: Namespace, f: _Flag, name: str, val: str | None) -> None:
        if f.action == "help":
            self._help()
        if f.action == "store_true":
            if val is None:
                setattr(ns, f.dest, True)
            elif val.lower() in ("true", "1", "t"):
                setattr(ns, f.dest, True)
            elif val.lower() in ("false", "0", "f"):
                setattr(ns, f.dest, False)
            else:
                self.error(f'invalid argument "{val}" for "{name}" flag: strconv.ParseBool: parsing "{val}": invalid syntax')
            return
        assert val is not None
        if f.type is not None:
            try:
                v: Any = f.type(val)
            except ValueError:
                self.error(f'invalid argument "{val}" for "{name}" flag: strconv.ParseInt: parsing "{val}": invalid syntax')
        else:
            v = val
        if f.choices and v not in f.choices:
            self.error(f'invalid argument "{val}" for "{name}" flag: must be one of {", ".join(f.choices)}')
        if f.action == "append":
            getattr(ns, f.dest).append(v)
        else:
            setattr(ns, f.dest, v)

    def parse_args(self, args: list[str]) -> Namespace:
        """Parse; unknown flags and bad values exit 125 as the docker CLI does."""
        ns = Namespace()
        for f in self.order:
            setattr(ns, f.dest, list(f.default or []) if f.action == "append" else f.default)
        interspersed = not any(n == "..." for _, n in self.positionals)
        pos: list[str] = []
        i = 0
        while i < len(args):
            a = args[i]
            i += 1
            if a == "--":
                pos += args[i:]
                break
            if a.startswith("--") and len(a) > 2:
                name, eq, val = a.partition("=")
                fl = self.flags.get(name)
                if fl is None:
                    self.error(f"unknown flag: {name}")
                f = fl
                if f.takes_value and not eq:
                    if i >= len(args):
                        self.error(f"flag needs an argument: {name}")
                    val, i = args[i], i + 1
                self._set(ns, f, name, val if eq or f.takes_value else None)
            elif a.startswith("-") and len(a) > 1:
                j = 1
                while j < len(a):
                    name = "-" + a[j]
                    fs = self.flags.get(name)
                    if fs is None:
                        self.error(f"unknown shorthand flag: '{a[j]}' in {a}")
                    f = fs
                    if f.takes_value:
                        rest = a[j + 1:]
                        if rest.startswith("="):
                            rest = rest[1:]
                        if not rest:
                            if i >= len(args):
                                self.error(f"flag needs an argument: '{a[j]}' in {a}")
                            rest, i = args[i], i + 1
                        self._set(ns, f, name, rest)
                        break
                    self._set(ns, f, name, None)
                    j += 1
            else:
                pos.append(a)
                if not interspersed:
                    pos += args[i:]
                    break
        for dest, nargs in self.positionals:
            if nargs in ("*", "..."):
                setattr(ns, dest, pos)
                pos = []
            elif nargs == "?":
                setattr(ns, dest, pos.pop(0) if pos else None)
            else:
                if not pos:
                    print(f'"{self.prog}" requires at least 1 argument.\nSee \'{self.prog} --help\'.\n\n{self.usage}',
                          file=sys.stderr)
                    sys.exit(1)
                setattr(ns, dest, pos.pop(0))
        if pos:
            print(f'"{self.prog}" accepts no more arguments than it takes.\nSee \'{self.prog} --help\'.', file=sys.stderr)
            sys.exit(1)
        return ns


def need(ns_list: list[str], n: int, prog: str, usage: str, exact: bool = False) -> None:
    """Docker's `"x" requires at least 1 argument.` check."""
    if len(ns_list) < n or (exact and len(ns_list) != n):
        word = "exactly" if exact else "at least"
        print(f'"dockyard {prog}" requires {word} {n} argument{"s" if n != 1 else ""}.\n'
              f"See 'dockyard {prog} --help'.\n\nUsage:  dockyard {prog}", file=sys.stderr)
        sys.exit(1)
