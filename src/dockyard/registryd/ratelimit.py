"""Repeated bad passwords: after `attempts` failures for one account from one address within
`window` seconds, that pair is refused (429 TOOMANYREQUESTS) until the window has passed."""

from __future__ import annotations

import time

from .errors import RegistryError


class LoginLimiter:
    """Failures counted per (account, remote address)."""

    def __init__(self, attempts: int = 5, window: float = 60.0) -> None:
        self.attempts, self.window = attempts, window
        self.failures: dict[tuple[str, str], list[float]] = {}

    def check(self, account: str, remote: str) -> None:
        recent = self._recent(account, remote)
        if len(recent) >= self.attempts:
            wait = int(self.window - (time.monotonic() - recent[0])) + 1
            raise RegistryError("TOOMANYREQUESTS", f"too many failed logins for {account!r}; try again in {wait} s",
                                headers={"Retry-After": str(wait)})

    def failed(self, account: str, remote: str) -> None:
        self._recent(account, remote).append(time.monotonic())

    def succeeded(self, account: str, remote: str) -> None:
        self.failures.pop((account, remote), None)

    def _recent(self, account: str, remote: str) -> list[float]:
        now = time.monotonic()
        lst = [t for t in self.failures.get((account, remote), []) if now - t < self.window]
        self.failures[(account, remote)] = lst
        if len(self.failures) > 100_000:
            self.failures = {k: v for k, v in self.failures.items() if v}
        return lst
