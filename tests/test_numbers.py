"""The number validator: only ASCII digit strings of a sane length ever leave it."""

from dataclasses import dataclass

import pytest

from esl_callback.numbers import InvalidNumber, digits_only, normalise


@dataclass(frozen=True)
class GermanRules:
    country_code: str = "49"
    national_prefix: str = "0"
    international_prefix: str = "00"
    min_length: int = 6
    max_length: int = 15


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+4930123456", "4930123456"),
        ("004930123456", "4930123456"),
        ("030123456", "4930123456"),
        ("4930123456", "4930123456"),
        ("+1 (212) 555-0100", "12125550100"),
    ],
)
def test_normalise_turns_every_written_form_into_e164_digits(raw: str, expected: str) -> None:
    assert normalise(raw, GermanRules(), allow_formatting=True) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "123&park()",
        "1}sofia/x",
        "1,user/2",
        "1|x",
        "1 2",
        "12\nexecute-app-name: hangup",
        "١٢٣٤٥٦٧",  # Arabic-Indic digits pass str.isdigit() but are not ASCII digits
        "1" * 200,
        "",
        "+",
        "12345678901234567",
    ],
)
def test_injection_and_garbage_never_pass_as_a_number(raw: str) -> None:
    with pytest.raises(InvalidNumber):
        normalise(raw, GermanRules())


def test_formatting_characters_are_refused_unless_a_person_typed_the_number() -> None:
    with pytest.raises(InvalidNumber, match="type digits 0-9 only, with no spaces"):
        digits_only("030 123")
    assert digits_only("030 123", allow_formatting=True) == "030123"


def test_errors_are_sentences_saying_what_is_wrong_and_what_to_type() -> None:
    with pytest.raises(
        InvalidNumber, match=r"^The destination has '&' in it, which is not a digit"
    ):
        normalise("49&1", what="destination")
    with pytest.raises(InvalidNumber, match=r"^That number has letters in it: type digits only"):
        normalise("030 CALL ME", allow_formatting=True)
    with pytest.raises(InvalidNumber, match=r"^That number has a digit written in another script"):
        normalise("٤٩٣٠١٢٣")
    with pytest.raises(InvalidNumber, match=r"^That number is too short: 12345 has 5 digits"):
        normalise("12345", GermanRules())


def test_a_number_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidNumber, match="must be text made of digits, not int"):
        digits_only(4930123)  # type: ignore[arg-type]
