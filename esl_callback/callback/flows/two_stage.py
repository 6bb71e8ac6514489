"""Two-stage callback (phone triggers, SMS "CB"): the IVR on leg A asks for the PIN when the
trigger did not identify the account, then for destinations until one is connected."""

from __future__ import annotations

import logging

from esl_callback import accounts, lockout, numbers, vouchers
from esl_callback.callback import billing, policy
from esl_callback.callback.flow import PIN_TIMEOUT_CAUSE, FlowEnded
from esl_callback.callback.flows.caller_first import CallerFirstFlow
from esl_callback.callback.ivr import DESTINATION_VARIABLE, PIN_VARIABLE, VOUCHER_VARIABLE, Ivr
from esl_callback.callback.requests import State
from esl_callback.db import database_proxy
from esl_callback.models import CallbackRequest
from esl_callback.statements import Statement

log = logging.getLogger(__name__)

PIN_REJECTED = "PIN_REJECTED"
# At the destination question, * (then #) tops the account up with a voucher, a few times a call.
TOP_UP_KEY = "*"
DESTINATION_OR_TOP_UP = "^(\\*|\\d+)$"  # FreeSWITCH searches, unanchored
MAX_TOP_UPS = 3


class TwoStageFlow(CallerFirstFlow):
    """PIN (when needed), balance, then destinations until one is connected."""

    def after_answer(self) -> None:
        self.run_two_stage()

    def run_two_stage(self) -> None:
        """The IVR on leg A: PIN when needed, then destinations until one is connected.

        What the caller is told before a question (the balance, why the last destination
        failed) is part of the question's prompt: callers key through it (callback.ivr).
        """
        self.advance(State.IN_IVR)
        ivr = self.ivr()
        prompts, cfg = self.settings.ivr, self.settings.callback
        if self.account_id is None:
            self.account_id = self.collect_pin(ivr)
            auth = self.authorise(None)  # and leg A capped at what its hold pays for
            if not auth.allowed:  # the account cannot pay for this call: it ends here
                self.guard(ivr.play, self.refusal_prompt(auth))
                self.hang_up_caller(ivr, "NORMAL_CLEARING")
                raise FlowEnded(State.FAILED, auth.refusal.value, auth.detail)
        lead: list[str] = []  # said before the next question
        balance, currency = self.db.run(billing.balance_of, self.account_id)
        if cfg.announce_balance or billing.is_low_balance(balance, self.settings.billing):
            lead = [prompts.your_balance_is, *ivr.amount_sounds(balance, currency)]
        attempts = top_ups = 0
        while attempts < cfg.destination_attempts:
            digits = self.guard(
                ivr.collect,
                [*lead, prompts.enter_destination],
                DESTINATION_VARIABLE,
                min_digits=1,
                max_digits=cfg.max_digits,
                tries=3,
                regex=DESTINATION_OR_TOP_UP,
            )
            lead = []
            if digits == TOP_UP_KEY and top_ups < MAX_TOP_UPS:
                top_ups += 1
                lead = self.top_up(ivr)
                continue
            attempts += 1
            if digits is None or digits == TOP_UP_KEY:
                continue
            try:
                destination = numbers.normalise(digits, self.settings.numbers, what="destination")
            except numbers.InvalidNumber as exc:
                log.info("request %s: %s", self.plan.request_id, exc)
                lead = [prompts.invalid_number]
                continue
            auth = self.authorise(destination)
            if not auth.allowed:
                lead = [self.refusal_prompt(auth)]
                continue
            cause = self.connect_destination(destination)
            if cause is None:
                self.wait_until_ended()
                return
            self.advance(State.IN_IVR)
            lead = [self.prompt_for(cause)]
        self.guard(ivr.play, [*lead, prompts.goodbye])
        self.hang_up_caller(ivr, "NORMAL_CLEARING")
        raise FlowEnded(State.FAILED, "NO_DESTINATION", "no destination could be connected")

    def top_up(self, ivr: Ivr) -> list[str]:
        """The caller keyed * at the destination question: ask for a voucher's code and redeem
        it (wrong codes count towards the voucher lockout); what to say next (the new balance,
        or that the code was refused). A new balance renews the hold and leg A's cap."""
        prompts = self.settings.ivr
        code = self.guard(
            ivr.collect,
            prompts.enter_voucher,
            VOUCHER_VARIABLE,
            min_digits=vouchers.CODE_DIGITS,
            max_digits=vouchers.CODE_DIGITS,
            secret=True,
        )
        keys = (policy.CALLER_KEY.format(self.plan.source),)
        try:
            done = self.db.run(
                vouchers.redeem, self.account_id, code or "", keys, self.settings.billing
            )
        except vouchers.Refused as refused:
            log.info("request %s: voucher refused (%s)", self.plan.request_id, refused.reason)
            return [prompts.voucher_refused]
        self.authorise(None)
        return [prompts.your_balance_is, *ivr.amount_sounds(done.balance, done.currency)]

    def collect_pin(self, ivr: Ivr) -> int:
        """Ask for the PIN until it names an active account; lock out repeated failures.

        Nobody pays for leg A until then: the switch hangs it up at the PIN deadline, and a
        leg that ends without a valid PIN (nothing keyed, a hang-up, the deadline) counts as a
        failed attempt against the caller ID, as a wrong PIN does.
        """
        cfg, prompts = self.settings.callback, self.settings.ivr
        caller_key = policy.CALLER_KEY.format(self.plan.source)
        lead: list[str] = []  # "that PIN was wrong", said before asking again
        try:
            for _ in range(cfg.pin_attempts):
                if self.db.run(
                    lockout.is_locked,
                    "pin",
                    (caller_key,),
                    cfg.pin_lockout_failures,
                    cfg.pin_lockout_window_seconds,
                ):
                    break
                pin = self.guard(
                    ivr.collect,
                    [*lead, prompts.enter_pin],
                    PIN_VARIABLE,
                    min_digits=4,
                    max_digits=12,
                    secret=True,
                )
                account_id = self.db.run(accept_pin, self.plan.request_id, pin or "", caller_key)
                if account_id is not None:
                    return account_id
                lead = [prompts.invalid_pin]
            self.guard(ivr.play, [*lead, prompts.locked_out])
            self.hang_up_caller(ivr, "CALL_REJECTED")
        except FlowEnded as ended:
            if ended.cause in (PIN_TIMEOUT_CAUSE, "CALLER_HUNG_UP"):  # left without a PIN
                self.db.run(lockout.record_failure, "pin", caller_key)
            raise
        raise FlowEnded(State.FAILED, PIN_REJECTED, f"no valid PIN from {self.plan.source}")


def accept_pin(request_id: int, pin: str, caller_key: str) -> int | None:
    """The active account whose PIN this is, now billing the request (its failures and the
    caller's cleared); or None, with the failure counted against the caller and the PIN's
    account (nothing keyed, "", is a failure too). One transaction.
    """
    with database_proxy.atomic():
        account = accounts.find_account_by_pin(pin) if pin else None
        if account is not None and account.is_active:
            lockout.clear("pin", caller_key, f"account:{account.id}")
            _BIND_ACCOUNT.execute(id=request_id, account=account.id)
            return account.id
        keys = [caller_key] + ([f"account:{account.id}"] if account is not None else [])
        lockout.record_failure("pin", *keys)
        return None


_BIND_ACCOUNT = Statement(
    lambda s: CallbackRequest.update(account=s(CallbackRequest.account)).where(
        CallbackRequest.id == s.id
    )
)
