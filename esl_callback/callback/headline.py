"""A call's status as one sentence a customer reads: "Your phone is ringing", "Calling Mary",
"Connected", "Mary's line was busy"; and the outcome of a call that ended, in a word or two.

The portal, the desktop client and the CLI all show these, from the status snapshot
(`status.snapshot_of` adds them as `headline`, `outcome` and `outcome_words`), so they say the
same. The one the call is for is "you" (the caller, leg A); the other party is named from the
account's phone book, else by the number written for reading (`readable_numbers`).
"""

from __future__ import annotations

from typing import Any

from esl_callback.readable_numbers import readable

RINGING = ("ringing", "early_media")
CALLING = ("queued", "calling")
UP = ("answered", "bridged")

# A call that has ended, in a word or two (the history's "Outcome" column and its filter).
OUTCOME_WORDS = {
    "connected": "Connected",
    "busy": "Busy",
    "no_answer": "No answer",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "not_placed": "Not placed",
    "checked": "Number checked",
    "not_checked": "Number not checked",
    "ended": "Ended",
    "live": "In progress",
}


def party(number: str | None, names: dict[str, str]) -> str:
    """The other party as the customer knows them: the phone-book name, else the number."""
    if not number:
        return "the other number"
    return names.get(number) or readable(number)


def possessive(number: str | None, names: dict[str, str], thing: str) -> str:
    """ "Mary's line", or "the line of +49 40 333333" for a number without a name."""
    name = names.get(number or "")
    return f"{name}'s {thing}" if name else f"the {thing} of {party(number, names)}"


def latest_legs(snap: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last leg A and the last leg B of a snapshot (placeholders included)."""
    found: dict[str, dict[str, Any]] = {}
    for leg in snap["legs"]:
        found[leg["leg"]] = leg
    return found.get("a"), found.get("b")


def status_of(leg: dict[str, Any] | None) -> str:
    return "queued" if leg is None else leg["status"]


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def headline(snap: dict[str, Any], names: dict[str, str]) -> str:
    """Where the call stands, in one sentence without a full stop."""
    if snap["mode"] == "verify":
        return sentence(number_check_headline(snap))
    if snap["live"]:
        return sentence(live_headline(snap, names))
    return sentence(ended_headline(snap, names))


def live_headline(snap: dict[str, Any], names: dict[str, str]) -> str:
    other = party(snap["destination"], names)
    a, b = (status_of(leg) for leg in latest_legs(snap))
    if snap["state"] == "bridged" or (a == "bridged" and b == "bridged"):
        return "connected"
    if snap["state"] == "queued":
        both = snap["mode"] == "simultaneous"
        return f"getting ready to call you and {other}" if both else "getting ready to call you"
    if snap["mode"] == "simultaneous":
        return both_at_once(a, b, other)
    if a in CALLING:
        return "we're calling you"
    if a in RINGING:
        return "your phone is ringing"
    if snap["state"] == "in_ivr" or not snap["destination"]:
        return (
            "you answered: key the number to call"
            if snap["mode"] == "two_stage"
            else (f"you answered: calling {other}")
        )
    if b in RINGING:
        return f"{possessive(snap['destination'], names, 'phone')} is ringing"
    if b in UP:
        return "connecting you"
    return f"calling {other}"


def both_at_once(a: str, b: str, other: str) -> str:
    """Both phones are called at once: say where each stands, never "calling the source"."""
    if a in UP and b in UP:
        return "connecting you"
    if a in UP:
        return f"you answered: waiting for {other} to answer"
    if b in UP:
        return f"{other} answered: waiting for you to answer"
    if a in RINGING and b in RINGING:
        return f"your phone and {other} are ringing"
    if a in RINGING:
        return f"your phone is ringing; calling {other}"
    if b in RINGING:
        return f"we're calling you; {other} is ringing"
    return f"calling you and {other}"


def ended_headline(snap: dict[str, Any], names: dict[str, str]) -> str:
    who = snap["destination"]
    other = party(who, names)
    kind = outcome(snap)
    a_leg, b_leg = latest_legs(snap)
    a, b = status_of(a_leg), status_of(b_leg)
    if kind == "connected":
        return f"your call with {other} ended" if who else "your call ended"
    if kind == "cancelled":
        return (
            "you cancelled the call"
            if snap["failure_cause"] == "USER_CANCELLED"
            else ("the call was cancelled")
        )
    if kind == "not_placed":
        return f"the call was not placed: {snap['failure_words'] or 'it was refused'}"
    if b == "busy":
        return f"{possessive(who, names, 'line')} was busy"
    if b == "no_answer":
        return f"{other} didn't answer"
    if b == "failed":
        return (
            f"we couldn't reach {other} ({b_leg['cause_words']})"
            if b_leg
            else (f"we couldn't reach {other}")
        )
    if a == "busy":
        return "your line was busy"
    if a == "no_answer":
        return "you didn't answer our call"
    if a == "failed" and a_leg is not None:
        return f"we couldn't reach you ({a_leg['cause_words']})"
    if snap["state"] == "completed":
        return "the call ended"
    return f"the call did not go through: {snap['failure_words'] or 'it failed'}"


def number_check_headline(snap: dict[str, Any]) -> str:
    number = readable(snap["source"])
    a = status_of(latest_legs(snap)[0])
    if snap["live"]:
        if a in RINGING:
            return f"{number} is ringing: answer and key the code"
        if a in UP:
            return "waiting for the code to be keyed"
        return f"calling {number} to check it"
    if snap["state"] == "completed":
        return f"{number} was checked"
    if a == "busy":
        return f"{number} was busy: it was not checked"
    if a == "no_answer":
        return f"{number} didn't answer: it was not checked"
    return f"{number} was not checked: {snap['failure_words'] or 'the check failed'}"


def outcome(snap: dict[str, Any]) -> str:
    """How the call ended, one of OUTCOME_WORDS' keys ("live" while it goes on)."""
    if snap["live"]:
        return "live"
    a, b = (status_of(leg) for leg in latest_legs(snap))
    if snap["mode"] == "verify":
        return "checked" if snap["state"] == "completed" else "not_checked"
    if snap["connected_since"]:
        return "connected"
    if snap["state"] == "rejected":
        return "not_placed"
    if snap["state"] == "cancelled":
        return "cancelled"
    if "busy" in (b, a):
        return "busy"
    if "no_answer" in (b, a):
        return "no_answer"
    if snap["state"] == "completed":
        return "ended"
    return "failed"
