"""The one place where engine errors become HTTP status codes."""

from __future__ import annotations

from .. import errors

_TABLE: list[tuple[type[errors.EngineError], int]] = [
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Conflict, 409),
    (errors.InvalidArgument, 400),
    (errors.NotModified, 304),
    (errors.PermissionDenied, 403),
    (errors.Unauthorized, 401),
    (errors.Unavailable, 503),
    (errors.PreconditionFailed, 412),
    (errors.NotImplemented_, 501),
    (errors.SystemError_, 500),
]


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception (500 for anything not in the taxonomy)."""
    for kind, code in _TABLE:
        if isinstance(exc, kind):
            return code
    return 500
