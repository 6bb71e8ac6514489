"""How the IVR says an amount of money (the balance): numbers and the currency's own sounds.

mod_say's CURRENCY type says "dollars" and "cents" whatever the currency (mod_say_en.c,
en_say_money), and the balance may be negative after a correction.
"""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

import pytest

from esl_callback.callback.ivr import Ivr
from esl_callback.config import CurrencySoundSettings, Settings


class RecordingChannel:
    """A leg that records the applications run on it."""

    uuid = "leg-a"

    def __init__(self) -> None:
        self.executed: list[tuple[str, str]] = []

    def execute(self, app: str, arg: str = "", timeout: float | None = None) -> object:
        self.executed.append((app, arg))
        return None


def said(amount: str, currency: str | None = None, **ivr: object) -> list[tuple[str, str]]:
    prompts = dataclasses.replace(Settings.default().ivr, **ivr)
    channel = RecordingChannel()
    Ivr(channel, prompts, timeout=5).say_amount(Decimal(amount), currency)
    return channel.executed


def test_a_euro_balance_is_said_as_numbers_and_euro_sounds_not_as_dollars() -> None:
    assert said("12.30") == [
        ("say", "en NUMBER pronounced 12"),
        ("playback", "currency/euro.wav"),
        ("say", "en NUMBER pronounced 30"),
        ("playback", "currency/cents.wav"),
    ]


def test_a_negative_balance_is_announced_as_minus_the_amount() -> None:
    assert said("-2.05") == [
        ("playback", "currency/negative.wav"),
        ("say", "en NUMBER pronounced 2"),
        ("playback", "currency/euro.wav"),
        ("say", "en NUMBER pronounced 5"),
        ("playback", "currency/cents.wav"),
    ]
    assert said("-0.40")[:3] == [
        ("playback", "currency/negative.wav"),
        ("say", "en NUMBER pronounced 40"),
        ("playback", "currency/cents.wav"),
    ]


def test_the_accounts_currency_picks_its_sounds_and_one_is_singular() -> None:
    assert said("1.01", "USD") == [
        ("say", "en NUMBER pronounced 1"),
        ("playback", "currency/dollar.wav"),
        ("say", "en NUMBER pronounced 1"),
        ("playback", "currency/cent.wav"),
    ]


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0", [("say", "en NUMBER pronounced 0"), ("playback", "currency/euro.wav")]),
        ("7.00", [("say", "en NUMBER pronounced 7"), ("playback", "currency/euro.wav")]),
        ("0.3", [("say", "en NUMBER pronounced 30"), ("playback", "currency/cents.wav")]),
    ],
)
def test_zero_cents_are_not_said_and_no_units_are_said_before_cents_alone(
    amount: str, expected: list[tuple[str, str]]
) -> None:
    assert said(amount) == expected


def test_configured_sounds_and_language_are_used() -> None:
    pounds = CurrencySoundSettings(currency="GBP", units="my/pounds.wav", cents="my/pence.wav")
    assert said("3.50", "GBP", language="de", currency_sounds=(pounds,)) == [
        ("say", "de NUMBER pronounced 3"),
        ("playback", "my/pounds.wav"),
        ("say", "de NUMBER pronounced 50"),
        ("playback", "my/pence.wav"),
    ]


def test_a_currency_without_sounds_is_said_as_bare_numbers_and_logged(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="esl_callback.callback.ivr")

    assert said("4.20", "CHF") == [
        ("say", "en NUMBER pronounced 4"),
        ("say", "en NUMBER pronounced 20"),
    ]
    assert "no ivr.currency_sounds entry for CHF" in caplog.text
