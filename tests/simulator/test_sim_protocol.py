"""esl_callback.switch.protocol: framing limits, header decoding, event (de)serialisation.

The serialisers are checked against every event a real FreeSWITCH 1.10.12 sent in the
recordings: parsing then formatting again gives back the very same bytes.
"""

from __future__ import annotations

import io
import socket
import xml.etree.ElementTree as ET

import gevent.socket
import pytest
from wire_replay import FIXTURES, load_steps

from esl_callback.switch.protocol import (
    Frame,
    FrameError,
    event_message,
    format_event_json,
    format_event_plain,
    format_event_xml,
    format_frame,
    parse_event,
    parse_event_json,
    parse_event_plain,
    parse_event_xml,
    read_command,
    read_frame,
    send_message,
    url_decode,
    url_encode,
)


def frames(data: bytes, buffered: bool = False, **limits: int) -> list[Frame]:
    """Every frame in `data`; `buffered`: read as sockets are, blocks taken from a read buffer."""
    stream = io.BufferedReader(io.BytesIO(data), 64 * 1024) if buffered else io.BytesIO(data)
    out = []
    while (frame := read_frame(stream, **limits)) is not None:
        out.append(frame)
    return out


def test_reads_consecutive_frames_with_exact_bodies() -> None:
    data = (
        b"Content-Type: auth/request\n\n"
        b"Content-Type: api/response\nContent-Length: 5\n\n+OK\n\n"
        b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    )
    got = frames(data)
    assert [f.content_type for f in got] == ["auth/request", "api/response", "command/reply"]
    assert got[1].body == b"+OK\n\n"  # the body may itself contain blank lines
    assert got[2].get("reply-text") == "+OK accepted"


def test_clean_eof_is_none_and_leading_blank_lines_are_skipped() -> None:
    assert read_frame(io.BytesIO(b"")) is None
    assert frames(b"\n\nContent-Type: auth/request\n\n")[0].content_type == "auth/request"


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Length: -5\n\nxxxxx",
        b"Content-Length: 12abc\n\n",
        b"Content-Length: \n\n",
        b"Content-Length: 99999999999\n\n",
        b"Content-Type: api/response\nContent-Length: 10\n\nshort",  # EOF mid-body
        b"Content-Type: api/resp",  # EOF mid-line
        b"Content-Type: api/response\n",  # EOF before the blank line
        b"no colon here\n\n",
    ],
)
def test_bad_frames_are_rejected(data: bytes) -> None:
    with pytest.raises(FrameError):
        frames(data)


@pytest.mark.parametrize("buffered", [False, True])
def test_limits_are_configurable(buffered: bool) -> None:
    assert frames(b"Content-Length: 4\n\nabcd", buffered, max_body=4)[0].body == b"abcd"
    with pytest.raises(FrameError):
        frames(b"Content-Length: 5\n\nabcde", buffered, max_body=4)
    with pytest.raises(FrameError):
        frames(b"X-Long: " + b"a" * 2000 + b"\n\n", buffered, max_line=1024)
    many = b"".join(b"X-H%d: v\n" % i for i in range(200)) + b"\n"
    assert len(frames(many, buffered)[0].headers) == 200
    with pytest.raises(FrameError):
        frames(many, buffered, max_header_block=1000)


def test_a_one_megabyte_header_line_is_rejected_without_reading_it_all() -> None:
    stream = io.BytesIO(b"X: " + b"a" * (1024 * 1024) + b"\n\n")
    with pytest.raises(FrameError):
        read_frame(stream)
    assert stream.tell() < 100 * 1024


def test_decoded_newline_cannot_forge_a_header() -> None:
    """A real CHANNEL_CREATE whose caller name had %0A followed by header-like text."""
    raw = (FIXTURES / "event-plain-forged-display-name.raw").read_bytes()
    (frame,) = frames(raw)
    event = parse_event(frame)
    assert event.get("Unique-ID") == "fa2fd882-aaa2-4668-b942-81f2a26350e5"
    assert event.get_all("Unique-ID") == ["fa2fd882-aaa2-4668-b942-81f2a26350e5"]
    assert event.get("Caller-Destination-Number") != "999"
    name = event.get("Caller-Caller-ID-Name")
    assert name == "Bob\nUnique-ID: forged-uuid\nCaller-Destination-Number: 999"
    # and it goes back on the wire exactly as FreeSWITCH encoded it
    assert format_event_plain(event.headers) == frame.body


def test_url_encoding_matches_freeswitch() -> None:
    assert url_encode("2026-11-25 21:02:53") == "2026-11-25%2021%3A02%3A53"
    assert url_encode("fd00::2") == "fd00%3A%3A2"
    assert url_encode("{a=b,c=d}loopback/9664 &park()") == (
        "%7Ba%3Db,c%3Dd%7Dloopback/9664%20%26park()"
    )
    assert url_encode("ä") == "%C3%A4"
    assert url_encode("100%25 done") == "100%25%20done"  # an existing %XX is not encoded again
    assert url_encode("50%") == "50%25"
    assert url_decode("a+b%20c%0A") == "a+b c\n"


def test_read_command_keeps_headers_body_and_raw_block() -> None:
    data = (
        b"sendmsg 1234\ncall-command: execute\nnonsense line\nexecute-app-name: playback\n"
        b"Content-Length: 3\n\nabc"
    )
    cmd = read_command(io.BytesIO(data))
    assert cmd is not None
    assert cmd.line == "sendmsg 1234"
    assert cmd.headers == [
        ("call-command", "execute"),
        ("execute-app-name", "playback"),
        ("Content-Length", "3"),
    ]
    assert cmd.body == b"abc"
    assert cmd.raw.startswith("sendmsg 1234\ncall-command: execute\nnonsense line\n")


def test_format_frame_and_event_message() -> None:
    assert format_frame([("Content-Type", "api/response"), ("Content-Length", "4")], b"+OK\n") == (
        b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
    )
    payload = format_event_plain([("Event-Name", "CUSTOM")], "hello")
    assert payload == b"Event-Name: CUSTOM\nContent-Length: 5\n\nhello"
    assert event_message(payload, "plain") == (
        b"Content-Length: 43\nContent-Type: text/event-plain\n\n" + payload
    )
    event = parse_event_plain(payload)
    assert event.body == b"hello"


def test_json_keeps_duplicate_headers_and_body() -> None:
    headers = [("Event-Name", "X"), ("Hangup-Cause", "USER_BUSY"), ("Hangup-Cause", "USER_BUSY")]
    text = format_event_json(headers, "body\n")
    assert text == (
        b'{"Event-Name":"X","Hangup-Cause":"USER_BUSY","Hangup-Cause":"USER_BUSY",'
        b'"Content-Length":"5","_body":"body\\n"}'
    )
    event = parse_event_json(text)
    assert event.get_all("Hangup-Cause") == ["USER_BUSY", "USER_BUSY"]
    assert event.body == b"body\n"
    with pytest.raises(FrameError):
        parse_event_json(b"[1, 2]")


def recorded_events() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(FIXTURES.glob("*.txt")):
        if not path.name.startswith(("inbound-", "outbound-", "flow-")):
            continue
        if path.name.endswith("summary.txt"):
            continue
        for step in load_steps(path.name):
            if step.kind == "recv" and b"Content-Type: text/event-" in step.data[:80]:
                out.append((path.name, step.data))
    return out


def test_every_recorded_event_round_trips_byte_for_byte() -> None:
    events = recorded_events()
    assert len(events) > 500
    for name, data in events:
        (frame,) = frames(data)
        event = parse_event(frame)
        headers = list(event.headers)
        body = event.body.decode() or None
        if body is not None:  # the inner Content-Length is added back by the serialiser
            last = max(i for i, (k, _) in enumerate(headers) if k == "Content-Length")
            del headers[last]
        fmt = "json" if frame.content_type == "text/event-json" else "plain"
        formatter = format_event_json if fmt == "json" else format_event_plain
        assert event_message(formatter(headers, body), fmt) == data, name
        hangups = event.get_all("Hangup-Cause")
        if event.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE":
            assert len(hangups) == 2, name


def test_xml_events_look_like_switch_xml_toxml() -> None:
    headers = [("Event-Name", "CUSTOM"), ("Caller-ID", "A&B <x>"), ("Empty", "")]
    assert format_event_xml(headers, "caf\u00e9 & co\n") == (
        b"<event>\n"
        b"  <headers>\n"
        b"    <Event-Name>CUSTOM</Event-Name>\n"
        b"    <Caller-ID>A%26B%20%3Cx%3E</Caller-ID>\n"
        b"    <Empty></Empty>\n"
        b"  </headers>\n"
        b"  <Content-Length>11</Content-Length>\n"
        b"  <body>caf&#xE9; &amp; co\n"
        b"  </body>\n"
        b"</event>\n"
    )
    root = ET.fromstring(format_event_xml([("Event-Name", "HEARTBEAT")]))
    assert [child.tag for child in root] == ["headers"]


def test_event_xml_subscription(sim, client) -> None:
    conn = client()
    assert conn.command("event xml CHANNEL_CREATE").get("Reply-Text") == (
        "+OK event listener enabled xml"
    )
    uuid = sim.place_call("15550009999", "15550001001", "phones")
    frame = conn.event("CHANNEL_CREATE", lambda e: e.get("Unique-ID") == uuid)
    assert frame.get("Channel-Name") == "loopback/15550001001-a"


def test_xml_events_parse_back() -> None:
    headers = [("Event-Name", "CUSTOM"), ("Caller-ID", "A&B <x>\n"), ("Empty", "")]
    event = parse_event_xml(format_event_xml(headers, "line 1\nline 2\n"))
    assert event.headers == headers
    assert event.body == b"line 1\nline 2\n"
    with pytest.raises(FrameError):
        parse_event_xml(b"<event><oops>")


def test_a_message_bigger_than_the_socket_buffer_is_written_whole() -> None:
    sender, receiver = gevent.socket.socketpair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    message = bytes(range(256)) * 4096  # 1 MiB: many times what one send() takes
    received = bytearray()

    def drain() -> None:
        while len(received) < len(message):
            received.extend(receiver.recv(65536))

    reader = gevent.spawn(drain)
    send_message(sender, message)
    reader.join(timeout=10)

    assert bytes(received) == message
    sender.close()
    receiver.close()
