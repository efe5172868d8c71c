"""Swarm-mode endpoints (swarm, nodes, services, tasks, secrets, configs) answered as dockerd
answers them while swarm is inactive — which, here, it always is: clients such as docker-py's
test tear-downs treat dockerd's 503 "This node is not part of a swarm" as "nothing to leave".
`swarm init` and `swarm join` are refused with a message that says where Dockyard's cluster
support is instead."""

from __future__ import annotations

from aiohttp import web

from ...errors import InvalidArgument, NotImplemented_, SystemError_, Unavailable
from ..server import Routes

NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
               "this node to swarm and try again.")
NOT_IN_SWARM = "This node is not part of a swarm"
NO_SWARM_MODE = ("Dockyard has no swarm mode: to run containers across hosts, make Dockyard a Kubernetes node "
                 "through its CRI, and connect containers on several hosts with Docker's overlay networks")

_MANAGER_ROUTES = [
    ("GET", "/swarm"), ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"), ("DELETE", "/services/{id}"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"), ("DELETE", "/secrets/{id}"),
    ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"), ("DELETE", "/configs/{id}"),
    ("POST", "/configs/{id}/update"),
]


class SwarmRouter:
    """Route table for the swarm-mode endpoints."""

    def routes(self, r: Routes) -> None:
        """Register."""
        for method, path in _MANAGER_ROUTES:
            r.add(method, path, self.not_manager)
        r.add("POST", "/services/{id}/update", self.versioned)
        r.add("POST", "/nodes/{id}/update", self.versioned)
        r.add("GET", "/services/{id}/logs", self.logs)
        r.add("GET", "/tasks/{id}/logs", self.logs)
        r.add("POST", "/swarm/leave", self.leave)
        r.add("POST", "/swarm/init", self.no_swarm_mode)
        r.add("POST", "/swarm/join", self.no_swarm_mode)

    async def not_manager(self, req: web.Request) -> web.Response:
        """dockerd's answer to a manager endpoint on a node outside any swarm."""
        raise Unavailable(NOT_MANAGER)

    async def versioned(self, req: web.Request) -> web.Response:
        """`POST /services|nodes/{id}/update`: dockerd checks `version` before it finds no swarm."""
        v = req.query.get("version", "")
        if not v.isdigit():
            what = "service" if "/services/" in req.path else "node"
            raise InvalidArgument(f"invalid {what} version '{v}': strconv.ParseUint: parsing \"{v}\": invalid syntax")
        raise Unavailable(NOT_MANAGER)

    async def logs(self, req: web.Request) -> web.Response:
        """`GET /services|tasks/{id}/logs`: dockerd checks the streams first (and answers 500)."""
        if not any(req.query.get(k, "") in ("1", "true", "True") for k in ("stdout", "stderr")):
            raise SystemError_("Bad parameters: you must choose at least one stream")
        raise Unavailable(NOT_MANAGER)

    async def leave(self, req: web.Request) -> web.Response:
        """`POST /swarm/leave`: there is nothing to leave."""
        raise Unavailable(NOT_IN_SWARM)

    async def no_swarm_mode(self, req: web.Request) -> web.Response:
        """`POST /swarm/init|join`: refused, saying what Dockyard offers instead."""
        raise NotImplemented_(NO_SWARM_MODE)
