"""Simultaneous (web): call both numbers at once, bridge when both have answered."""

from __future__ import annotations

from esl_callback.callback import causes
from esl_callback.callback.flow import CallFlow, FlowEnded, Inbox
from esl_callback.callback.requests import State
from esl_callback.switch import commands


class SimultaneousFlow(CallFlow):
    """Both legs parked as they answer; the first to answer hears ringback."""

    def steps(self) -> None:
        self.run_simultaneous()

    def run_simultaneous(self) -> None:
        """Call both numbers at once; bridge when both have answered."""
        self.authorise(self.plan.destination)
        leg_a = self.originate(
            "a",
            self.plan.source,
            commands.park_application(),
            State.CALLING_SOURCE,
            destination=self.plan.destination,
        )
        leg_b = self.originate("b", self.plan.destination or "", commands.park_application())

        def both_answered_or_one_failed(_: Inbox) -> bool:
            for first, second in ((leg_a, leg_b), (leg_b, leg_a)):
                if first.answered and not second.answered and not first.hears_ringback:
                    first.hears_ringback = True  # the first to answer hears ringback
                    self.api(commands.uuid_broadcast(first.uuid, self.settings.ivr.ringback))
            return (leg_a.answered and leg_b.answered) or leg_a.ended or leg_b.ended

        self.wait(both_answered_or_one_failed, self.ring_timeout())
        if not (leg_a.answered and leg_b.answered) or leg_a.ended or leg_b.ended:
            # The leg that ended (busy, rejected, hung up); on a timeout, one that never answered.
            ended = [leg for leg in (leg_a, leg_b) if leg.ended]
            failed = ended[0] if ended else leg_a if not leg_a.answered else leg_b
            cause = failed.cause or "NO_ANSWER"
            who = "source" if failed is leg_a else "destination"
            raise FlowEnded(State.FAILED, cause, f"{who}: {causes.in_words(cause)}")
        for leg in (leg_a, leg_b):
            if leg.hears_ringback:
                self.api(commands.uuid_break(leg.uuid))
        self.bridge(leg_a, leg_b)
        self.wait_until_ended()

    # -- legs -----------------------------------------------------------------------------
