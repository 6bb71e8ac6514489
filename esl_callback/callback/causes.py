"""Hangup causes in words, and what they mean for a callback."""

from __future__ import annotations

# Causes after which calling the same number again cannot help.
PERMANENT = frozenset(
    {
        "UNALLOCATED_NUMBER",
        "NO_ROUTE_TRANSIT_NET",
        "NO_ROUTE_DESTINATION",
        "INVALID_NUMBER_FORMAT",
        "CHAN_NOT_IMPLEMENTED",
        "INCOMPATIBLE_DESTINATION",
        "FACILITY_NOT_IMPLEMENTED",
        "SERVICE_NOT_IMPLEMENTED",
        "BEARERCAPABILITY_NOTIMPL",
        "NUMBER_CHANGED",
    }
)

BUSY = frozenset({"USER_BUSY", "CALL_REJECTED"})
# Causes of hangups the service itself ordered (`sched_hangup` when the balance runs out).
SERVICE_HANGUPS = frozenset({"ALLOTTED_TIMEOUT"})
NO_ANSWER = frozenset(
    {"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT"}
)

WORDS = {
    "NORMAL_CLEARING": "hung up",
    "USER_BUSY": "busy",
    "CALL_REJECTED": "rejected the call",
    "NO_ANSWER": "no answer",
    "NO_USER_RESPONSE": "no answer",
    "ORIGINATOR_CANCEL": "cancelled",
    "ALLOTTED_TIMEOUT": "time limit reached",
    "UNALLOCATED_NUMBER": "number does not exist",
    "NO_ROUTE_DESTINATION": "no route to the number",
    "INVALID_NUMBER_FORMAT": "invalid number",
    "SUBSCRIBER_ABSENT": "phone unreachable",
    "USER_NOT_REGISTERED": "phone unreachable",
    "NORMAL_TEMPORARY_FAILURE": "network failure",
    "DESTINATION_OUT_OF_ORDER": "phone unreachable",
    "RECOVERY_ON_TIMER_EXPIRE": "network timeout",
    "CHAN_NOT_IMPLEMENTED": "route not supported",
    "MANAGER_REQUEST": "hung up by the service",
    "LOSE_RACE": "answered elsewhere",
}


def in_words(cause: str | None) -> str:
    """A hangup cause as a user reads it, e.g. USER_BUSY -> "busy"."""
    if not cause:
        return "unknown"
    return WORDS.get(cause, cause.replace("_", " ").lower())


def is_busy(cause: str | None) -> bool:
    return cause in BUSY


def is_no_answer(cause: str | None) -> bool:
    return cause in NO_ANSWER


def declined(cause: str | None, answered: bool, hung_up_by_us: bool) -> bool:
    """A leg the far end ended before answering without saying why: over mod_loopback a SIP
    486 (busy) or 603 reaches us as NORMAL_CLEARING (a sofia gateway says USER_BUSY or
    CALL_REJECTED). To the caller, the callee did not take the call: as busy."""
    return cause == "NORMAL_CLEARING" and not answered and not hung_up_by_us


def worth_retrying(cause: str | None) -> bool:
    """Whether calling the number again later may succeed."""
    return cause not in PERMANENT
