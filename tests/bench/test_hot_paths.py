"""What the profiling fixes must keep: header lookups and event parsing behave as before."""

from __future__ import annotations

import pytest

from esl_callback.switch.protocol import Frame, FrameError, parse_event_plain, parse_headers


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
