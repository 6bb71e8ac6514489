"""What the caller hears and keys on leg A: prompts, digit collection, announcements.

`Ivr` wraps a controlled channel (anything with `execute(app, arg, timeout)` returning the
CHANNEL_EXECUTE_COMPLETE event, as `switch.outbound.OutboundChannel` does) and speaks in prompts
from the `ivr` configuration section; every argument is built by `switch.commands`. The dialogs
(PIN, destination) live in `callback.flows`, which decide what each answer means.

Callers type ahead: FreeSWITCH drops the digits keyed while a plain `playback` (or `say`) runs,
even when a `play_and_get_digits` follows at once. So whatever is said before a question is
played as part of the question's own prompt (`collect` with several sounds: one file_string),
and numbers are said as the sound files mod_say would play (`say_string`, given to Ivr as
`say`), so that the caller can key through all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol

from esl_callback.switch import commands

log = logging.getLogger(__name__)

# Variable names `play_and_get_digits` stores the digits in (visible in fs_cli as such).
PIN_VARIABLE = "callback_pin"
DESTINATION_VARIABLE = "callback_destination"
CODE_VARIABLE = "callback_verification_code"
VOUCHER_VARIABLE = "callback_voucher"
DIGITS = "\\d+"  # what play_and_get_digits accepts by default


class Channel(Protocol):
    """The part of a controlled channel the IVR uses."""

    uuid: str

    def execute(self, app: str, arg: str = "", timeout: float | None = None) -> object: ...


class CurrencySounds(Protocol):
    """What is said after an amount of one currency (an `ivr.currency_sounds` entry)."""

    currency: str
    units: str
    unit: str | None
    cents: str
    cent: str | None


class IvrPrompts(Protocol):
    """Sound files (FreeSWITCH names) and digit timing of the `ivr` configuration section."""

    language: str
    terminator: str
    first_digit_timeout_ms: int
    inter_digit_timeout_ms: int
    invalid_entry: str
    negative: str
    currency_sounds: Sequence[CurrencySounds]


def unit_sound(sounds: CurrencySounds | None, count: int, *, cents: bool) -> str | None:
    """The sound said after `count` whole units (or cents): the singular one after 1."""
    if sounds is None:
        return None
    if cents:
        return (sounds.cent if count == 1 else None) or sounds.cents
    return (sounds.unit if count == 1 else None) or sounds.units


# How a number is said: the sound files for (language, digits), e.g. from `say_string`.
SayNumber = Callable[[str, str], list[str]]


class Ivr:
    """Prompts and digit collection on one leg."""

    def __init__(
        self, channel: Channel, prompts: IvrPrompts, timeout: float, say: SayNumber
    ) -> None:
        self.channel = channel
        self.prompts = prompts
        self.timeout = timeout  # the longest we wait for any one application to complete
        self.say = say

    def play(self, sound: str | Sequence[str]) -> None:
        """Play a prompt (or sounds, one after the other) to its end (or until the caller
        hangs up). Digits keyed meanwhile are lost: only for what no question follows."""
        sounds = [sound] if isinstance(sound, str) else sound
        self.channel.execute(*commands.playback(commands.file_string(sounds)), timeout=self.timeout)

    def collect(
        self,
        prompt: str | Sequence[str],
        variable: str,
        *,
        min_digits: int,
        max_digits: int,
        tries: int = 1,
        secret: bool = False,
        regex: str = DIGITS,
    ) -> str | None:
        """Play `prompt` (sounds played as one, keyed through alike) and collect DTMF up to the
        terminator; None when nothing valid came.

        A `secret` (a PIN, a verification code) is unset from the channel as soon as it is
        read: FreeSWITCH keeps the variable for `uuid_dump`, every later event and the CDR
        modules otherwise. Its digits are never logged.
        """
        event = self.channel.execute(
            *commands.play_and_get_digits(
                min_digits=min_digits,
                max_digits=max_digits,
                tries=tries,
                timeout_ms=self.prompts.first_digit_timeout_ms,
                terminators=self.prompts.terminator,
                prompt=commands.file_string([prompt] if isinstance(prompt, str) else prompt),
                invalid_prompt=self.prompts.invalid_entry,
                variable=variable,
                regex=regex,
                digit_timeout_ms=self.prompts.inter_digit_timeout_ms,
            ),
            timeout=self.timeout,
        )
        digits = event.get(f"variable_{variable}") if event is not None else None
        if secret:
            self.channel.execute(*commands.unset_variable(variable), timeout=self.timeout)
            count = len(digits or "")
            log.debug("channel %s: %s collected (%d digits)", self.channel.uuid, variable, count)
        else:
            log.debug("channel %s: %s collected %r", self.channel.uuid, variable, digits)
        return digits or None

    def amount_sounds(self, amount: Decimal, currency: str | None = None) -> list[str]:
        """What says an amount of money (e.g. the balance, which may be negative) in `currency`.

        "Minus" (`ivr.negative`) when below zero, then the whole units and the cents as numbers,
        each followed by the currency's sound (`ivr.currency_sounds`; the first entry when
        `currency` is None). Not mod_say's CURRENCY type: it says dollars for every currency.
        """
        cents_total = int(amount.quantize(Decimal("0.01")) * 100)
        units, cents = divmod(abs(cents_total), 100)
        sounds = self.currency_sounds(currency)
        said = [self.prompts.negative] if cents_total < 0 else []
        if units or not cents:
            said += self.count_sounds(units, unit_sound(sounds, units, cents=False))
        if cents:
            said += self.count_sounds(cents, unit_sound(sounds, cents, cents=True))
        return said

    def currency_sounds(self, currency: str | None) -> CurrencySounds | None:
        """The sounds of `currency` (None: the first listed); None when it has none."""
        listed = self.prompts.currency_sounds
        if currency is None:
            return listed[0] if listed else None
        found = next((entry for entry in listed if entry.currency == currency), None)
        if found is None:
            log.warning(
                "no ivr.currency_sounds entry for %s: amounts are said without the currency; "
                "add one (currency, units, cents)",
                currency,
            )
        return found

    def count_sounds(self, count: int, sound: str | None) -> list[str]:
        """A whole number said, then `sound` (a currency word) if any."""
        return [*self.say(self.prompts.language, str(count)), *([sound] if sound else [])]

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        """Hang up the leg (the bridged partner, if any, follows)."""
        self.channel.execute(*commands.hangup(cause), timeout=self.timeout)
