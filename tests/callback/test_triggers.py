"""Trigger recognition: PIN, caller ID (ANI) and DID, and every way a trigger is refused."""

import pytest

from esl_callback import accounts
from esl_callback.callback.triggers import TriggerRefused, identify
from esl_callback.db import Database
from esl_callback.numbers import DEFAULT_RULES


@pytest.fixture
def numbers_set_up(db: Database) -> None:
    alice = accounts.create_account("alice", default_callback_number="4930111")
    accounts.add_caller_id(alice, "491701111")
    accounts.add_did("4930999", alice)
    accounts.add_did("4930998", alice, callback_number="4930222")
    bob = accounts.create_account(
        "bob", default_callback_number="4930333", callback_to_default=True
    )
    accounts.add_caller_id(bob, "491702222")
    accounts.add_access_number("4930100", "pin")
    accounts.add_access_number("4930200", "ani")


@pytest.mark.usefixtures("numbers_set_up")
class TestRecognisedTriggers:
    def test_pin_access_calls_back_the_caller_and_leaves_the_account_to_the_pin(self) -> None:
        trigger = identify("4930100", "+491709999", DEFAULT_RULES)
        assert (trigger.method, trigger.account, trigger.callback_number) == (
            "pin",
            None,
            "491709999",
        )

    def test_ani_access_calls_back_the_caller_id_of_the_account(self) -> None:
        trigger = identify("4930200", "491701111", DEFAULT_RULES)
        assert (trigger.method, trigger.account.name, trigger.callback_number) == (
            "ani",
            "alice",
            "491701111",
        )

    def test_ani_access_calls_the_default_number_when_the_account_says_so(self) -> None:
        trigger = identify("4930200", "491702222", DEFAULT_RULES)
        assert (trigger.account.name, trigger.callback_number) == ("bob", "4930333")

    def test_did_calls_back_the_accounts_default_number(self) -> None:
        trigger = identify("4930999", "anonymous", DEFAULT_RULES)
        assert (trigger.method, trigger.account.name, trigger.callback_number) == (
            "did",
            "alice",
            "4930111",
        )

    def test_did_with_its_own_predefined_number(self) -> None:
        assert identify("4930998", "491700000", DEFAULT_RULES).callback_number == "4930222"


@pytest.mark.usefixtures("numbers_set_up")
@pytest.mark.parametrize(
    ("called", "caller", "reason", "method"),
    [
        ("4930555", "491701111", "unknown_number", "unknown"),
        ("4930100&park()", "491701111", "unknown_number", "unknown"),
        ("4930200", "491709999", "unknown_caller_id", "ani"),
        ("4930200", "anonymous", "withheld_caller_id", "ani"),
        ("4930100", "", "withheld_caller_id", "pin"),
        ("4930100", "Bob%0AUnique-ID: x", "invalid_caller_id", "pin"),
    ],
)
def test_refused_triggers_say_why_and_by_which_access_path(
    called: str, caller: str, reason: str, method: str
) -> None:
    with pytest.raises(TriggerRefused) as refused:
        identify(called, caller, DEFAULT_RULES)
    assert (refused.value.reason, refused.value.method) == (reason, method)


@pytest.mark.usefixtures("numbers_set_up")
def test_a_disabled_account_is_refused_for_did_and_ani() -> None:
    accounts.update_account(accounts.find_account("alice"), status="disabled")
    for called, caller in (("4930999", "1"), ("4930200", "491701111")):
        with pytest.raises(TriggerRefused) as refused:
            identify(called, caller, DEFAULT_RULES)
        assert refused.value.reason == "account_disabled"
        assert refused.value.account.name == "alice"
