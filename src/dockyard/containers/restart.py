"""Restart policies (`--restart`), decided as dockerd's restart manager decides them.

* `no` (or empty): never.
* `always`: after every exit, unless stopped through the API (`stop`, `kill`); also brought
  back when the daemon starts, even if it had been stopped by hand.
* `unless-stopped`: as `always`, but a container stopped by hand stays stopped across daemon
  restarts.
* `on-failure[:N]`: after a non-zero exit, at most N times (0 = no limit); at daemon start,
  if its last exit was non-zero (as dockerd, even after a stop by hand).

Delays between restarts start at 100 ms and double after each restart, up to one minute; a run
that lasted 10 s or more resets them.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
STABLE_RUN = 10.0


def validate(policy: Any) -> dict[str, Any]:
    """Normalize `HostConfig.RestartPolicy`; Docker's errors for bad ones."""
    if policy is None:
        return {"Name": "", "MaximumRetryCount": 0}
    if not isinstance(policy, dict):
        raise InvalidArgument("RestartPolicy must be an object")
    name = policy.get("Name") or ""
    count = policy.get("MaximumRetryCount") or 0
    if not isinstance(count, int):
        raise InvalidArgument("maximum retry count must be an integer")
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    elif name == "on-failure":
        if count < 0:
            raise InvalidArgument("maximum retry count cannot be negative")
    elif name != "":
        raise InvalidArgument(f"invalid restart policy '{name}'")
    return {"Name": name, "MaximumRetryCount": count}


def should_restart(policy: dict[str, Any], exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    """After an exit while the daemon runs."""
    if manually_stopped:
        return False
    name = policy.get("Name") or "no"
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def start_at_boot(policy: dict[str, Any], exit_code: int, manually_stopped: bool, started_before: bool) -> bool:
    """When the daemon starts, for a container that is not running."""
    if not started_before:
        return False
    name = policy.get("Name") or "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not manually_stopped
    if name == "on-failure":
        return exit_code != 0   # as dockerd: a stop by hand is forgotten at daemon start
    return False


def next_delay(previous: float, ran_for: float) -> float:
    """Back-off before the next restart."""
    if ran_for >= STABLE_RUN or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)
