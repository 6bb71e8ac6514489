"""What may start: a trigger or an order checked against the dial policy and stored, in one unit.

A request is stored `queued` (to be dialled) or `rejected` with the reason, in the same
transaction as the checks that decided it, so the limits of `callback.policy` hold under
simultaneous triggers. Nothing here dials; the dialer starts the flow of a queued request.
"""

from __future__ import annotations

from dataclasses import dataclass

from esl_callback import metrics
from esl_callback.callback import policy, requests, triggers
from esl_callback.callback.policy import Purpose, Refused
from esl_callback.callback.requests import State
from esl_callback.db import database_proxy
from esl_callback.models import Account, CallbackRequest


@dataclass(frozen=True)
class Admission:
    """A stored request and, when it was rejected, why (`refused` reason and detail)."""

    request: CallbackRequest
    trigger: triggers.Trigger | None  # what the trigger was recognised as (phone triggers)
    reason: str | None = None
    detail: str | None = None
    field: str | None = None  # the input at fault (web orders)

    @property
    def admitted(self) -> bool:
        return self.reason is None


def admit_trigger(
    caller: str,
    called: str,
    trigger: str,
    trigger_uuid: str | None,
    settings: policy.Settings,
    owner: str | None = None,
) -> Admission:
    """Recognise a call from `caller` to `called`, check its callback number and store it,
    owned by controller `owner` (esl_callback/controllers.py)."""
    with database_proxy.atomic():
        try:
            found = triggers.identify(called, caller, settings.numbers)
        except triggers.TriggerRefused as refused:
            return _rejected_trigger(
                caller, called, trigger, trigger_uuid, refused.method, refused.account, None,
                refused.reason, refused.detail,
            )  # fmt: skip
        try:
            if found.account is None:
                policy.admit_unauthenticated(found.callback_number, settings)
            else:
                policy.check(found.callback_number, Purpose.CALL_BACK, settings)
                policy.check_not_locked_out(found.callback_number, settings)
        except Refused as refused:
            return _rejected_trigger(
                caller, called, trigger, trigger_uuid, found.method, found.account,
                found.callback_number, refused.reason, refused.detail,
            )  # fmt: skip
        request = requests.create(
            trigger=trigger,
            method=found.method,
            account=found.account,
            mode="two_stage",
            caller_id=caller[:64],
            called_number=called[:64],
            trigger_uuid=trigger_uuid,
            source=found.callback_number,
            controller=owner,
        )
        return Admission(request, found)


def _rejected_trigger(
    caller: str,
    called: str,
    trigger: str,
    trigger_uuid: str | None,
    method: str,
    account: Account | None,
    source: str | None,
    reason: str,
    detail: str,
) -> Admission:
    metrics.REQUESTS_ENDED.labels(State.REJECTED, reason).inc()
    request = requests.create(
        trigger=trigger,
        method=method,
        account=account,
        state=State.REJECTED,
        caller_id=caller[:64],
        called_number=called[:64],
        trigger_uuid=trigger_uuid,
        source=source,
        failure_cause=reason,
        failure_detail=detail,
    )
    return Admission(request, None, reason, detail)


def admit_order(
    account: Account | None,
    source: str,
    destination: str | None,
    mode: str,
    trigger: str,
    method: str,
    settings: policy.Settings,
    owner: str | None = None,
) -> Admission:
    """Check the numbers of a callback whose numbers are known (web, SMS, CLI, verification)
    and store it: queued (owned by controller `owner`), or rejected with the reason. `account`
    None: the IVR asks for the PIN (an unauthenticated leg A)."""
    with database_proxy.atomic():
        try:
            if account is None:
                policy.admit_unauthenticated(source, settings)
            else:
                policy.check(source, Purpose.CALL_BACK, settings)
                if trigger == "sms":  # a trigger from a phone, as a call is
                    policy.check_not_locked_out(source, settings)
            if destination is not None:
                policy.check(destination, Purpose.DESTINATION, settings)
        except Refused as refused:
            metrics.REQUESTS_ENDED.labels(State.REJECTED, refused.reason).inc()
            request = requests.create(
                trigger=trigger,
                method=method,
                account=account,
                mode=mode,
                state=State.REJECTED,
                source=source,
                destination=destination,
                failure_cause=refused.reason,
                failure_detail=refused.detail,
            )
            return Admission(request, None, refused.reason, refused.detail, refused.field)
        request = requests.create(
            trigger=trigger,
            method=method,
            account=account,
            mode=mode,
            source=source,
            destination=destination,
            controller=owner,
        )
        return Admission(request, None)
