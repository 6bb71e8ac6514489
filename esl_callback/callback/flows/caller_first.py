"""Leg A first: call the caller back, and once their phone is ours, connect the destination.

What the two-stage (IVR), source-first and verification flows share: leg A is originated with
`&socket(...)` (its IVR session reaches our outbound server when it answers), and the
destination is called while leg A hears ringback, then bridged when it answers.
"""

from __future__ import annotations

import logging

from esl_callback.callback import causes
from esl_callback.callback.flow import CallFlow, FlowEnded, LegState, uepoch
from esl_callback.callback.requests import State
from esl_callback.switch import commands
from esl_callback.switch.connection import CommandTimeout
from esl_callback.switch.outbound import Execution

log = logging.getLogger(__name__)

# How long a ringback stopped with uuid_break has to report its end, and how many breaks are
# sent before it is taken as dropped unplayed (see CallerFirstFlow.stop_ringback).
BREAK_SETTLE_SECONDS = 1.0
RINGBACK_BREAKS = 3


class CallerFirstFlow(CallFlow):
    """Leg A with an IVR session of ours, then (in a subclass's `after_answer`) the rest."""

    def steps(self) -> None:
        self.call_source()
        self.after_answer()

    def after_answer(self) -> None:
        """What to do once leg A answered and its session is ours."""
        raise NotImplementedError

    def call_source(self) -> None:
        """Originate leg A (with retries) until it answers and its session connects."""
        cfg = self.settings.callback
        attempts = cfg.leg_a_retries + 1
        for attempt in range(1, attempts + 1):
            if self.account_id is not None:
                # Each attempt holds money anew: the hold went with the last attempt's CDR.
                self.authorise(self.plan.destination)
            leg = self.originate(
                "a",
                self.plan.source,
                self.leg_a_application(),
                State.CALLING_SOURCE,
                attempts=attempt,
            )
            cause = self.wait_for_session(leg)
            if cause is None:
                return
            if attempt == attempts or not causes.worth_retrying(cause):
                detail = f"leg A to {self.plan.source}: {causes.in_words(cause)}"
                raise FlowEnded(State.FAILED, cause, detail)
            log.info(
                "request %s: leg A %s; retry %s of %s in %s s",
                self.plan.request_id,
                cause,
                attempt,
                attempts - 1,
                cfg.retry_delay_seconds,
            )
            self.advance(State.QUEUED)
            self.wait(lambda _: False, cfg.retry_delay_seconds)

    def leg_a_application(self) -> str:
        return commands.socket_application(self.settings.outbound.socket_address)

    def wait_for_session(self, leg: LegState) -> str | None:
        """None once leg A answered and its session is ours; else the cause it ended with."""
        message = self.wait(
            lambda m: (m is not None and m.kind == "session") or leg.ended, self.ring_timeout()
        )
        if message is not None and message.kind == "session":
            # FreeSWITCH runs the `socket` application once the leg has answered; its
            # CHANNEL_ANSWER may still be queued behind the session, so note it now.
            self.session = message.session
            self.note_answer(leg, uepoch(message.event.get("Caller-Channel-Answered-Time")))
            if self.account_id is None:
                self.money.pin_deadline()  # nobody pays for this leg until the PIN
            else:
                self.money.cap_leg_a()
            return None
        self.give_up(leg, "NO_ANSWER")
        return leg.cause or "NO_ANSWER"

    def connect_destination(self, destination: str) -> str | None:
        """Originate leg B with ringback on A; bridge on answer. None when bridged, else cause."""
        leg_a = self.legs["a"]
        ringback = self.guard(
            self.session.execute_async, *commands.playback(self.settings.ivr.ringback)
        )
        leg_b = self.originate(
            "b",
            destination,
            commands.park_application(),
            State.CALLING_DESTINATION,
            destination=destination,
        )
        # B's answer is written with the move to BRIDGED, any other outcome before going on.
        self.wait(
            lambda _: leg_b.answered or leg_b.ended or leg_a.ended, self.ring_timeout(), save=False
        )
        if not leg_b.answered or leg_a.ended:
            self.save()
        if leg_a.ended:
            self.give_up(leg_b, "ORIGINATOR_CANCEL")
            raise self.caller_gone("while the destination rang")
        if not leg_b.answered:
            self.give_up(leg_b, "NO_ANSWER")
            self.stop_ringback(ringback)
            if causes.declined(leg_b.cause, leg_b.answered, leg_b.hung_up_by_us):
                return "USER_BUSY"
            return leg_b.cause or "NO_ANSWER"
        self.bridge(leg_a, leg_b)
        return None

    def stop_ringback(self, ringback: Execution) -> None:
        """Stop the endless ringback on A before leg A hears anything else.

        `uuid_break <A> all` stops the playback, or drops it if it is still queued: a
        `sendmsg` waits for the channel's next media frame (20 ms), so a destination that fails
        at once can be reported before the ringback ever started, and a playback dropped so
        never completes. So its completion is awaited only BREAK_SETTLE_SECONDS after each
        break, BREAKS times (a playback that slipped in between is stopped by the next), never
        for the length of an endless tone.
        """
        for _ in range(RINGBACK_BREAKS):
            self.api(commands.uuid_break(self.legs["a"].uuid))
            try:
                self.guard(ringback.wait, BREAK_SETTLE_SECONDS)
                return
            except CommandTimeout:
                continue
        log.info(
            "request %s: the ringback on leg A never played (dropped before it started)",
            self.plan.request_id,
        )
