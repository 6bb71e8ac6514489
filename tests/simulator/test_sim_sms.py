"""SMS on the simulated switch, as FreeSWITCH 1.10.12 does them (tests/fixtures/freeswitch-wire/
inbound-chat-api-blocks-on-silent-user.txt, inbound-sip-message-chatplan-{stop,final}.txt):
the `chat` API waits for the phone's answer, holding an `api` caller's whole connection, and an
SMS a chatplan extension fires gives two MESSAGE events.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest
from sim_client import EslClient

from esl_callback.simulator import Simulator
from esl_callback.simulator.chatplan import Chatplan, ChatplanError
from esl_callback.simulator.config import ConfigError, from_mapping
from esl_callback.switch.protocol import Frame

PHONE = "15550001002"
CHAT = f"chat sip|4930100300|{PHONE}@127.0.0.1|hello"
SMS_NUMBERS = r"^\+?(4930100300|4930100400)$"


def until_reply(conn: EslClient, timeout: float = 10.0) -> Frame:
    """The next reply; no event may arrive before it (the switch writes none while an `api`
    command runs)."""
    with gevent.Timeout(timeout, AssertionError("no reply")):
        while conn.replies.empty():
            assert conn.events.empty(), "an event came while the api command ran"
            gevent.sleep(0.005)
    return conn.reply()


def events_until_marker(conn: EslClient) -> list[Frame]:
    """Every event up to a CUSTOM test::marker fired now (events are delivered in order)."""
    conn.command("sendevent CUSTOM\nEvent-Subclass: test::marker")
    seen = []
    with gevent.Timeout(10, AssertionError("no marker")):
        while (event := conn.events.get()).get("Event-Subclass") != "test::marker":
            seen.append(event)
    return seen


def test_chat_to_a_phone_that_answers_is_sent_after_one_poll(
    sim: Simulator, client: Callable[..., EslClient]
) -> None:
    sim.register_user(PHONE, "127.0.0.1:5073")
    conn = client()
    conn.command("event plain MESSAGE")
    started = sim.clock.now()

    assert conn.api(CHAT) == "Sent"  # no newline (captured)

    assert 0.1 <= sim.clock.now() - started < 5
    (message,) = sim.outbox
    assert (message.recipient, message.body, message.delivered) == (
        f"{PHONE}@127.0.0.1",
        "hello",
        True,
    )
    event = conn.event("MESSAGE")
    assert [(k, v) for k, v in event.headers if k[0].islower() or k.startswith("Delivery")] == [
        ("proto", "global"),
        ("from", "4930100300"),
        ("to", f"{PHONE}@127.0.0.1"),
        ("skip_global_process", "true"),
        ("blocking", "true"),
        ("dest_proto", "sip"),
        ("Delivery-Result-Code", "200"),
        ("Delivery-Failure", "false"),
    ]
    assert event.get("Event-Calling-Function") == "switch_core_chat_send_args"
    assert event.text == "hello"


def test_api_chat_to_a_registered_phone_that_never_answers_holds_the_whole_connection(
    sim: Simulator, client: Callable[..., EslClient]
) -> None:
    sim.register_user(PHONE, "127.0.0.1:5099", answers_messages=False)
    conn = client()
    conn.command("event plain MESSAGE CHANNEL_CREATE")
    started = sim.clock.now()

    conn.send(f"api {CHAT}\n\napi status\n\n")  # pipelined, as in the capture
    caller = sim.place_call("15550001001", "9664", "default")  # a call meanwhile: its events wait
    chat = until_reply(conn, timeout=30)
    waited = sim.clock.now() - started
    status = conn.reply()

    assert chat.text == "Error! Message Not Sent"  # no newline (captured)
    assert waited >= 19.9
    assert status.text.startswith("UP ")
    assert not sim.outbox[0].delivered
    assert conn.event("CHANNEL_CREATE").get("Unique-ID") == caller  # only now
    message = conn.event("MESSAGE")
    assert (message.get("Delivery-Result-Code"), message.get("Delivery-Failure")) == ("0", "true")
    # created when the chat started, fired when it ended (the date of the capture's event)
    assert int(message.get("Event-Date-Timestamp")) / 1e6 < started + 1


def test_bgapi_chat_leaves_the_connection_free_and_reports_in_its_background_job(
    sim: Simulator, client: Callable[..., EslClient]
) -> None:
    sim.register_user(PHONE, "127.0.0.1:5099", answers_messages=False)
    conn = client()
    conn.command("event plain BACKGROUND_JOB MESSAGE")
    started = sim.clock.now()

    job = conn.bgapi(f"{CHAT} bgapi")
    status = conn.api("status")
    answered = sim.clock.now() - started
    message = conn.event("MESSAGE", timeout=30)
    done = conn.event("BACKGROUND_JOB", timeout=30)

    assert job and status.startswith("UP ") and answered < 5
    assert sim.clock.now() - started >= 19.9
    assert message.get("Delivery-Failure") == "true"
    assert (done.get("Job-UUID"), done.get("Job-Command"), done.text) == (
        job,
        "chat",
        "Error! Message Not Sent",
    )
    assert done.get("Job-Command-Arg") == f"sip|4930100300|{PHONE}@127.0.0.1|hello bgapi"


def test_chat_to_a_local_user_without_a_registration_fails_at_once(
    sim: Simulator, client: Callable[..., EslClient]
) -> None:
    conn = client()
    conn.command("event plain MESSAGE CUSTOM sofia::error")
    started = sim.clock.now()

    assert conn.api(CHAT) == "Error! Message Not Sent"

    assert sim.clock.now() - started < 5
    error, message = conn.event("CUSTOM"), conn.event("MESSAGE")
    assert (error.get("Error-Reason"), error.get("Chat-Send-To")) == (
        "no recipient",
        f"{PHONE}@127.0.0.1",
    )
    assert error.get("Chat-Send-From") == '"4930100300" <sip:4930100300@127.0.0.1>'
    assert message.get("Delivery-Failure") == "true"
    assert message.get("Delivery-Result-Code") is None  # nothing was sent


def test_sofia_contact_says_where_a_user_is_registered(
    sim: Simulator, client: Callable[..., EslClient]
) -> None:
    conn = client()
    sim.register_user(PHONE, "127.0.0.1:5099")
    registered = conn.api(f"sofia_contact internal/{PHONE}@127.0.0.1")
    sim.unregister_user(PHONE)
    gone = conn.api(f"sofia_contact internal/{PHONE}@127.0.0.1")

    assert (registered, gone) == (
        f"sofia/internal/sip:{PHONE}@127.0.0.1:5099",
        "error/user_not_registered",
    )


@pytest.mark.parametrize(
    ("actions", "copies", "delivery_tried"),
    [
        (["fire", "final"], [[], ["final_delivery", "Nonblocking-Delivery"]], False),
        (["fire", "stop"], [[], ["Nonblocking-Delivery"]], True),
        (None, [["Nonblocking-Delivery"]], True),  # no extension takes it
    ],
)
def test_an_sms_the_chatplan_fires_gives_two_message_events(
    sim: Simulator, client: Callable[..., EslClient], actions, copies, delivery_tried
) -> None:
    if actions is not None:
        sim.config.chatplan = Chatplan.from_config(
            {"public": [{"name": "sms", "expression": SMS_NUMBERS, "actions": actions}]}
        )
    conn = client()
    conn.command("event plain MESSAGE CUSTOM sofia::error test::marker")

    sim.receive_sms(PHONE, "4930100300", "CB 15550002001", tag="t1")
    events = events_until_marker(conn)

    messages = [e for e in events if e.get("Event-Name") == "MESSAGE"]
    errors = [e for e in events if e.get("Event-Subclass") == "sofia::error"]
    base = [k for k, _ in messages[0].headers if k not in copies[0]]
    assert [[k for k, _ in m.headers if k not in base] for m in messages] == copies
    assert len({m.get("Event-Sequence") for m in messages}) == 1  # one event, copied
    assert all(m.get("from_full") == f"<sip:{PHONE}@127.0.0.1>;tag=t1" for m in messages)
    assert all(m.text == "CB 15550002001" for m in messages)
    assert all((m.get("DP_MATCH") == "4930100300") == (actions is not None) for m in messages)
    assert len(errors) == (1 if delivery_tried else 0)
    if errors:
        assert errors[0].get("Chat-Send-To") == "4930100300@127.0.0.1"
        assert events.index(errors[0]) == len(events) - 2  # before the last copy


def test_a_chatplan_the_simulator_cannot_run_is_refused() -> None:
    with pytest.raises(ChatplanError, match="only fire, stop, final"):
        from_mapping(
            {"chatplan": {"public": [{"expression": "^1$", "actions": ["fire", "reply hi"]}]}}
        )
    with pytest.raises(ChatplanError, match="needs an expression"):
        from_mapping({"chatplan": {"public": [{"actions": ["fire"]}]}})
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping({"users": {}, "chatplans": {}})
