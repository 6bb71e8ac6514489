"""What the profiling fixes must keep: header lookups and event parsing behave as before."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from wire_replay import load_steps

from esl_callback.switch.protocol import (
    Frame,
    FrameError,
    LazyFrame,
    parse_event_plain,
    parse_headers,
    read_frame,
)

# A CHANNEL_CREATE recorded on FreeSWITCH 1.10 (tests/fixtures/freeswitch-wire/README.txt)
# whose caller name carries an encoded line break and header.
RECORDED = (
    Path(__file__).parent.parent / "fixtures/freeswitch-wire/event-plain-forged-display-name.raw"
).read_bytes()


def recorded_connect_reply() -> bytes:
    """The reply to `connect` on an outbound socket, as FreeSWITCH 1.10 sent it."""
    return next(s.data for s in load_steps("outbound-socket-ivr.txt") if s.kind == "recv")


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
    assert isinstance(lazy, LazyFrame)
    eager = Frame(parse_headers(body.partition(b"\n\n")[0]))
    assert len(eager.headers) > 100
    for name, _ in eager.headers:
        assert lazy.get(name) == eager.get(name), name
        assert lazy.get(name.upper()) == eager.get(name), name
    assert lazy.headers == eager.headers
    assert lazy.get("No-Such-Header", "absent") == "absent"


def test_a_lazily_read_event_cannot_be_given_a_header_by_a_caller() -> None:
    event = parse_event_plain(recorded_event_body())
    assert isinstance(event, LazyFrame)
    name = "Bob\nUnique-ID: forged-uuid\nCaller-Destination-Number: 999"
    assert event.get("Caller-Caller-ID-Name") == name
    assert event.get("Unique-ID") == "fa2fd882-aaa2-4668-b942-81f2a26350e5"
    assert event.get("Caller-Destination-Number") != "999"


def test_a_block_not_in_freeswitch_shape_is_parsed_at_once() -> None:
    crlf = parse_event_plain(b"Event-Name: DTMF\r\nDTMF-Digit: 5\r\n\r\n")
    assert not isinstance(crlf, LazyFrame) and crlf.get("dtmf-digit") == "5"
    with pytest.raises(FrameError, match="without ':'"):
        parse_event_plain(b"Event-Name: DTMF\ngarbage\n\n")


def test_the_recorded_connect_reply_is_kept_as_one_string_and_reads_as_a_full_parse_does() -> None:
    raw = recorded_connect_reply()
    assert len(raw) == 3601
    frame = read_frame(io.BufferedReader(io.BytesIO(raw)))
    assert isinstance(frame, LazyFrame)
    eager = Frame(parse_headers(raw, decode=False))
    assert len(eager.headers) > 90
    assert frame.headers == eager.headers  # values as sent, still encoded
    assert frame.get("FreeSWITCH-IPv6") == "fd00%3A%3A2"
    data, decoded = frame.decoded(), Frame(parse_headers(raw))
    for name, _ in decoded.headers:
        assert data.get(name) == decoded.get(name), name
    assert data.headers == decoded.headers
    assert data.get("FreeSWITCH-IPv6") == "fd00::2"
    assert data.get("Content-Type") == "command/reply"


def test_a_frame_read_line_by_line_equals_one_taken_whole_from_the_buffer() -> None:
    raw = recorded_connect_reply() + b"Content-Type: api/response\nContent-Length: 2\n\nok"
    for buffer_size in (8192, 64):  # the block fits the read buffer, or it does not
        stream = io.BufferedReader(io.BytesIO(b"\n" + raw), buffer_size=buffer_size)
        first, second = read_frame(stream), read_frame(stream)
        assert first.headers == parse_headers(recorded_connect_reply(), decode=False)
        assert (second.content_type, second.body) == ("api/response", b"ok")
        assert read_frame(stream) is None


def test_an_outer_frame_not_in_freeswitch_shape_is_parsed_at_once_with_its_body() -> None:
    bgapi = b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: 7f4d\nJob-UUID: 7f4d\n\n"
    frame = read_frame(io.BufferedReader(io.BytesIO(bgapi)))
    assert not isinstance(frame, LazyFrame)
    assert frame.get("Reply-Text") == "+OK Job-UUID: 7f4d"
    crlf = b"Content-Type: api/response\r\nContent-Length: 3\r\n\r\n+OKnext"
    frame = read_frame(io.BufferedReader(io.BytesIO(crlf)))
    assert (frame.content_type, frame.body) == ("api/response", b"+OK")
    with pytest.raises(FrameError, match="without ':'"):
        read_frame(io.BufferedReader(io.BytesIO(b"Content-Type: command/reply\ngarbage\n\n")))
