"""A FreeSWITCH stand-in that speaks the real Event Socket protocol, with virtual phones."""

from esl_callback.simulator.config import SimConfig, load
from esl_callback.simulator.core import Simulator

__all__ = ["SimConfig", "Simulator", "load"]
