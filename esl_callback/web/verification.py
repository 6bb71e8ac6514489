"""Adding a number to an account only after its owner proves they hold it.

The portal shows a random code; the platform calls the number (`Dialer.verify_number`) and asks
for it on the keypad. The dialer ends that call's request `completed` only when the keyed digits
match, and anything else `failed` (cause `WRONG_CODE`, or the leg's hangup cause). `settle` reads
that outcome and, on success, makes the number one of the account's, marked verified.

Limits: `MAX_PER_HOUR` verification calls per account, so the feature cannot be used to ring a
stranger's phone again and again; a code is good for `LIFETIME`. A number of another account is
checked like any other (answering otherwise would tell anyone which numbers are customers'
caller IDs); only once its code has been keyed is it refused, as "cannot be added".

Run the functions through `Database.run`, except `begin`, which does that itself and asks the
dialer for the call.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

import peewee

from esl_callback import accounts
from esl_callback.callback import policy
from esl_callback.callback.requests import TERMINAL, State
from esl_callback.callback.status import iso, request_failure_words
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import Account, CallbackRequest, CallerId
from esl_callback.models import NumberVerification as Verification
from esl_callback.web.callbacks import refused
from esl_callback.web.errors import Conflict, NotFound, TooMany, Unavailable, WebError
from esl_callback.web.portal import Portal

log = logging.getLogger(__name__)

CODE_DIGITS = 6
LIFETIME = timedelta(minutes=10)
MAX_PER_HOUR = 3
OPEN = (Verification.PENDING, Verification.CALLING)
CANNOT_BE_ADDED = "This number cannot be added to your account."


def new_code() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))


def start(account_id: int, digits: str) -> Verification:
    """A new verification of `digits` for the account, with a fresh code."""
    own = CallerId.get_or_none(CallerId.number == digits, CallerId.account == account_id)
    if own is not None:
        raise Conflict(f"{digits} is already one of your numbers.", field="number")
    now = utcnow()
    with database_proxy.atomic():
        accounts.lock(account_id)  # one start at a time per account
        under_way = (
            Verification.select(Verification.id)
            .join(CallbackRequest, peewee.JOIN.LEFT_OUTER)
            .where(
                Verification.account == account_id,
                Verification.number == digits,
                Verification.expires_at > now,
                (Verification.status == Verification.PENDING)
                | (
                    (Verification.status == Verification.CALLING)
                    & CallbackRequest.state.not_in(TERMINAL)
                ),
            )
            .first()
        )
        if under_way is not None:
            raise Conflict(
                f"{digits} is being called for check {under_way.id}: answer that call, or start "
                "again once it has ended.",
                field="number",
            )
        recent = (
            Verification.select()
            .where(
                Verification.account == account_id,
                Verification.created_at >= now - timedelta(hours=1),
            )
            .count()
        )
        if recent >= MAX_PER_HOUR:
            raise TooMany(
                f"At most {MAX_PER_HOUR} numbers can be checked per hour: try again later.",
                retry_after=3600,
            )
        Verification.update(status=Verification.EXPIRED).where(
            Verification.account == account_id,
            Verification.number == digits,
            Verification.status.in_(OPEN),
        ).execute()
        return Verification.create(
            account=account_id,
            number=digits,
            code=new_code(),
            created_at=now,
            expires_at=now + LIFETIME,
        )


def begin(portal: Portal, account_id: int, digits: str) -> Verification:
    """Store a verification of `digits` and have the dialer call it to ask for the code.

    A number the dial policy refuses (a premium-rate line, a country not served) is refused
    first (403, its reason as the code): nothing is stored, nothing dialled.
    """
    portal.require_dialer()
    denied = policy.refusal(digits, policy.Purpose.CALL_BACK, portal.settings)
    if denied is not None:
        log.warning("number verification of %s refused: %s", digits, denied.detail)
        denied.field = "number"
        raise refused(denied)
    started = portal.run(start, account_id, digits)
    return place_call(portal, account_id, started.id)


def place_call(portal: Portal, account_id: int, verification_id: int) -> Verification:
    """Have the dialer call the number of one of the account's pending verifications.

    The portal does it right after `start`; the operator API does it for a portal run alone
    (`esl-callback web`), whose dialer is serve's (`web.remote_dialer`).
    """
    dialer = portal.require_dialer()
    pending = portal.run(owned, account_id, verification_id)
    if pending.status != Verification.PENDING or utcnow() > pending.expires_at:
        raise Conflict(
            f"Number check {verification_id} is no longer waiting for its call: start a new one."
        )
    owner = portal.run(Account.get_by_id, account_id)
    try:
        call = dialer.verify_number(owner, pending.number, pending.code)
    except policy.Refused as exc:  # stored as a rejected request; nothing dialled
        portal.run(could_not_call, pending.id, exc.detail)
        exc.field = "number"
        raise refused(exc) from None
    except Exception as exc:
        known = isinstance(exc, WebError)
        reason = exc.message if known else f"the call could not be started: {exc}"
        portal.run(could_not_call, pending.id, reason)
        if known:
            raise
        log.exception("number verification %s: the call could not be started", pending.id)
        raise Unavailable(reason) from exc
    portal.run(calling, pending.id, call.id)
    return portal.run(settle, account_id, pending.id)


def owner_of(verification_id: int) -> int:
    """The account a verification belongs to (run through Database.run)."""
    found = Verification.get_or_none(Verification.id == verification_id)
    if found is None:
        raise NotFound(f"There is no number check {verification_id}.")
    return found.account_id


def calling(verification_id: int, request_id: int) -> None:
    """The verification call has been started as request `request_id`."""
    Verification.update(status=Verification.CALLING, request=request_id).where(
        Verification.id == verification_id
    ).execute()


def could_not_call(verification_id: int, reason: str) -> None:
    Verification.update(status=Verification.FAILED, failure=reason[:128]).where(
        Verification.id == verification_id
    ).execute()


def owned(account_id: int, verification_id: int) -> Verification:
    verification = Verification.get_or_none(
        Verification.id == verification_id, Verification.account == account_id
    )
    if verification is None:
        raise NotFound(f"There is no number check {verification_id}.")
    return verification


def settle(account_id: int, verification_id: int) -> Verification:
    """The verification, brought up to date with its call's outcome."""
    with database_proxy.atomic():
        verification = owned(account_id, verification_id)
        if verification.status not in OPEN:
            return verification
        request = (
            CallbackRequest.get_or_none(CallbackRequest.id == verification.request_id)
            if verification.request_id
            else None
        )
        if request is not None and State(request.state) in TERMINAL:
            if request.state == State.COMPLETED:
                _verified(verification)
            else:
                verification.status = Verification.FAILED
                verification.failure = (request_failure_words(request) or "the call failed")[:128]
        elif request is None and utcnow() > verification.expires_at:
            verification.status = Verification.EXPIRED
        verification.save()
    return verification


def _verified(verification: Verification) -> None:
    """The code was keyed: the number becomes the account's, unless another account has it."""
    try:
        caller_id = accounts.ensure_caller_id(verification.account, verification.number)
    except accounts.AccountError:
        # Not whose it is: the code proves who holds the phone, not that they may know that.
        verification.status, verification.failure = Verification.FAILED, CANNOT_BE_ADDED
        return
    now = utcnow()
    CallerId.update(verified_at=now).where(CallerId.id == caller_id.id).execute()
    verification.status, verification.verified_at = Verification.VERIFIED, now
    log.info(
        "account %s proved it owns %s",
        verification.account_id,
        verification.number,
        extra={"request_id": verification.request_id},
    )


def open_verifications(account_id: int) -> list[Verification]:
    """The account's verifications that were waiting for their call, newest first, settled now
    (so a call that just ended shows its outcome once)."""
    found = (
        Verification.select()
        .where(Verification.account == account_id, Verification.status.in_(OPEN))
        .order_by(Verification.created_at.desc())
    )
    return [settle(account_id, v.id) for v in found]


def describe(verification: Verification) -> dict[str, Any]:
    """As the API shows it; the code only while the call may still ask for it."""
    return {
        "id": verification.id,
        "number": verification.number,
        "status": verification.status,
        "code": verification.code if verification.status in OPEN else None,
        "request_id": verification.request_id,
        "failure": verification.failure,
        "created_at": iso(verification.created_at),
        "expires_at": iso(verification.expires_at),
        "verified_at": iso(verification.verified_at),
    }
