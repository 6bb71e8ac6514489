"""Reading an SMS: the syntax, and a MESSAGE event exactly as FreeSWITCH 1.10.12 sent it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from esl_callback.sms import (
    FREESWITCH,
    Command,
    Inbound,
    is_received,
    message_from_event,
    parse,
)
from esl_callback.switch.protocol import Frame, parse_event, read_frame

CAPTURE = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "freeswitch-wire"
    / "inbound-sip-message-mod-sms.txt"
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("", Command("callback")),
        ("   \n ", Command("callback")),
        ("CB", Command("callback")),
        (" cb ", Command("callback")),
        ("4930123", Command("callback", destination="4930123")),
        ("Cb  +49-30-123", Command("callback", destination="+49-30-123")),
        ("4711 4930123", Command("callback", destination="4930123", pin="4711")),
        ("cB\t4711\n4930123 ", Command("callback", destination="4930123", pin="4711")),
        ("bal", Command("balance")),
        (" BAL ", Command("balance")),
        ("help", Command("help")),
        ("HELP me", Command("help")),
        ("call 4930123", Command("invalid")),
        ("4711 49 30 123", Command("invalid")),
        ("HELLOTHEREPLEASECALL", Command("invalid")),
        ("cb hello", Command("invalid")),
        ("4711 hello", Command("invalid")),
        ("(030)123-45", Command("callback", destination="(030)123-45")),
        ("555&park()", Command("callback", destination="555&park()")),
    ],
)
def test_the_syntax_is_case_insensitive_and_tolerant_of_spaces(text, command) -> None:
    assert parse(text) == command


def captured_message_event() -> bytes:
    """The MESSAGE event the capture recorded, as the bytes FreeSWITCH sent."""
    steps = CAPTURE.read_bytes().split(b"\n# [t=")
    (step,) = [s for s in steps if b"Event-Name=MESSAGE" in s.split(b"\n", 1)[0]]
    data = b""
    for line in step.split(b"\n")[1:]:
        if line.startswith(b"<<< "):
            text = line[4:]
            data += text[: -len(b"  [no LF]")] if text.endswith(b"  [no LF]") else text + b"\n"
    return data


def test_a_real_message_event_gives_sender_recipient_text_and_the_from_tag() -> None:
    event = parse_event(read_frame(io.BytesIO(captured_message_event())))

    assert message_from_event(event) == Inbound(
        channel=FREESWITCH,
        sender="1001",
        recipient="1000",
        text="Hello from a hand-made SIP MESSAGE",
        message_id="1001@127.0.0.1;tag=7cf526f3",
    )


def test_the_message_event_fired_after_our_own_chat_reply_is_not_taken_for_an_sms() -> None:
    received = parse_event(read_frame(io.BytesIO(captured_message_event())))
    # What switch_core_chat_send_args puts on the MESSAGE it fires once `chat` has sent a reply.
    sent = Frame(
        [
            ("Event-Name", "MESSAGE"),
            ("proto", "global"),
            ("from", "18005550300@127.0.0.1"),
            ("to", "15550001001@127.0.0.1"),
            ("skip_global_process", "true"),
            ("blocking", "true"),
            ("dest_proto", "sip"),
            ("Delivery-Failure", "false"),
        ],
        b"OK, we are calling you back on +15550001001 now.",
    )

    assert is_received(received)
    assert not is_received(sent)
