"""The simulator configuration most simulator tests run (shared by conftest and tests)."""

from __future__ import annotations

from typing import Any

from esl_callback.simulator.config import SimConfig, from_mapping


def sim_config(outbound: str | None = None, **switch: Any) -> SimConfig:
    """Trigger numbers 1800555xxxx go to ``outbound`` (an outbound socket server); the phones
    context has a few virtual phones."""
    socket = f"socket {outbound} async full" if outbound else "park"
    return from_mapping(
        {
            "esl": {"listen": "127.0.0.1:0", "password": "ClueCon"},
            "switch": switch,
            "globals": {"hold_music": "local_stream://moh"},
            "sounds": {"files": {"ivr/ivr-welcome.wav": 3.0}},
            "dialplan": {
                "access": [
                    {"name": "trigger", "expression": r"^(1800555\d{4})$", "actions": [socket]}
                ],
                "default": [
                    {
                        "name": "hold_music",
                        "expression": "^9664$",
                        "actions": ["answer", "playback silence_stream://2000", "park"],
                    }
                ],
            },
            "phones": {
                "context": "phones",
                "lines": {
                    "15550001001": {"answer_after": 0.5},  # answers, stays up
                    "15550001002": {
                        "answer_after": 0.5,
                        "keys": [{"after": 1, "digits": "1234#"}],
                    },
                    "15550002001": {"answer_after": 1, "hangup_after": 30},
                    "15550002003": {"no_answer": True},
                    "15550002004": {"busy": True},
                    "15550002005": {"early_media": "tone_stream://%(1000,0,440)"},
                },
            },
        }
    )
