"""What a flow may spend, and the switch told so: the hold, leg A's cap and the call's duration.

Money is held before every originate (`billing.authorise`), and what the hold pays for is
enforced by FreeSWITCH itself, so that no leg outlives its money even if the controller stops:

* leg A is capped with `sched_hangup` as soon as it answers: before the PIN by the PIN deadline
  (`callback.pin_deadline_seconds`: nobody pays for that leg), then by the seconds the request's
  hold pays for leg A alone (`Authorisation.leg_a_seconds`), renewed with each new hold;
* the bridged call's duration is computed when the destination answers, from the seconds both
  legs have really been up (not from the longest the destination could have rung), and replaces
  leg A's cap (`sched_del`, then `sched_hangup` and the low-balance warning).

Timing, as FreeSWITCH 1.10 does it (switch_channel_set_timestamps, switch_scheduler.c):
billsec is the hangup's epoch second minus the answer's, and `sched_hangup +N` fires on the
scheduler's first pass (every half second) at or after the current epoch second plus N. A leg up
for `u` seconds when the command leaves is therefore billed at most ceil(u) + N seconds; each
leg's seconds are counted rounded up (`CallFlow.seconds_up`) plus MARGIN_SECONDS for the time
between reading the clock and the switch acting. The floor in `billing.close_leg` stops any debit
that would still overshoot (counted as operator cost).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from esl_callback.callback import billing
from esl_callback.db import database_proxy
from esl_callback.switch import commands

if TYPE_CHECKING:
    from esl_callback.callback.flow import CallFlow, LegState

log = logging.getLogger(__name__)

MARGIN_SECONDS = 1
# How a capped leg is hung up: FreeSWITCH's cause for a call that used its allotted time.
CAP_CAUSE = "ALLOTTED_TIMEOUT"


def head_starts(
    mode: str, ring_seconds: int, leg_a_up: int = 0, *, with_destination: bool = True
) -> tuple[int, int]:
    """The seconds leg A and leg B are held for before the bridged call starts, as each hold
    counts them: leg A's time already up (`leg_a_up`), and with a destination the longest it
    may ring (`ring_seconds`: leg B's too in a simultaneous call, where either may wait for the
    other). A price quote before a call counts them as the call's first hold does."""
    if not with_destination:
        return leg_a_up, 0
    head_b = ring_seconds if mode == "simultaneous" else MARGIN_SECONDS
    return leg_a_up + ring_seconds, head_b


class Allowance:
    """The money side of one flow: its current authorisation and what the switch enforces."""

    def __init__(self, flow: CallFlow) -> None:
        self.flow = flow
        self.authorisation: billing.Authorisation | None = None
        self.leg_a_scheduled = False  # a sched_hangup (cap or PIN deadline) is set on leg A

    # -- holds ------------------------------------------------------------------------------

    def authorise(self, destination: str | None) -> billing.Authorisation:
        """Hold money for leg A (`destination` None) or for both legs, before originating.

        Leg A's time already up is counted, and, with a destination, the longest the
        destination may ring (leg B's too in a simultaneous call: either may wait for the
        other). Allowed: the authorisation replaces the last, leg A is rated (its CDR row
        gets the rate) and, once up, capped anew. Refused: nothing changes (the last hold and
        cap stay); the caller decides what a refusal means.
        """
        flow = self.flow
        leg_a = flow.legs.get("a")
        head_a, head_b = head_starts(
            flow.plan.mode,
            flow.settings.callback.originate_timeout_seconds,
            self.seconds_counted(leg_a) if leg_a is not None and leg_a.answered else 0,
            with_destination=destination is not None,
        )
        auth = self.hold(destination, head_a, head_b)
        if auth.allowed and leg_a is not None and leg_a.answered:
            self.cap_leg_a()
        return auth

    def duration_at_answer(self, leg_a: LegState, leg_b: LegState) -> int:
        """Both legs are up: the bridged call's maximum duration, from the seconds each has
        really been up, held anew. If billing refuses now (a change meanwhile) the duration
        of the hold already in place stands: it was computed for the longest ring."""
        held = self.authorisation
        auth = self.hold(held.destination, self.seconds_counted(leg_a), self.seconds_counted(leg_b))
        if not auth.allowed:
            log.warning(
                "request %s: at the answer %s (%s); keeping the hold placed before the call",
                self.flow.plan.request_id,
                auth.refusal,
                auth.detail,
            )
            return held.max_duration
        return auth.max_duration

    def hold(self, destination: str | None, head_a: int, head_b: int) -> billing.Authorisation:
        """`billing.authorise` for the flow's numbers, leg A rated in the same commit."""
        flow = self.flow
        leg_a, leg_b = flow.legs.get("a"), flow.legs.get("b")
        opened = self.authorisation
        # A leg, once rated, keeps the rate it was opened with: the hold is computed at it.
        rate_a = opened.rate_a if opened is not None and leg_a is not None and leg_a.rated else None
        rate_b = opened.rate_b if opened is not None and leg_b is not None and leg_b.rated else None
        settings = flow.settings

        def authorise_and_rate_leg_a() -> billing.Authorisation:
            with database_proxy.atomic():  # one commit: the hold and leg A's rate together
                auth = billing.authorise(
                    flow.account_id,
                    flow.plan.request_id,
                    flow.plan.source,
                    destination,
                    settings.billing,
                    leg_a_head_start=head_a,
                    leg_a_rate=rate_a,
                    leg_b_head_start=head_b,
                    leg_b_rate=rate_b,
                    max_seconds=settings.billing.max_call_seconds,
                    default_call_limit=settings.callback.max_concurrent_calls,
                )
                if auth.allowed and leg_a is not None and not leg_a.rated:
                    billing.open_leg(auth, "a", leg_a.uuid, leg_a.node)
                return auth

        auth = flow.db.run(authorise_and_rate_leg_a)
        if auth.allowed:
            self.authorisation = auth
            if leg_a is not None:
                leg_a.rated = True
        else:
            log.info("request %s: refused %s (%s)", flow.plan.request_id, auth.refusal, auth.detail)
        return auth

    def seconds_counted(self, leg: LegState) -> int:
        """The seconds a leg up now may be billed for before a command sent now takes effect."""
        return self.flow.seconds_up(leg) + MARGIN_SECONDS

    # -- what the switch enforces -------------------------------------------------------------

    def pin_deadline(self) -> None:
        """Leg A is up and nobody pays for it yet: the switch hangs it up unless the PIN comes
        within `callback.pin_deadline_seconds`."""
        seconds = self.flow.settings.callback.pin_deadline_seconds
        self.schedule([commands.sched_hangup(seconds, self.flow.legs["a"].uuid, CAP_CAUSE)])

    def cap_leg_a(self) -> None:
        """Leg A is up: the switch hangs it up when the hold's seconds for leg A alone are used
        (only the PIN deadline, if any, is lifted when leg A is not charged)."""
        auth, leg_a = self.authorisation, self.flow.legs["a"]
        sent = [commands.sched_del(leg_a.uuid)] if self.leg_a_scheduled else []
        if auth is not None and auth.leg_a_seconds is not None:
            left = max(auth.leg_a_seconds - self.seconds_counted(leg_a), 1)
            sent.append(commands.sched_hangup(left, leg_a.uuid, CAP_CAUSE))
        self.schedule(sent)

    def bridge_commands(self, leg_a: LegState, max_duration: int) -> list[str]:
        """What follows `uuid_bridge`: leg A's cap lifted, the call's hangup and warning set."""
        sent = [commands.sched_del(leg_a.uuid)] if self.leg_a_scheduled else []
        if max_duration:
            sent.append(commands.sched_hangup(max_duration, leg_a.uuid, CAP_CAUSE))
            warn_at = billing.warning_offset(max_duration, self.flow.settings.billing)
            if warn_at:
                sound = self.flow.settings.ivr.low_balance_warning
                sent.append(commands.sched_broadcast(warn_at, leg_a.uuid, sound))
        self.leg_a_scheduled = bool(max_duration)
        return sent

    def schedule(self, sent: list[str]) -> None:
        if not sent:
            return
        replies = self.flow.api_all(sent)
        self.leg_a_scheduled = any(c.startswith("sched_hangup") for c in sent) or (
            self.leg_a_scheduled and not sent[0].startswith("sched_del")
        )
        failed = [r.strip() for r in replies if not r.startswith("+OK")]
        if failed:
            log.warning(
                "request %s: scheduling on leg A answered %s",
                self.flow.plan.request_id,
                failed,
            )
