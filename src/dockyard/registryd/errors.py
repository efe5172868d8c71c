"""The registry's errors: the distribution spec's codes, each with its HTTP status, in one place.
Handlers raise `RegistryError(code, message)`; the app turns it into `{"errors": [...]}`."""

from __future__ import annotations

from typing import Any

STATUS = {
    "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404, "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400, "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404, "SIZE_INVALID": 400, "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429, "RANGE_INVALID": 416, "TAG_INVALID": 400, "PAGINATION_NUMBER_INVALID": 400,
    "UNAVAILABLE": 503,
}


class RegistryError(Exception):
    """One spec error: `code` names it, `status` overrides the code's usual HTTP status."""

    def __init__(self, code: str, message: str, detail: Any = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.detail = code, message, detail
        self.status = status or STATUS[code]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The spec's error body."""
        e: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            e["detail"] = self.detail
        return {"errors": [e]}


class ConfigError(Exception):
    """The configuration file asks for something this registry does not do, or is malformed."""
