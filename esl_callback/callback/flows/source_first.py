"""Source first (web, SMS, CLI): call the source, then the known destination, and bridge."""

from __future__ import annotations

from esl_callback.callback import causes
from esl_callback.callback.flow import FlowEnded
from esl_callback.callback.flows.caller_first import CallerFirstFlow
from esl_callback.callback.requests import State


class SourceFirstFlow(CallerFirstFlow):
    """Leg A answered: call the known destination and bridge, or tell A why not."""

    def after_answer(self) -> None:
        self.run_source_first()

    def run_source_first(self) -> None:
        """Leg A answered: call the known destination and bridge, or tell A why not."""
        destination = self.plan.destination or ""
        self.authorise(destination)
        cause = self.connect_destination(destination)
        if cause is not None:
            ivr = self.ivr()
            self.guard(ivr.play, self.prompt_for(cause))
            self.hang_up_caller(ivr, "NORMAL_CLEARING")
            raise FlowEnded(State.FAILED, cause, f"destination: {causes.in_words(cause)}")
        self.wait_until_ended()
