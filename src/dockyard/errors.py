"""One error taxonomy for the whole engine; the API maps kinds to HTTP in one place.

EngineError
 ├─ NotFound          (404)
 ├─ Conflict          (409)
 │   └─ AlreadyExists (409)
 ├─ InvalidArgument   (400)
 ├─ NotModified       (304)
 ├─ PermissionDenied  (403)
 ├─ Unavailable       (503)
 ├─ NotImplemented_   (501)
 └─ SystemError_      (500)
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    @property
    def message(self) -> str:
        """The human message, as Docker puts it in `{"message": ...}`."""
        return str(self.args[0]) if self.args else self.__class__.__name__


class NotFound(EngineError):
    """A named object does not exist."""


class Conflict(EngineError):
    """The request conflicts with the current state of an object."""


class AlreadyExists(Conflict):
    """An object with that name or ID already exists."""


class InvalidArgument(EngineError):
    """The caller sent something malformed or not allowed."""


class NotModified(EngineError):
    """Nothing to do: the object is already in the requested state."""


class PermissionDenied(EngineError):
    """The operation is not allowed."""


class Unauthorized(EngineError):
    """Credentials were refused (a registry login)."""


class Unavailable(EngineError):
    """A component needed for the request is not available."""


class PreconditionFailed(EngineError):
    """What the request builds on is not there (a context sync's base the daemon no longer keeps)."""


class NotImplemented_(EngineError):
    """The feature is not implemented."""


class SystemError_(EngineError):
    """An internal failure (runtime, kernel, filesystem)."""


def describe(e: BaseException) -> str:
    """An unexpected exception as the message of a 500, in dockerd's words where the kernel
    speaks: `<path>: no space left on device` rather than `OSError: [Errno 28] ...`."""
    if isinstance(e, OSError) and e.strerror:
        what = e.strerror[0].lower() + e.strerror[1:]
        return f"{e.filename}: {what}" if e.filename else what
    if type(e).__name__ == "OperationalError" and "full" in str(e):   # sqlite3's ENOSPC
        return "metadata database: no space left on device"
    return f"{type(e).__name__}: {e}"
