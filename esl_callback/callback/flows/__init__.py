"""The ways of calling, one module each; `flow_class` picks the one a request's mode names."""

from __future__ import annotations

from esl_callback.callback.flow import CallFlow
from esl_callback.callback.flows.simultaneous import SimultaneousFlow
from esl_callback.callback.flows.source_first import SourceFirstFlow
from esl_callback.callback.flows.two_stage import TwoStageFlow
from esl_callback.callback.flows.verification import VerificationFlow

FLOWS: dict[str, type[CallFlow]] = {
    "two_stage": TwoStageFlow,
    "source_first": SourceFirstFlow,
    "simultaneous": SimultaneousFlow,
    "verify": VerificationFlow,
}


def flow_class(mode: str) -> type[CallFlow]:
    """The flow of a request's mode (CallbackRequest.MODES)."""
    return FLOWS[mode]
