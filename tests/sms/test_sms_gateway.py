"""The gateway API over HTTP: tokens, form posts, replies POSTed back through the gateway, and
call reports from a gateway phone taking the same trigger path as calls to FreeSWITCH.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import gevent
import pytest
from platform_helpers import ANI_ACCESS, PIN_ACCESS
from sms_helpers import CALLER, SMS_NUMBER, TOKEN, ReplyCatcher, TrickleCatcher, post

from esl_callback.models import SmsMessage
from esl_callback.web import sms_api

FRIEND = "15550002001"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no token"),
        ({"X-Gateway-Token": "not-the-token-0123456789"}, "wrong token"),
        ({"Authorization": "Bearer " + TOKEN[:-1]}, "wrong token"),
        (
            {"Authorization": "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()},
            "no token",  # only a Bearer token or X-Gateway-Token is read
        ),
    ],
)
def test_requests_without_a_gateways_token_are_refused_and_logged(
    sms_platform, alice, headers, reason, caplog
) -> None:
    p = sms_platform()

    sms_status, sms_body = post(
        f"{p.base_url}/sms/inbound", json_body={"from": CALLER, "text": "BAL"}, headers=headers
    )
    call_status, _ = post(
        f"{p.base_url}/gateway/call", json_body={"from": CALLER, "to": ANI_ACCESS}, headers=headers
    )

    assert (sms_status, call_status) == (401, 401)
    assert sms_body["error"]["code"] == "unauthorised"
    assert SmsMessage.select().count() == 0 and p.requests() == []
    refusals = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"gateway request to /api/v1/sms/inbound from 127.0.0.1 refused: {reason}" in refusals
    assert f"gateway request to /api/v1/gateway/call from 127.0.0.1 refused: {reason}" in refusals


def test_a_form_post_with_the_bearer_token_works_like_json(sms_platform, alice) -> None:
    p = sms_platform()

    status, body = post(
        f"{p.base_url}/sms/inbound",
        form={"from": CALLER, "to": SMS_NUMBER, "text": "bal", "message_id": "77"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    assert status == 200
    assert body == {
        "action": "balance",
        "reply": "Your balance is 10.00 EUR.",
        "request_id": None,
        "duplicate": False,
    }
    assert p.incoming(CALLER)[0].message_id == "77"


def test_invalid_fields_are_refused_and_nothing_is_stored(sms_platform, alice) -> None:
    p = sms_platform()

    no_sender = p.post_sms("", "BAL")
    not_text = post(
        f"{p.base_url}/sms/inbound",
        json_body={"from": CALLER, "text": ["BAL"]},
        headers={"X-Gateway-Token": TOKEN},
    )
    too_long = p.post_sms(CALLER, "x" * 1601)

    assert [status for status, _ in (no_sender, not_text, too_long)] == [422, 422, 422]
    assert no_sender[1]["error"]["field"] == "from"
    assert SmsMessage.select().count() == 0


def test_replies_are_also_posted_through_the_gateways_reply_url(sms_platform, alice) -> None:
    catcher = ReplyCatcher()
    p = sms_platform(reply_url=catcher.url)

    status, body = p.post_sms(CALLER, "BAL", message_id="m-1")
    again = p.post_sms(CALLER, "BAL", message_id="m-1")  # a retry: answered, not re-sent
    (headers, posted), *_ = catcher.wait(1)
    p.sync()

    assert (status, again[1]["duplicate"]) == (200, True)
    assert posted == {
        "to": CALLER,
        "from": SMS_NUMBER,
        "text": body["reply"],
        "in_reply_to": "m-1",
    }
    assert headers["AUTHORIZATION"] == "Basic " + base64.b64encode(b"gw-user:s3cret!").decode()
    assert headers["PATH"] == "/send?via=test"
    assert len(catcher.received) == 1
    (sent,) = SmsMessage.select().where(SmsMessage.direction == "out")
    assert (sent.destination, sent.body, sent.action) == (CALLER, body["reply"], "sent")


@pytest.fixture
def trickle() -> Iterator[TrickleCatcher]:
    catcher = TrickleCatcher()
    yield catcher
    catcher.close()


def replies_stored(p, count: int, timeout: float = 10) -> list[str]:
    """What was stored of the replies sent, once there are `count`."""

    def stored() -> list[str]:
        query = SmsMessage.select().where(SmsMessage.direction == "out").order_by(SmsMessage.id)
        return [message.action for message in query]

    with gevent.Timeout(timeout, AssertionError("the replies were not stored")):
        while True:
            actions = p.db.run(stored)
            if len(actions) >= count:
                return actions
            gevent.sleep(0.05)


def test_a_gateway_that_answers_a_byte_at_a_time_does_not_hold_the_reply(
    sms_platform, alice, trickle, monkeypatch
) -> None:
    """REPLY_TIMEOUT_SECONDS bounds the whole POST; a timeout per read never expired here."""
    monkeypatch.setattr(sms_api, "REPLY_TIMEOUT_SECONDS", 1)
    p = sms_platform(reply_url=trickle.url)

    status, _ = p.post_sms(CALLER, "BAL", message_id="m-1")

    assert status == 200
    assert replies_stored(p, 1, timeout=5) == ["not_sent: no answer within 1 s"]
    trickle.wait(requests=1, open=0)  # the connection was closed


def test_a_reply_in_flight_when_the_service_stops_is_abandoned_and_stored_as_such(
    sms_platform, alice, trickle
) -> None:
    p = sms_platform(reply_url=trickle.url)
    p.post_sms(CALLER, "BAL", message_id="m-1")
    p.post_sms(CALLER, "BAL", message_id="m-2")
    trickle.wait(requests=2, open=2)

    with gevent.Timeout(2, AssertionError("the portal did not stop in time")):
        p.service.portal.stop(0.2)  # as Service.stop does, after the web server

    assert replies_stored(p, 2) == ["not_sent: service stopped"] * 2
    trickle.wait(requests=2, open=0)


def test_a_call_reported_by_a_gateway_phone_is_a_caller_id_trigger(sms_platform, alice) -> None:
    p = sms_platform(
        {
            CALLER: {"answer_after": 0.5, "keys": [{"after": 1.0, "digits": f"{FRIEND}#"}]},
            FRIEND: {"answer_after": 0.5, "hangup_after": 1},
        }
    )

    status, body = p.report_call(f"+{CALLER}", ANI_ACCESS, call_id="c-42")
    again_status, again = p.report_call(f"+{CALLER}", ANI_ACCESS, call_id="c-42")
    request = p.wait_request()
    p.wait_idle()

    assert (status, body["state"], body["method"], body["duplicate"]) == (
        202,
        "queued",
        "ani",
        False,
    )
    assert (again_status, again["request_id"], again["duplicate"]) == (
        200,
        body["request_id"],
        True,
    )
    assert len(p.requests()) == 1
    assert (request.id, request.trigger, request.state) == (
        body["request_id"],
        "gateway",
        "completed",
    )
    assert (request.caller_id, request.called_number) == (f"+{CALLER}", ANI_ACCESS)
    assert [leg.number for leg in p.legs(request.id)] == [CALLER, FRIEND]


def test_a_call_reported_to_a_pin_access_number_asks_for_the_pin(sms_platform, alice) -> None:
    digits = [{"after": 1.0, "digits": "4711#"}, {"after": 2.5, "digits": f"{FRIEND}#"}]
    p = sms_platform(
        {
            CALLER: {"answer_after": 0.5, "keys": digits},
            FRIEND: {"answer_after": 0.5, "hangup_after": 1},
        }
    )

    status, body = p.report_call(CALLER, PIN_ACCESS)
    request = p.wait_request()

    assert (status, body["method"]) == (202, "pin")
    assert (request.state, request.account_id, request.trigger) == (
        "completed",
        alice.id,
        "gateway",
    )


@pytest.mark.parametrize(
    ("caller", "called", "reason"),
    [
        ("15557777777", ANI_ACCESS, "unknown_caller_id"),
        ("", ANI_ACCESS, "withheld_caller_id"),
        ("anonymous", PIN_ACCESS, "withheld_caller_id"),
        ("123&park()", ANI_ACCESS, "invalid_caller_id"),
        (CALLER, "18005559999", "unknown_number"),
    ],
)
def test_refused_call_reports_are_stored_with_the_reason_and_nobody_is_called(
    sms_platform, alice, caller, called, reason
) -> None:
    p = sms_platform()

    status, body = p.report_call(caller, called)

    assert (status, body["state"], body["reason"]) == (200, "rejected", reason)
    (request,) = p.requests()
    assert (request.trigger, request.state, request.failure_cause) == (
        "gateway",
        "rejected",
        reason,
    )
    assert p.legs(request.id) == []
    assert p.observer.executed == []  # no channel ran anything: nobody was called


def test_text_that_is_not_valid_unicode_is_refused_by_both_endpoints(sms_platform, alice) -> None:
    """A lone surrogate escape ("\\ud800" in the JSON) is refused, naming the field; the same
    gateway's next report with proper text goes through."""
    p = sms_platform()

    sms_status, sms_body = p.post_sms(CALLER, "BAL \ud800", message_id="m-1")
    call_status, call_body = p.report_call("15557777777", ANI_ACCESS, call_id="c-\ud800")

    assert (sms_status, call_status) == (400, 400)
    assert (sms_body["error"]["field"], call_body["error"]["field"]) == ("text", "call_id")
    assert "holds text that is not valid Unicode" in call_body["error"]["message"]
    assert SmsMessage.select().count() == 0 and p.requests() == []
    assert p.post_sms(CALLER, "BAL", message_id="m-1")[0] == 200


def test_long_call_ids_differing_after_sixty_characters_are_two_reports(
    sms_platform, alice
) -> None:
    """The duplicate key (trigger_uuid, 64 characters) holds a digest of a call id too long for
    it: ids sharing their first 60 characters are two calls; a retry of one is a duplicate."""
    p = sms_platform()
    first, second = "a" * 60 + "1" * 68, "a" * 60 + "2" * 68
    stranger = "15557777777"  # no account's number: each report is stored, refused, nobody called

    one = p.report_call(stranger, ANI_ACCESS, call_id=first)[1]
    two = p.report_call(stranger, ANI_ACCESS, call_id=second)[1]
    retry = p.report_call(stranger, ANI_ACCESS, call_id=first)[1]

    assert (one["duplicate"], two["duplicate"], retry["duplicate"]) == (False, False, True)
    assert two["request_id"] != one["request_id"] == retry["request_id"]
    keys = [request.trigger_uuid for request in p.requests()]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert all(key.startswith("phone1#") and len(key) <= 64 for key in keys)


def test_a_long_gateway_name_leaves_room_for_the_digest_of_a_long_call_id(
    sms_platform, alice
) -> None:
    name = "g" * 32  # the longest name a gateway may have
    p = sms_platform(sms={"gateways": [{"name": name, "token": TOKEN}]})
    stranger, first, second = "15557777777", "a" * 127 + "1", "a" * 127 + "2"

    one = p.report_call(stranger, ANI_ACCESS, call_id=first)[1]
    two = p.report_call(stranger, ANI_ACCESS, call_id=second)[1]
    retry = p.report_call(stranger, ANI_ACCESS, call_id=second)[1]

    assert (one["duplicate"], two["duplicate"], retry["duplicate"]) == (False, False, True)
    assert retry["request_id"] == two["request_id"] != one["request_id"]
    keys = [request.trigger_uuid for request in p.requests()]
    assert [len(key) for key in keys] == [64, 64] and keys[0] != keys[1]
