"""argparse tuned to Docker's flag style: errors print Docker's way and exit 125."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """An ArgumentParser for one command."""

    def __init__(self, prog: str, usage: str, add_help: bool = True) -> None:
        super().__init__(prog=f"dockyard {prog}", usage=f"dockyard {prog} {usage}", add_help=add_help,
                         allow_abbrev=False)

    def error(self, message: str) -> NoReturn:
        print(f"{message}\nSee '{self.prog} --help'.", file=sys.stderr)
        sys.exit(125)


def need(ns_list: list[str], n: int, prog: str, usage: str, exact: bool = False) -> None:
    """Docker's `"x" requires at least 1 argument.` check."""
    if len(ns_list) < n or (exact and len(ns_list) != n):
        word = "exactly" if exact else "at least"
        print(f'"dockyard {prog}" requires {word} {n} argument{"s" if n != 1 else ""}.\n'
              f"See 'dockyard {prog} --help'.\n\nUsage:  dockyard {prog}", file=sys.stderr)
        sys.exit(1)
