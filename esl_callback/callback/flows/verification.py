"""Number verification: call the number and ask for the code the portal shows."""

from __future__ import annotations

from esl_callback.callback.flow import FlowEnded
from esl_callback.callback.flows.caller_first import CallerFirstFlow
from esl_callback.callback.ivr import CODE_VARIABLE
from esl_callback.callback.requests import State


class VerificationFlow(CallerFirstFlow):
    """Complete only when the digits keyed match the plan's code."""

    def after_answer(self) -> None:
        self.run_verification(self.plan.code or "")

    def run_verification(self, code: str) -> None:
        """Ask the callee for the code shown on screen; complete only when it matches."""
        self.advance(State.IN_IVR)
        ivr = self.ivr()
        prompts = self.settings.ivr
        keyed = self.guard(
            ivr.collect,
            prompts.enter_code,
            CODE_VARIABLE,
            min_digits=len(code),
            max_digits=len(code),
            tries=3,
            secret=True,
        )
        if keyed != code:
            self.guard(ivr.play, prompts.invalid_entry)
            self.hang_up_caller(ivr, "NORMAL_CLEARING")
            raise FlowEnded(State.FAILED, "WRONG_CODE", "the code keyed did not match")
        self.guard(ivr.play, prompts.goodbye)
        self.hang_up_caller(ivr, "NORMAL_CLEARING")
        self.wait_until_ended()
