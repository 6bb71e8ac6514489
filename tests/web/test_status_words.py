"""The status of a call in a customer's words (`callback.headline`), from the snapshot: what the
portal, the desktop client and the CLI show."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from esl_callback.callback import billing, requests, status
from esl_callback.callback.requests import State
from esl_callback.db import Database, utcnow
from esl_callback.models import Account, Leg, PhoneBookEntry

T0 = utcnow().replace(microsecond=0) - timedelta(minutes=5)
YOU, MARY = "4930111111", "4940222222"


@pytest.fixture
def account(db: Database) -> Account:
    created = Account.create(name="alice")
    billing.add_payment(created, "5", "opening")
    return Account.get_by_id(created.id)


def new_request(account: Account, mode: str = "source_first", state: str | None = None):
    request = requests.create(
        trigger="web", method="web", account=account, mode=mode, source=YOU, destination=MARY
    )
    if state:
        request.state = state
        request.save()
    return request


def leg(request_id: int, role: str, **fields) -> Leg:
    return Leg.create(
        request=request_id,
        leg=role,
        uuid=f"{request_id}-{role}-{Leg.select().count()}",
        number=YOU if role == "a" else MARY,
        created_at=T0,
        **fields,
    )


def words(request_id: int) -> tuple[str, str]:
    snap = status.snapshot(request_id)
    return snap["headline"], snap["outcome"]


def test_a_source_first_call_says_what_happens_to_you_then_to_the_other_party(
    account: Account,
) -> None:
    request = new_request(account)
    assert words(request.id) == ("Getting ready to call you", "live")
    request.state = State.CALLING_SOURCE
    request.save()
    a = leg(request.id, "a", state="dialing")
    assert words(request.id)[0] == "We're calling you"
    Leg.update(state="ringing").where(Leg.id == a.id).execute()
    assert words(request.id)[0] == "Your phone is ringing"
    Leg.update(state="answered", answered_at=T0).where(Leg.id == a.id).execute()
    request.state = State.CALLING_DESTINATION
    request.save()
    b = leg(request.id, "b", state="dialing")
    assert words(request.id)[0] == "Calling +49 40 222222"
    PhoneBookEntry.create(account=account, name="Mary", number=MARY)
    assert words(request.id)[0] == "Calling Mary"
    Leg.update(state="ringing").where(Leg.id == b.id).execute()
    assert words(request.id)[0] == "Mary's phone is ringing"


def test_connected_only_once_both_answered_with_the_time_since(account: Account) -> None:
    request = new_request(account, state=State.CALLING_DESTINATION)
    leg(request.id, "a", state="answered", answered_at=T0)
    leg(request.id, "b", state="ringing")
    snap = status.snapshot(request.id)
    assert snap["connected_since"] is None and "onnected" not in snap["headline"]
    Leg.update(state="answered", answered_at=T0 + timedelta(seconds=10)).where(
        Leg.leg == "b"
    ).execute()
    request.state = State.BRIDGED
    request.save()
    snap = status.snapshot(request.id)
    assert snap["headline"] == "Connected"
    assert snap["connected_since"] == status.iso(T0 + timedelta(seconds=10))


def test_both_at_once_never_says_calling_the_source_while_both_ring(account: Account) -> None:
    request = new_request(account, mode="simultaneous", state=State.CALLING_SOURCE)
    leg(request.id, "a", state="ringing")
    leg(request.id, "b", state="ringing")
    PhoneBookEntry.create(account=account, name="Mary", number=MARY)
    snap = status.snapshot(request.id)
    assert snap["headline"] == "Your phone and Mary are ringing"
    assert "source" not in snap["headline"]
    Leg.update(state="answered", answered_at=T0).where(Leg.leg == "b").execute()
    assert words(request.id)[0] == "Mary answered: waiting for you to answer"


@pytest.mark.parametrize(
    ("cause", "headline", "outcome"),
    [
        ("USER_BUSY", "Mary's line was busy", "busy"),
        ("NO_ANSWER", "Mary didn't answer", "no_answer"),
        ("UNALLOCATED_NUMBER", "We couldn't reach Mary (number does not exist)", "failed"),
    ],
)
def test_a_destination_that_did_not_answer_is_said_by_name(
    account: Account, cause: str, headline: str, outcome: str
) -> None:
    PhoneBookEntry.create(account=account, name="Mary", number=MARY)
    request = new_request(account, state=State.FAILED)
    leg(request.id, "a", state="hung_up", answered_at=T0, billsec=5, billed=True, cost=0)
    leg(request.id, "b", state="hung_up", hangup_cause=cause, billsec=0, billed=True, cost=0)
    assert words(request.id) == (headline, outcome)


def test_a_busy_number_not_in_the_phone_book_is_said_as_a_number(account: Account) -> None:
    request = new_request(account, state=State.FAILED)
    leg(request.id, "b", state="hung_up", hangup_cause="USER_BUSY", billed=True, cost=0)
    assert words(request.id) == ("The line of +49 40 222222 was busy", "busy")


def test_a_leg_never_answered_is_not_hung_up_but_cancelled_or_stopped(account: Account) -> None:
    cancelled = new_request(account, mode="simultaneous", state=State.CANCELLED)
    cancelled.failure_cause = "USER_CANCELLED"
    cancelled.save()
    leg(cancelled.id, "a", state="hung_up", hangup_cause="NORMAL_CLEARING", hangup_by="service")
    leg(cancelled.id, "b", state="hung_up", hangup_cause="ORIGINATOR_CANCEL", billed=True)
    snap = status.snapshot(cancelled.id)
    assert [(x["status"], x["status_words"]) for x in snap["legs"]] == [
        ("cancelled", "cancelled"),
        ("cancelled", "cancelled"),
    ]
    assert (snap["headline"], snap["outcome"]) == ("You cancelled the call", "cancelled")

    stopped = new_request(account, mode="simultaneous", state=State.FAILED)
    leg(stopped.id, "a", state="hung_up", hangup_cause="NORMAL_CLEARING", hangup_by="service")
    leg(stopped.id, "b", state="hung_up", hangup_cause="USER_BUSY", billed=True)
    snap = status.snapshot(stopped.id)
    assert [x["status"] for x in snap["legs"]] == ["stopped", "busy"]
    assert "hung up" not in snap["summary"]


def test_a_completed_call_names_who_it_was_with_and_keeps_the_old_fields(
    account: Account,
) -> None:
    request = new_request(account, state=State.COMPLETED)
    for role in ("a", "b"):
        leg(
            request.id,
            role,
            state="hung_up",
            answered_at=T0,
            billsec=83,
            billed=True,
            cost=Decimal("0.1"),
            hangup_cause="NORMAL_CLEARING",
            hangup_by="recv_bye",
        )
    snap = status.snapshot(request.id)
    assert (snap["headline"], snap["outcome"], snap["outcome_words"]) == (
        "Your call with +49 40 222222 ended",
        "connected",
        "Connected",
    )
    assert snap["duration_seconds"] == 83 and snap["state_words"] == "completed"
    assert snap["destination_display"] == "+49 40 222222"


def test_a_number_check_is_said_as_a_number_check(account: Account) -> None:
    check = requests.create(
        trigger="web", method="web", account=account, mode="verify", source=MARY
    )
    leg(check.id, "a", state="ringing")
    assert words(check.id) == ("+49 40 222222 is ringing: answer and key the code", "live")
    check.state = State.FAILED
    check.failure_cause = "WRONG_CODE"
    check.save()
    Leg.update(state="hung_up", answered_at=T0, billsec=9, billed=True).execute()
    assert words(check.id) == (
        "+49 40 222222 was not checked: the code keyed was wrong",
        "not_checked",
    )
