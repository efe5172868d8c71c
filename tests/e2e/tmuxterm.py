"""A terminal driven as a person would: a command in a tmux window of its own tmux server,
keys sent with `send-keys`, the screen read with `capture-pane`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid

TMUX = shutil.which("tmux")


class Term:
    """One tmux server (own socket) with one window running `argv`; `; echo EXIT=$?` follows
    the command so its exit code shows on the screen. The wrapper is bash: on Ctrl-C it waits
    for a program that handles SIGINT (dash would die with it, taking the window)."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 120, rows: int = 40) -> None:
        assert TMUX, "tmux is not installed"
        self.sock = f"dyt-{uuid.uuid4().hex[:8]}"
        cmd = " ".join(shlex.quote(a) for a in argv) + "; echo EXIT=$?; sleep 3600"
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("DOCKER_HOST", "PATH", "HOME"))
        self._tmux("new-session", "-d", "-x", str(cols), "-y", str(rows), f"env {envs} TERM=xterm bash -c {shlex.quote(cmd)}")

    def _tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.sock, *args], capture_output=True, text=True, check=True,
                              timeout=20).stdout

    def send(self, *keys: str) -> None:
        """Keys as tmux names them ("Enter", "C-p") or literal text."""
        self._tmux("send-keys", *keys)

    def type(self, line: str) -> None:
        """A line of text and Enter."""
        self._tmux("send-keys", "-l", line)
        self._tmux("send-keys", "Enter")

    def screen(self, escapes: bool = False) -> str:
        """What the window shows (with `escapes`, its colours as SGR sequences)."""
        return self._tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-S", "-200")

    def wait_for(self, text: str, timeout: float = 20) -> str:
        """Until `text` is on the screen; the screen."""
        deadline = time.time() + timeout
        while True:
            s = self.screen()
            if text in s:
                return s
            if time.time() > deadline:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{s}")
            time.sleep(0.1)

    def until(self, line: str, text: str, tries: int = 20) -> str:
        """Type `line` until `text` appears (a window size reaches the program asynchronously)."""
        for _ in range(tries - 1):
            self.type(line)
            try:
                return self.wait_for(text, timeout=1)
            except AssertionError:
                continue
        self.type(line)
        return self.wait_for(text)

    def resize(self, cols: int, rows: int) -> None:
        """Resize the window (the program gets SIGWINCH)."""
        self._tmux("resize-window", "-x", str(cols), "-y", str(rows))

    def close(self) -> None:
        """Kill the tmux server and everything in it."""
        subprocess.run([TMUX, "-L", self.sock, "kill-server"], capture_output=True, timeout=20)
        try:
            os.unlink(f"/tmp/tmux-{os.getuid()}/{self.sock}")
        except OSError:
            pass
