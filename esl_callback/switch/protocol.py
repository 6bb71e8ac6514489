"""FreeSWITCH Event Socket (ESL) wire framing, shared by the controller and the simulator.

A message on the wire is a block of ``Name: value`` lines ended by an empty line, followed by
exactly ``Content-Length`` bytes of body when that header is present. Events delivered as
``text/event-plain`` carry a second such block inside the body, whose header *values* are
percent-encoded the way FreeSWITCH's ``switch_url_encode`` does it.

Parsing always splits a block into lines and ``name: value`` pairs first and decodes each value
afterwards, so a decoded ``%0A`` inside a value can never forge a header of its own.
"""

from __future__ import annotations

import copy
import io
import json
import socket
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO
from xml.etree import ElementTree

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_HEADER_BLOCK = 1024 * 1024

# Characters FreeSWITCH percent-encodes in header values (switch_utils.c, urlunsafe), besides
# every byte outside the printable ASCII range.
_URL_UNSAFE = frozenset(b'\r\n "#%&+:;<=>?@[\\]^`{|}')
_HEX_UPPER = frozenset(b"0123456789ABCDEF")
_ENCODE_TABLE = [
    f"%{b:02X}" if (b < 0x20 or b > 0x7E or b in _URL_UNSAFE) else chr(b) for b in range(256)
]

Headers = list[tuple[str, str]]


class FrameError(Exception):
    """The peer sent something that is not a valid ESL frame; the connection must be closed."""


@dataclass
class Frame:
    """One ESL message (or one decoded event): ordered headers and a body.

    Header names are compared case-insensitively, like FreeSWITCH does. Headers may repeat
    (CHANNEL_HANGUP_COMPLETE carries ``Hangup-Cause`` twice); :meth:`get` returns the first.
    """

    headers: Headers = field(default_factory=list)
    body: bytes = b""
    # Lower-cased name -> first value, built at the first `get` (an event has 50-200 headers
    # and is asked for several); rebuilt if headers were added since.
    _index: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)
    _indexed: int = field(default=0, init=False, repr=False, compare=False)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        index = self._index
        if index is None or self._indexed != len(self.headers):
            index = {}
            for key, value in reversed(self.headers):
                index[key.lower()] = value
            self._index, self._indexed = index, len(self.headers)
        return index.get(name.lower(), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in wire order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def to_dict(self) -> dict[str, str]:
        """Headers as a dict; for a repeated name the first value wins."""
        result: dict[str, str] = {}
        for key, value in self.headers:
            result.setdefault(key, value)
        return result

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @property
    def content_type(self) -> str | None:
        return self.get("Content-Type")

    @property
    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def decoded(self) -> Frame:
        """A copy with every header value URL-decoded (for the outbound ``connect`` reply)."""
        return Frame([(k, url_decode(v)) for k, v in self.headers], self.body)


@dataclass
class Command:
    """One message a client sends: the command line, optional headers, optional body.

    ``raw`` is the header block as received (lines joined by LF, ending in the empty line).
    """

    line: str
    headers: Headers = field(default_factory=list)
    body: bytes = b""
    raw: str = ""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        return Frame(self.headers).get(name, default)


def url_encode(value: str) -> str:
    """Percent-encode a header value exactly like FreeSWITCH (no double encoding of ``%XX``)."""
    raw = value.encode("utf-8", "surrogateescape")
    out: list[str] = []
    n = len(raw)
    for i, b in enumerate(raw):
        if b == 0x25 and i + 2 < n and raw[i + 1] in _HEX_UPPER and raw[i + 2] in _HEX_UPPER:
            out.append("%")
        else:
            out.append(_ENCODE_TABLE[b])
    return "".join(out)


def url_decode(value: str) -> str:
    """Decode a percent-encoded header value (``+`` stays ``+``)."""
    if "%" not in value:
        return value
    return urllib.parse.unquote_to_bytes(value).decode("utf-8", "replace")


def _read_block(fileobj: BinaryIO, max_line: int, max_header_block: int) -> bytes | None:
    """Read header lines up to the empty line: their bytes, each line with its line break.

    None on EOF before any byte. Empty lines before a message are skipped, like FreeSWITCH does.
    """
    buffered = fileobj.peek(1) if isinstance(fileobj, io.BufferedReader) else b""
    end = buffered.find(b"\n\n")
    whole = 0 < end < min(max_line, max_header_block) and buffered[0] != 0x0A
    if whole and b"\r" not in buffered[:end]:
        return fileobj.read(end + 2)[:-1]  # the whole block is buffered: no line by line
    lines: list[bytes] = []
    total = 0
    while True:
        raw = fileobj.readline(max_line + 1)
        if not raw:
            if lines:
                raise FrameError("connection closed in the middle of a header block")
            return None
        total += len(raw)
        if len(raw) > max_line and not raw.endswith(b"\n"):
            raise FrameError(f"header line longer than {max_line} bytes")
        if total > max_header_block:
            raise FrameError(f"header block longer than {max_header_block} bytes")
        if not raw.endswith(b"\n"):
            raise FrameError("connection closed in the middle of a header line")
        if not raw.rstrip(b"\r\n"):
            if lines:
                return b"".join(lines)
            continue
        lines.append(raw)


def _content_length(frame: Frame, max_body: int) -> int:
    value = frame.get("Content-Length")
    if value is None:
        return 0
    text = value.strip()
    if not text.isdigit():
        raise FrameError(f"bad Content-Length {value!r}")
    length = int(text)
    if length > max_body:
        raise FrameError(f"Content-Length {length} exceeds the limit of {max_body}")
    return length


def _read_body(fileobj: BinaryIO, length: int) -> bytes:
    if not length:
        return b""
    body = fileobj.read(length)
    if body is None or len(body) != length:
        raise FrameError("connection closed in the middle of a body")
    return body


def read_frame(
    fileobj: BinaryIO,
    max_body: int = DEFAULT_MAX_BODY,
    max_line: int = DEFAULT_MAX_LINE,
    max_header_block: int = DEFAULT_MAX_HEADER_BLOCK,
) -> Frame | None:
    """Read one message sent by FreeSWITCH. None on a clean EOF; FrameError on garbage.

    Header values are returned as sent (outer headers are not encoded, except in the outbound
    ``connect`` reply: use :meth:`Frame.decoded` there).
    """
    block = _read_block(fileobj, max_line, max_header_block)
    if block is None:
        return None
    frame = _header_block(block, decode=False)
    frame.body = _read_body(fileobj, _content_length(frame, max_body))
    return frame


def read_command(
    fileobj: BinaryIO,
    max_body: int = DEFAULT_MAX_BODY,
    max_line: int = DEFAULT_MAX_LINE,
    max_header_block: int = DEFAULT_MAX_HEADER_BLOCK,
) -> Command | None:
    """Read one message sent by an ESL client: a command line, headers, optional body.

    Like FreeSWITCH, header lines without a colon are ignored.
    """
    block = _read_block(fileobj, max_line, max_header_block)
    if block is None:
        return None
    text = block.decode("utf-8", "surrogateescape")
    lines = [line.rstrip("\r") for line in text.split("\n")[:-1]]
    headers = [_split_header_line(line) for line in lines[1:] if ":" in line]
    body = _read_body(fileobj, _content_length(Frame(headers), max_body))
    return Command(lines[0], headers, body, "\n".join(lines) + "\n\n")


def _split_header_line(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep:
        raise FrameError(f"header line without ':': {line[:80]!r}")
    return name, value.lstrip(" ")


def parse_headers(block: bytes, decode: bool = True) -> Headers:
    """Split a header block into (name, value) pairs, then URL-decode each value."""
    headers: Headers = []
    text = block.decode("utf-8", "surrogateescape")  # a line break is never part of a character
    for line in text.split("\n"):
        if "\r" in line:
            line = line.rstrip("\r")
        if not line:
            continue
        name, value = _split_header_line(line)
        headers.append((name, url_decode(value) if decode and "%" in value else value))
    return headers


class LazyFrame(Frame):
    """A frame whose header block is split (and decoded) only when read.

    FreeSWITCH percent-encodes the values of an event-plain block and of the outbound
    ``connect`` reply: ``:``, space, CR and LF never occur raw inside a value, so each line
    holds exactly one ``": "``, the one after its name. `get` finds ``"\\nname: "`` in the
    lower-cased block and returns that one value, URL-decoded when `decode` (a message has
    50-200 headers and is asked for a handful; one string is kept instead of hundreds). Only a
    block of that canonical shape is kept this way (see `_header_block`); iterating `headers`
    parses it all, once.
    """

    def __init__(self, block: str, body: bytes = b"", decode: bool = True) -> None:
        self._block = "\n" + block
        self._lowered: str | None = None
        self._parsed: Headers | None = None
        self.decode = decode
        self.body = body

    @property  # type: ignore[override]
    def headers(self) -> Headers:
        if self._parsed is None:
            block = self._block.encode("utf-8", "surrogateescape")
            self._parsed = parse_headers(block, self.decode)
        return self._parsed

    def get(self, name: str, default: str | None = None) -> str | None:
        lowered = self._lowered
        if lowered is None:
            lowered = self._lowered = self._block.lower()
        at = lowered.find(f"\n{name.lower()}: ")
        if at < 0:
            return default
        start = at + len(name) + 3
        end = lowered.find("\n", start)
        value = self._block[start:] if end < 0 else self._block[start:end]
        return url_decode(value) if self.decode and "%" in value else value

    def decoded(self) -> Frame:
        if self.decode:
            return self
        twin = copy.copy(self)  # the same block strings, shared; its headers parsed anew
        twin.decode, twin._parsed = True, None
        return twin


def _is_canonical(block: str) -> bool:
    """A block `LazyFrame` can read: ASCII, LF-separated, one ``": "`` per line."""
    return (
        block.isascii()
        and "\r" not in block
        and not block.endswith("\n")
        and block.count(": ") == block.count("\n") + 1
    )


def _header_block(block: bytes, decode: bool) -> Frame:
    """A header block (without its empty line) as a frame: lazy if canonical, else parsed.

    Parsing at once raises FrameError for a line without a colon.
    """
    text = block.decode("utf-8", "surrogateescape").removesuffix("\n")
    if _is_canonical(text):
        return LazyFrame(text, decode=decode)
    return Frame(parse_headers(block, decode))


def parse_event_plain(body: bytes) -> Frame:
    """Parse the body of a ``text/event-plain`` message into a decoded event.

    The event's own body (BACKGROUND_JOB output, a CUSTOM event's body) follows an inner
    ``Content-Length`` and an empty line. A header block in FreeSWITCH's canonical shape is
    read lazily (`LazyFrame`); any other is split and decoded at once.
    """
    block, sep, rest = body.partition(b"\n\n")
    event = _header_block(block, decode=True)
    if sep:
        length = (event.get("Content-Length") or "").strip()
        event.body = rest[: int(length)] if length.isdigit() else rest
    return event


class _Pairs(list):
    """A JSON object's (key, value) pairs, duplicates kept."""


def parse_event_json(body: bytes) -> Frame:
    """Parse the body of a ``text/event-json`` message; duplicate keys are all kept."""
    try:
        pairs = json.loads(body, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"bad JSON event: {exc}") from exc
    if not isinstance(pairs, _Pairs):
        raise FrameError("JSON event is not an object")
    headers: Headers = []
    inner = b""
    for key, value in pairs:
        if key == "_body":
            inner = str(value).encode("utf-8")
        elif isinstance(value, list):
            headers.extend((key, str(item)) for item in value)
        else:
            headers.append((key, str(value)))
    return Frame(headers, inner)


def parse_event_xml(body: bytes) -> Frame:
    """Parse the body of a ``text/event-xml`` message (header values are URL-encoded)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise FrameError(f"bad XML event: {exc}") from exc
    headers_node = root.find("headers")
    if root.tag != "event" or headers_node is None:
        raise FrameError("XML event without <event><headers>")
    headers = [(node.tag, url_decode(node.text or "")) for node in headers_node]
    body_node = root.find("body")
    inner = b""
    if body_node is not None and body_node.text:
        text = body_node.text
        inner = (text[:-2] if text.endswith("\n  ") else text).encode("utf-8")
    return Frame(headers, inner)


def parse_event(frame: Frame) -> Frame:
    """Decode the event carried by an event message of any format."""
    if frame.content_type == "text/event-json":
        return parse_event_json(frame.body)
    if frame.content_type == "text/event-xml":
        return parse_event_xml(frame.body)
    return parse_event_plain(frame.body)


def send_message(sock: socket.socket, data: bytes) -> None:
    """Write all of `data`: like `sendall`, without gevent's `getsockopt` and chunking per call
    (2.5 against 6 µs for a message), since a message nearly always fits in one `send`."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])


def format_frame(headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """Serialise an outer message: headers as given, the empty line, then the body."""
    head = "".join(f"{name}: {value}\n" for name, value in headers)
    return head.encode("utf-8", "surrogateescape") + b"\n" + body


def format_event_plain(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """Serialise an event like switch_event_serialize (values encoded, body after its length)."""
    head = "".join(f"{name}: {url_encode(value)}\n" for name, value in headers)
    if body:
        raw = body.encode("utf-8", "surrogateescape")
        return head.encode("ascii") + f"Content-Length: {len(raw)}\n\n".encode() + raw
    return head.encode("ascii") + b"\n"


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_event_json(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """Serialise an event like switch_event_serialize_json (duplicate names kept, ``_body``)."""
    items = [f"{_json_string(name)}:{_json_string(value)}" for name, value in headers]
    if body:
        raw_len = len(body.encode("utf-8", "surrogateescape"))
        items.append(f'"Content-Length":"{raw_len}"')
        items.append(f'"_body":{_json_string(body)}')
    return ("{" + ",".join(items) + "}").encode("utf-8", "surrogateescape")


def _xml_text(value: str) -> str:
    """switch_xml_ampencode for character data (non-ASCII as ``&#xHEX;``, like toxml does)."""
    out = []
    for ch in value:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "\r":
            out.append("&#xD;")
        elif ord(ch) > 0x7F:
            out.append(f"&#x{ord(ch):X};")
        else:
            out.append(ch)
    return "".join(out)


def format_event_xml(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """Serialise an event like switch_event_xmlize + switch_xml_toxml (values URL-encoded)."""
    lines = ["<event>", "  <headers>"]
    lines += [f"    <{name}>{_xml_text(url_encode(value))}</{name}>" for name, value in headers]
    lines.append("  </headers>")
    if body:
        raw_len = len(body.encode("utf-8", "surrogateescape"))
        lines.append(f"  <Content-Length>{raw_len}</Content-Length>")
        text = _xml_text(body)
        lines.append(f"  <body>{text}{'  ' if text.endswith(chr(10)) else ''}</body>")
    return ("\n".join(lines) + "\n</event>\n").encode("utf-8", "surrogateescape")


def event_message(payload: bytes, fmt: str) -> bytes:
    """Wrap a serialised event in its outer message (Content-Length first, as FreeSWITCH does)."""
    return f"Content-Length: {len(payload)}\nContent-Type: text/event-{fmt}\n\n".encode() + payload
