"""What the profiling fixes must keep: header lookups and event parsing behave as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from esl_callback.switch.protocol import (
    Frame,
    FrameError,
    PlainEvent,
    parse_event_plain,
    parse_headers,
)

# A CHANNEL_CREATE recorded on FreeSWITCH 1.10 (tests/fixtures/freeswitch-wire/README.txt)
# whose caller name carries an encoded line break and header.
RECORDED = (
    Path(__file__).parent.parent / "fixtures/freeswitch-wire/event-plain-forged-display-name.raw"
).read_bytes()


def test_header_lookup_is_case_insensitive_and_the_first_value_wins() -> None:
    event = Frame([("Event-Name", "CHANNEL_HANGUP_COMPLETE"), ("Hangup-Cause", "USER_BUSY"),
                   ("Hangup-Cause", "NORMAL_CLEARING")])  # fmt: skip
    assert event.get("hangup-cause") == "USER_BUSY"
    assert event.get("HANGUP-CAUSE") == "USER_BUSY"
    assert event.get("Unique-ID") is None
    assert event.get("Unique-ID", "none") == "none"


def test_headers_added_after_a_lookup_are_found() -> None:
    frame = Frame([("Content-Type", "command/reply")])
    assert frame.get("Reply-Text") is None
    frame.headers.append(("Reply-Text", "+OK"))
    assert frame.get("reply-text") == "+OK"


def test_parsing_decodes_values_after_splitting_and_accepts_crlf() -> None:
    block = b"Event-Name: DTMF\r\nCaller-Caller-ID-Name: A%0AFake-Header%3A%20x\r\nEmpty:\n"
    assert parse_headers(block) == [
        ("Event-Name", "DTMF"),
        ("Caller-Caller-ID-Name", "A\nFake-Header: x"),
        ("Empty", ""),
    ]


def test_a_header_line_without_a_colon_is_a_framing_error() -> None:
    with pytest.raises(FrameError, match="without ':'"):
        parse_headers(b"Event-Name: DTMF\ngarbage\n")


def test_an_event_body_is_cut_at_its_own_content_length() -> None:
    event = parse_event_plain(b"Event-Name: BACKGROUND_JOB\nContent-Length: 4\n\n+OK\nmore")
    assert (event.get("content-length"), event.body) == ("4", b"+OK\n")


def recorded_event_body() -> bytes:
    return RECORDED.split(b"\n\n", 1)[1]


def test_a_recorded_event_is_read_lazily_and_every_header_reads_as_a_full_parse_does() -> None:
    body = recorded_event_body()
    lazy = parse_event_plain(body)
    assert isinstance(lazy, PlainEvent)
    eager = Frame(parse_headers(body.partition(b"\n\n")[0]))
    assert len(eager.headers) > 100
    for name, _ in eager.headers:
        assert lazy.get(name) == eager.get(name), name
        assert lazy.get(name.upper()) == eager.get(name), name
    assert lazy.headers == eager.headers
    assert lazy.get("No-Such-Header", "absent") == "absent"


def test_a_lazily_read_event_cannot_be_given_a_header_by_a_caller() -> None:
    event = parse_event_plain(recorded_event_body())
    assert isinstance(event, PlainEvent)
    name = "Bob\nUnique-ID: forged-uuid\nCaller-Destination-Number: 999"
    assert event.get("Caller-Caller-ID-Name") == name
    assert event.get("Unique-ID") == "fa2fd882-aaa2-4668-b942-81f2a26350e5"
    assert event.get("Caller-Destination-Number") != "999"


def test_a_block_not_in_freeswitch_shape_is_parsed_at_once() -> None:
    crlf = parse_event_plain(b"Event-Name: DTMF\r\nDTMF-Digit: 5\r\n\r\n")
    assert not isinstance(crlf, PlainEvent) and crlf.get("dtmf-digit") == "5"
    with pytest.raises(FrameError, match="without ':'"):
        parse_event_plain(b"Event-Name: DTMF\ngarbage\n\n")
