"""Container records: a frozen config written once, and a state with one Status enum whose
transitions are explicit. Live handles (locks, waiters) are kept apart from what is persisted."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import Conflict

ZERO_TIME = "0001-01-01T00:00:00Z"


class Status(str, enum.Enum):
    """Docker's container statuses."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


_TRANSITIONS: dict[Status, set[Status]] = {
    Status.CREATED: {Status.RUNNING, Status.EXITED, Status.REMOVING, Status.DEAD},
    Status.RUNNING: {Status.EXITED, Status.PAUSED, Status.RESTARTING, Status.DEAD},
    Status.PAUSED: {Status.RUNNING, Status.EXITED},
    Status.RESTARTING: {Status.RUNNING, Status.EXITED, Status.REMOVING},
    Status.EXITED: {Status.RUNNING, Status.REMOVING, Status.DEAD, Status.EXITED, Status.RESTARTING},
    Status.REMOVING: {Status.DEAD, Status.EXITED, Status.CREATED},
    Status.DEAD: {Status.REMOVING},
}


@dataclass(frozen=True)
class ContainerConfig:
    """What `create` decided; never changes afterwards (rename changes only the name row)."""

    id: str
    created: str
    image_id: str
    image_ref: str
    path: str
    args: list[str]
    config: dict[str, Any]        # Docker's Config (merged with the image's)
    host_config: dict[str, Any]   # Docker's HostConfig, normalized
    runtime: str
    # network name → endpoint settings (Aliases, IPAMConfig, MacAddress), the primary network first;
    # changed by connect and disconnect
    networks: dict[str, Any] = field(default_factory=dict)
    # mount points (containers.mounts): volumes, binds and tmpfs, as inspect shows them and start needs them
    mounts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """For persistence."""
        return asdict(self)


@dataclass
class ContainerState:
    """Mutable state, persisted on every transition."""

    status: Status = Status.CREATED
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False
    restart_count: int = 0
    manually_stopped: bool = False   # stopped or killed through the API (restart policies skip it)
    sandbox: str = ""   # its network namespace while it runs (network.networks)
    endpoints: dict[str, Any] = field(default_factory=dict)   # network name → endpoint (network.bridge)
    health: dict[str, Any] | None = None   # State.Health (containers.health) when it has a healthcheck
    monitor: int = 0   # the group whose monitor runs it (containers/monitors.py)

    def to(self, new: Status) -> None:
        """Move to `new`, refusing transitions the model does not allow."""
        if new not in _TRANSITIONS[self.status] and new != self.status:
            raise Conflict(f"cannot move container from {self.status.value} to {new.value}")
        self.status = new

    @property
    def running(self) -> bool:
        """A process is there (running or paused)."""
        return self.status in (Status.RUNNING, Status.PAUSED)

    @property
    def docker_running(self) -> bool:
        """Docker's `State.Running`: true while paused, and while waiting for a policy restart."""
        return self.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)

    def to_json(self) -> dict[str, Any]:
        """For persistence."""
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ContainerState":
        """Inverse of to_json."""
        d = dict(d)
        d["status"] = Status(d["status"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Container:
    """A container: config + state + name, with its live handles."""

    cfg: ContainerConfig
    state: ContainerState
    name: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    exit_waiters: list[asyncio.Future[ContainerState]] = field(default_factory=list)
    restart_task: "asyncio.Task[None] | None" = None   # a policy restart waiting for its delay
    restart_delay: float = 0.0
    remove_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    removed: bool = False
    placed: int | None = None   # the monitor group chosen for a start (or an attach before it) under way

    @property
    def id(self) -> str:
        """Full ID."""
        return self.cfg.id
