"""What the caller hears and keys on leg A: prompts, digit collection, announcements.

`Ivr` wraps a controlled channel (anything with `execute(app, arg, timeout)` returning the
CHANNEL_EXECUTE_COMPLETE event, as `switch.outbound.OutboundChannel` does) and speaks in prompts
from the `ivr` configuration section; every argument is built by `switch.commands`. The dialogs
(PIN, destination) live in `callback.dialer`, which decides what each answer means.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Protocol

from esl_callback.switch import commands

log = logging.getLogger(__name__)

# Variable names `play_and_get_digits` stores the digits in (visible in fs_cli as such).
PIN_VARIABLE = "callback_pin"
DESTINATION_VARIABLE = "callback_destination"
CODE_VARIABLE = "callback_verification_code"


class Channel(Protocol):
    """The part of a controlled channel the IVR uses."""

    uuid: str

    def execute(self, app: str, arg: str = "", timeout: float | None = None) -> object: ...


class IvrPrompts(Protocol):
    """Sound files (FreeSWITCH names) and digit timing of the `ivr` configuration section."""

    language: str
    terminator: str
    first_digit_timeout_ms: int
    inter_digit_timeout_ms: int
    invalid_entry: str


class Ivr:
    """Prompts and digit collection on one leg."""

    def __init__(self, channel: Channel, prompts: IvrPrompts, timeout: float) -> None:
        self.channel = channel
        self.prompts = prompts
        self.timeout = timeout  # the longest we wait for any one application to complete

    def play(self, sound: str) -> None:
        """Play a prompt to its end (or until the caller hangs up)."""
        self.channel.execute(*commands.playback(sound), timeout=self.timeout)

    def collect(
        self, prompt: str, variable: str, *, min_digits: int, max_digits: int, tries: int = 1
    ) -> str | None:
        """Play `prompt` and collect DTMF up to the terminator; None when nothing valid came."""
        event = self.channel.execute(
            *commands.play_and_get_digits(
                min_digits=min_digits,
                max_digits=max_digits,
                tries=tries,
                timeout_ms=self.prompts.first_digit_timeout_ms,
                terminators=self.prompts.terminator,
                prompt=prompt,
                invalid_prompt=self.prompts.invalid_entry,
                variable=variable,
                regex="\\d+",
                digit_timeout_ms=self.prompts.inter_digit_timeout_ms,
            ),
            timeout=self.timeout,
        )
        digits = event.get(f"variable_{variable}") if event is not None else None
        log.debug("channel %s: %s collected %r", self.channel.uuid, variable, digits)
        return digits or None

    def say_amount(self, amount: Decimal) -> None:
        """Say an amount of money (e.g. the balance) in the configured language."""
        value = f"{amount.quantize(Decimal('0.01')):f}"
        self.channel.execute(
            *commands.say_number(self.prompts.language, value, "CURRENCY"), timeout=self.timeout
        )

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """Hang up the leg (the bridged partner, if any, follows)."""
        self.channel.execute(*commands.hangup(cause), timeout=self.timeout)
