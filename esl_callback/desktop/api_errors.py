"""Failures of the API as sentences a customer understands: never a traceback or a status code
alone. `ApiError.kind` says what happened, for the window to act on (e.g. `signed_out`)."""

from __future__ import annotations

import socket
import ssl
from typing import Any

# The dial policy's and billing's reasons (403 error codes, quote refusals) as sentences.
REFUSALS = {
    "balance_too_low": "Your balance is too low for this call.",
    "destination_denied": "Calls to this number are not allowed.",
    "callback_number_denied": "Your number cannot be called back: calls to it are not allowed.",
    "no_rate_destination": "There is no price for this destination, so it cannot be called.",
    "no_rate_leg_a": "There is no price for calls to your number, so it cannot be called back.",
    "account_disabled": "Your account is disabled: calls cannot be placed.",
    "too_many_calls": "You have as many calls in progress as you may; wait until one ends.",
    "currency_mismatch": "Your account cannot be charged in its currency; contact your provider.",
    "caller_locked_out": "Your number is locked after too many wrong PINs; try again later.",
    "too_many_unauthenticated_calls": "Too many callbacks are waiting; try again later.",
    "caller_hourly_limit": "Too many callbacks to your number this hour; try again later.",
}
# The API's input names as the window labels them.
FIELDS = {
    "source": "Your number",
    "destination": "Number to call",
    "name": "Name",
    "number": "Number",
    "notes": "Notes",
    "username": "Username",
    "password": "Password",
}


class ApiError(Exception):
    """A request that did not succeed; `message` is the sentence to show."""

    def __init__(
        self,
        message: str,
        kind: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.code = code
        self.field = field


def sentence(text: str) -> str:
    """`text` with a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def server_message(message: str, field: str | None) -> str:
    """The server's message, its `field: ` prefix written as the window labels the field."""
    if field and message.startswith(f"{field}: "):
        message = f"{FIELDS.get(field, field)}: {message.removeprefix(field + ': ')}"
    return sentence(message)


def minutes(seconds: int | None) -> str:
    count = max(1, round((seconds or 60) / 60))
    return "1 minute" if count == 1 else f"{count} minutes"


def from_http(
    status: int, body: Any, retry_after: str | None, *, signing_in: bool = False
) -> ApiError:
    """The error of an HTTP answer with `status` and its JSON `body` (None if not JSON)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ApiError(
            f"The server did not answer like an esl-callback portal (HTTP {status}). "
            "Check the server address.",
            "not_portal",
            status=status,
        )
    code, field = error.get("code"), error.get("field")
    message = str(error.get("message") or "")
    retry = int(retry_after) if retry_after and retry_after.isdigit() else None
    if status == 401:
        if signing_in:
            return ApiError("Wrong username or password.", "wrong_password", status=status)
        return ApiError(
            "You have been signed out (this app's access was revoked or replaced). Sign in again.",
            "signed_out",
            status=status,
        )
    if status == 429 and signing_in:
        return ApiError(
            f"Locked out after too many failed sign-ins: try again in about {minutes(retry)}.",
            "locked_out",
            status=status,
        )
    if status == 403 and code in REFUSALS:
        return ApiError(REFUSALS[code], "refused", status=status, code=code, field=field)
    if status == 503:
        return ApiError(
            f"The service cannot do this right now: {server_message(message, field)} "
            "Try again in a moment.",
            "unavailable",
            status=status,
            code=code,
        )
    if status >= 500:
        return ApiError(
            f"The server had a problem (HTTP {status}); try again later.", "server", status=status
        )
    kinds = {403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid", 429: "too_many"}
    return ApiError(
        server_message(message, field),
        kinds.get(status, "invalid"),
        status=status,
        code=code,
        field=field,
    )


def from_network(exc: BaseException, server: str, timeout: float) -> ApiError:
    """The error of a request that got no answer: refused, unknown host, certificate, timeout."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError):
        why = reason.verify_message or "it could not be verified"
        return ApiError(
            f"The server's certificate is not trusted ({why}): the connection was refused and "
            "nothing was sent. Check the server address; if your provider has a certificate "
            "authority of its own, start the app with --ca-file.",
            "certificate",
        )
    if isinstance(reason, ssl.SSLError):
        return ApiError(
            f"A secure connection to {server} could not be made ({reason.reason or reason}). "
            "Check the server address.",
            "certificate",
        )
    if isinstance(reason, TimeoutError | socket.timeout):
        return ApiError(
            f"The server at {server} did not answer within {timeout:g} seconds. Try again; if "
            "it keeps happening, check your network connection.",
            "timeout",
        )
    if isinstance(reason, socket.gaierror):
        return ApiError(
            f"The server name in {server} is not known. Check the server address.",
            "unreachable",
        )
    if isinstance(reason, ConnectionRefusedError):
        detail = "nothing answers at that address"
    elif isinstance(reason, OSError) and reason.strerror:
        detail = reason.strerror.lower()
    else:
        detail = str(reason) or type(reason).__name__
    return ApiError(
        f"Cannot reach the server at {server} ({detail}). Check the address and your network "
        "connection.",
        "unreachable",
    )
