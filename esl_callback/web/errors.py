"""Errors the portal and the API answer with: a status and a message fit to show a user."""

from __future__ import annotations


class WebError(Exception):
    """A request that cannot be served; `field` names the input at fault, if one is."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after

    def as_json(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class Unauthorised(WebError):
    status, code = 401, "unauthorised"


class Forbidden(WebError):
    status, code = 403, "forbidden"


class NotFound(WebError):
    status, code = 404, "not_found"


class Conflict(WebError):
    status, code = 409, "conflict"


class Invalid(WebError):
    status, code = 422, "invalid"


class TooMany(WebError):
    status, code = 429, "too_many_requests"


class Unavailable(WebError):
    status, code = 503, "unavailable"
