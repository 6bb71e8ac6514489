"""How the IVR says an amount of money (the balance): numbers and the currency's own sounds.

mod_say's CURRENCY type says "dollars" and "cents" whatever the currency (mod_say_en.c,
en_say_money), and the balance may be negative after a correction. The amount is a list of
sounds (numbers as the switch's say_string gives them, shown here as ("say", ...)) played
inside the next question's prompt, so that callers can key through it.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

import pytest

from esl_callback.callback.ivr import Ivr
from esl_callback.config import CurrencySoundSettings, Settings


class NoChannel:
    """Saying an amount runs nothing on the leg: it only makes the sounds."""

    uuid = "leg-a"

    def execute(self, app: str, arg: str = "", timeout: float | None = None) -> object:
        raise AssertionError(f"{app} {arg} ran")


def said(amount: str, currency: str | None = None, **ivr: object) -> list[tuple[str, str]]:
    """The sounds, with each number as ("say", "<language> <digits>") and files as
    ("playback", file)."""
    prompts = dataclasses.replace(Settings.default().ivr, **ivr)

    def say(language: str, digits: str) -> list[str]:
        return [f"say:{language} {digits}"]

    sounds = Ivr(NoChannel(), prompts, timeout=5, say=say).amount_sounds(Decimal(amount), currency)
    return [
        ("say", sound[4:]) if sound.startswith("say:") else ("playback", sound) for sound in sounds
    ]


def test_a_euro_balance_is_said_as_numbers_and_euro_sounds_not_as_dollars() -> None:
    assert said("12.30") == [
        ("say", "en 12"),
        ("playback", "currency/euro.wav"),
        ("say", "en 30"),
        ("playback", "currency/cents.wav"),
    ]


def test_a_negative_balance_is_announced_as_minus_the_amount() -> None:
    assert said("-2.05") == [
        ("playback", "currency/negative.wav"),
        ("say", "en 2"),
        ("playback", "currency/euro.wav"),
        ("say", "en 5"),
        ("playback", "currency/cents.wav"),
    ]
    assert said("-0.40")[:3] == [
        ("playback", "currency/negative.wav"),
        ("say", "en 40"),
        ("playback", "currency/cents.wav"),
    ]


def test_the_accounts_currency_picks_its_sounds_and_one_is_singular() -> None:
    assert said("1.01", "USD") == [
        ("say", "en 1"),
        ("playback", "currency/dollar.wav"),
        ("say", "en 1"),
        ("playback", "currency/cent.wav"),
    ]


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0", [("say", "en 0"), ("playback", "currency/euro.wav")]),
        ("7.00", [("say", "en 7"), ("playback", "currency/euro.wav")]),
        ("0.3", [("say", "en 30"), ("playback", "currency/cents.wav")]),
    ],
)
def test_zero_cents_are_not_said_and_no_units_are_said_before_cents_alone(
    amount: str, expected: list[tuple[str, str]]
) -> None:
    assert said(amount) == expected


def test_configured_sounds_and_language_are_used() -> None:
    pounds = CurrencySoundSettings(currency="GBP", units="my/pounds.wav", cents="my/pence.wav")
    assert said("3.50", "GBP", language="de", currency_sounds=(pounds,)) == [
        ("say", "de 3"),
        ("playback", "my/pounds.wav"),
        ("say", "de 50"),
        ("playback", "my/pence.wav"),
    ]


def test_a_currency_without_sounds_is_said_as_bare_numbers_and_logged(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="esl_callback.callback.ivr")

    assert said("4.20", "CHF") == [
        ("say", "en 4"),
        ("say", "en 20"),
    ]
    assert "no ivr.currency_sounds entry for CHF" in caplog.text
