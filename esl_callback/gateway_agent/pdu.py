"""SMS PDUs (3GPP TS 23.040) and their alphabets (TS 23.038).

Received messages are SMS-DELIVER PDUs (`decode_deliver`); replies go out as SMS-SUBMIT PDUs
(`submit_pdus`). The user data is in the GSM 7-bit default alphabet (with its extension table,
reached by the escape 0x1B: `{ } [ ] ~ \\ ^ | €`), in UCS2 (UTF-16 big-endian, so characters
beyond the BMP come as surrogate pairs) or 8-bit data. A long message comes in parts, each with a
user data header (UDH) holding a concatenation element: IEI 00 (8-bit reference) or IEI 08
(16-bit reference), with the part count and the part's number.

Anything that does not add up (lengths, nibbles, a header longer than the data) raises
`PduError`, saying what: a malformed PDU is reported, never half-read.

`deliver_pdus` and `decode_submit` are the other direction, for the simulated modem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ESCAPE = 0x1B
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_BASIC_CODE = {char: code for code, char in enumerate(GSM7_BASIC) if code != ESCAPE}
_EXTENSION_CODE = {char: code for code, char in GSM7_EXTENSION.items()}

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08
GSM7, DATA8, UCS2 = "gsm7", "8bit", "ucs2"
SINGLE_LIMIT = {GSM7: 160, UCS2: 70}  # septets / UTF-16 units in one SMS
PART_LIMIT = {GSM7: 153, UCS2: 67}  # the same with a 6-octet concatenation header
MAX_PARTS = 255

assert len(GSM7_BASIC) == 128


class PduError(ValueError):
    """The PDU is malformed; the message says where."""


@dataclass(frozen=True)
class Concat:
    """The concatenation element of a part: which long message, how many parts, which one."""

    reference: int
    total: int
    number: int


@dataclass(frozen=True)
class Deliver:
    """A received SMS (one part of a long one when `concat` is set)."""

    sender: str  # "+15550001001" for an international number, else as sent (digits or a name)
    timestamp: str  # the service centre's time stamp, "2024-01-02T10:00:00+01:00"
    text: str
    concat: Concat | None
    tpdu: str  # the TPDU in upper-case hex, service centre address left out: the part's identity


@dataclass(frozen=True)
class Submit:
    """An SMS-SUBMIT as the simulated modem reads it."""

    number: str
    text: str
    concat: Concat | None


# --- the GSM 7-bit alphabet ------------------------------------------------------------------


def gsm7_codes(text: str) -> list[int] | None:
    """The septets of `text` (extension characters as escape + code), or None if a character
    is not in the alphabet."""
    codes: list[int] = []
    for char in text:
        if char in _BASIC_CODE:
            codes.append(_BASIC_CODE[char])
        elif char in _EXTENSION_CODE:
            codes += [ESCAPE, _EXTENSION_CODE[char]]
        else:
            return None
    return codes


def gsm7_text(codes: list[int]) -> str:
    """The text of septets; an unknown extension code reads as its basic character (23.038)."""
    chars: list[str] = []
    escaped = False
    for code in codes:
        if escaped:
            chars.append(GSM7_EXTENSION.get(code, GSM7_BASIC[code] if code != ESCAPE else " "))
            escaped = False
        elif code == ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC[code])
    return "".join(chars)


def pack_septets(codes: list[int], header: bytes = b"") -> bytes:
    """`header` octets, fill bits to the next septet boundary, then the septets, packed."""
    skip = septets_for(len(header))
    value = int.from_bytes(header, "little")
    for index, code in enumerate(codes):
        value |= code << (7 * (skip + index))
    return value.to_bytes(math.ceil((skip + len(codes)) * 7 / 8), "little")


def unpack_septets(octets: bytes, count: int, header_octets: int = 0) -> list[int]:
    """The septets after a header of `header_octets` (and its fill bits); `count` includes the
    header's septets, as TP-UDL does."""
    skip = septets_for(header_octets)
    if count < skip:
        raise PduError(f"user data length {count} septets is shorter than its header")
    if math.ceil(count * 7 / 8) > len(octets):
        raise PduError(
            f"user data length {count} septets needs {math.ceil(count * 7 / 8)} octets, "
            f"the PDU has {len(octets)}"
        )
    value = int.from_bytes(octets, "little")
    return [(value >> (7 * index)) & 0x7F for index in range(skip, count)]


def septets_for(octets: int) -> int:
    """How many septets `octets` take in 7-bit user data (a header and its fill bits)."""
    return math.ceil(octets * 8 / 7)


# --- user data -------------------------------------------------------------------------------


def alphabet(dcs: int) -> str:
    """The alphabet a data coding scheme (TS 23.038 section 4) names."""
    group = dcs >> 4
    if group <= 0b0111:  # general data coding (00xx) and automatic deletion (01xx)
        if dcs & 0x20:
            raise PduError(f"data coding scheme {dcs:#04x}: compressed text is not supported")
        return {0: GSM7, 1: DATA8, 2: UCS2}.get((dcs >> 2) & 0x03, GSM7)
    if group in (0b1100, 0b1101):  # message waiting indication, 7-bit text
        return GSM7
    if group == 0b1110:  # message waiting indication, UCS2 text
        return UCS2
    if group == 0b1111:  # data coding / message class
        return DATA8 if dcs & 0x04 else GSM7
    raise PduError(f"data coding scheme {dcs:#04x} is reserved")


def parse_header(header: bytes) -> Concat | None:
    """The concatenation element of a user data header (other elements are skipped)."""
    found: Concat | None = None
    position = 0
    while position < len(header):
        if position + 2 > len(header):
            raise PduError("user data header ends inside an element")
        iei, length = header[position], header[position + 1]
        data = header[position + 2 : position + 2 + length]
        if len(data) != length:
            raise PduError(f"user data header element {iei:#04x} is cut short")
        if iei in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT):
            size = 3 if iei == IEI_CONCAT_8BIT else 4
            if length != size:
                raise PduError(f"concatenation element {iei:#04x} has length {length}")
            reference = data[0] if size == 3 else int.from_bytes(data[:2], "big")
            total, number = data[-2], data[-1]
            if total == 0 or not 1 <= number <= total:
                raise PduError(f"concatenation part {number} of {total}")
            found = Concat(reference, total, number)
        position += 2 + length
    return found


def decode_user_data(
    octets: bytes, length: int, dcs: int, has_header: bool
) -> tuple[str, Concat | None]:
    """The text and concatenation element of TP-UD (`length` is TP-UDL: septets for 7-bit
    text, octets otherwise)."""
    coding = alphabet(dcs)
    header_octets, concat = 0, None
    if has_header:
        if not octets:
            raise PduError("user data header indicated but there is no user data")
        header_octets = octets[0] + 1
        if header_octets > len(octets):
            raise PduError(f"user data header of {header_octets} octets is longer than the data")
        concat = parse_header(octets[1:header_octets])
    if coding == GSM7:
        return gsm7_text(unpack_septets(octets, length, header_octets)), concat
    if length > len(octets):
        raise PduError(f"user data length {length} octets, the PDU has {len(octets)}")
    body = octets[header_octets:length]
    if coding == UCS2:
        if len(body) % 2:
            raise PduError("UCS2 text of an odd number of octets")
        return body.decode("utf-16-be", "replace"), concat
    return body.decode("latin-1"), concat  # 8-bit data: shown octet by octet


# --- addresses and time stamps ---------------------------------------------------------------

_BCD = "0123456789*#abc"


def decode_semi_octets(octets: bytes, digits: int) -> str:
    text = "".join(_BCD[o & 0x0F] + (_BCD[o >> 4] if o >> 4 != 0xF else "") for o in octets)
    if len(text) < digits:
        raise PduError(f"address of {digits} digits holds {len(text)}")
    return text[:digits]


def encode_semi_octets(digits: str) -> bytes:
    padded = digits + ("F" if len(digits) % 2 else "")
    return bytes.fromhex("".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2)))


def _read_address(pdu: bytes, position: int) -> tuple[str, int]:
    """The originating / destination address at `position`, and the position after it."""
    if position + 2 > len(pdu):
        raise PduError("the PDU ends before the address")
    digits, kind = pdu[position], pdu[position + 1]
    size = math.ceil(digits / 2)
    field = pdu[position + 2 : position + 2 + size]
    if len(field) != size:
        raise PduError(f"address of {digits} digits is cut short")
    if (kind >> 4) & 0x07 == 0b101:  # alphanumeric, 7-bit packed ("MyBank")
        text = gsm7_text(unpack_septets(field, digits * 4 // 7))
    else:
        text = decode_semi_octets(field, digits)
        if (kind >> 4) & 0x07 == 0b001:  # international
            text = "+" + text
    return text, position + 2 + size


def encode_address(number: str) -> bytes:
    """An address field for digits, "+" for an international number."""
    digits = number.removeprefix("+")
    if not digits or not digits.isdigit():
        raise PduError(f"cannot address {number!r}: digits expected")
    kind = 0x91 if number.startswith("+") else 0x81
    return bytes([len(digits), kind]) + encode_semi_octets(digits)


def decode_timestamp(octets: bytes) -> str:
    """A TP-SCTS as ISO 8601; the raw semi-octets when they are not a time."""
    fields = [
        int(f"{o & 0x0F}{o >> 4}") if (o & 0x0F) < 10 and (o >> 4) < 10 else -1 for o in octets[:6]
    ]
    zone_octet = octets[6]
    zone_digits = ((zone_octet & 0x07) * 10) + (zone_octet >> 4)
    if -1 in fields or (zone_octet >> 4) > 9:
        return octets.hex().upper()
    minutes = zone_digits * 15 * (-1 if zone_octet & 0x08 else 1)
    year, month, day, hour, minute, second = fields
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"20{year:02d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{zone}"


def encode_timestamp(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bytes:
    """A TP-SCTS in UTC."""
    values = (year % 100, month, day, hour, minute, second, 0)
    return bytes(((v % 10) << 4) | (v // 10) for v in values)


# --- SMS-DELIVER -----------------------------------------------------------------------------


def _octets(hex_text: str) -> bytes:
    text = hex_text.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise PduError(f"not hexadecimal: {text[:40]!r}") from None


def decode_deliver(hex_pdu: str, *, with_sca: bool = True) -> Deliver:
    """An SMS-DELIVER as AT+CMGR / +CMGL / +CMT give it in PDU mode (the service centre
    address first, unless `with_sca` is False)."""
    pdu = _octets(hex_pdu)
    if with_sca:
        if not pdu:
            raise PduError("empty PDU")
        pdu = pdu[1 + pdu[0] :]
    if not pdu:
        raise PduError("the PDU ends after the service centre address")
    first = pdu[0]
    if first & 0x03 != 0b00:
        raise PduError(f"not an SMS-DELIVER (message type {first & 0x03})")
    sender, position = _read_address(pdu, 1)
    if position + 10 > len(pdu):
        raise PduError("the PDU ends before the user data")
    dcs = pdu[position + 1]
    timestamp = decode_timestamp(pdu[position + 2 : position + 9])
    length = pdu[position + 9]
    text, concat = decode_user_data(pdu[position + 10 :], length, dcs, bool(first & 0x40))
    return Deliver(sender, timestamp, text, concat, pdu.hex().upper())


def deliver_pdus(
    sender: str,
    text: str,
    *,
    reference: int = 0,
    wide_reference: bool = False,
    when: tuple[int, int, int, int, int, int] = (24, 1, 2, 10, 0, 0),
    force_ucs2: bool = False,
) -> list[str]:
    """The SMS-DELIVER PDUs (with a service centre address) a network delivers `text` in."""
    coding, parts = split_text(text, force_ucs2=force_ucs2, wide_reference=wide_reference)
    sca = bytes([7, 0x91]) + encode_semi_octets("15550000000")
    stamp = encode_timestamp(*when)
    pdus = []
    for number, part in enumerate(parts, 1):
        header = (
            _concat_header(reference, len(parts), number, wide_reference) if len(parts) > 1 else b""
        )
        user_data, length = _user_data(part, coding, header)
        first = 0x04 | (0x40 if header else 0)  # no more messages to send; UDHI
        tpdu = (
            bytes([first])
            + encode_address(sender)
            + bytes([0, 0x08 if coding == UCS2 else 0x00])
            + stamp
            + bytes([length])
            + user_data
        )
        pdus.append((sca + tpdu).hex().upper())
    return pdus


# --- SMS-SUBMIT ------------------------------------------------------------------------------


def split_text(
    text: str, *, force_ucs2: bool = False, wide_reference: bool = False
) -> tuple[str, list[str]]:
    """The alphabet for `text` and its parts: one SMS if it fits, else parts that fit beside a
    concatenation header (an escape pair or a surrogate pair is never cut)."""
    coding = GSM7 if not force_ucs2 and gsm7_codes(text) is not None else UCS2
    size = _gsm7_size if coding == GSM7 else _utf16_size
    if size(text) <= SINGLE_LIMIT[coding]:
        return coding, [text]
    limit = PART_LIMIT[coding] - (1 if wide_reference else 0)  # a 7-octet header
    parts, current = [], ""
    for char in text:
        if size(current + char) > limit:
            parts.append(current)
            current = ""
        current += char
    parts.append(current)
    if len(parts) > MAX_PARTS:
        raise PduError(f"text of {len(text)} characters needs more than {MAX_PARTS} SMS")
    return coding, parts


def _gsm7_size(text: str) -> int:
    return len(gsm7_codes(text) or [])


def _utf16_size(text: str) -> int:
    return len(text.encode("utf-16-be")) // 2


def _concat_header(reference: int, total: int, number: int, wide: bool) -> bytes:
    if wide:
        element = bytes([IEI_CONCAT_16BIT, 4]) + (reference & 0xFFFF).to_bytes(2, "big")
    else:
        element = bytes([IEI_CONCAT_8BIT, 3, reference & 0xFF])
    element += bytes([total, number])
    return bytes([len(element)]) + element


def _user_data(text: str, coding: str, header: bytes) -> tuple[bytes, int]:
    """TP-UD and TP-UDL for one part."""
    if coding == GSM7:
        codes = gsm7_codes(text) or []
        return pack_septets(codes, header), septets_for(len(header)) + len(codes)
    data = header + text.encode("utf-16-be")
    return data, len(data)


def submit_pdus(number: str, text: str, reference: int) -> list[tuple[int, str]]:
    """The SMS-SUBMIT PDUs for `text` to `number`: (TPDU length for AT+CMGS, hex with an empty
    service centre address, so the SIM's is used). `reference` tells the parts of one long
    message from another's."""
    coding, parts = split_text(text)
    pdus = []
    for index, part in enumerate(parts, 1):
        header = _concat_header(reference, len(parts), index, False) if len(parts) > 1 else b""
        user_data, length = _user_data(part, coding, header)
        first = 0x11 | (0x40 if header else 0)  # SMS-SUBMIT, relative validity period, UDHI
        tpdu = (
            bytes([first, 0])  # message reference: the modem sets it
            + encode_address(number)
            + bytes([0, 0x08 if coding == UCS2 else 0x00, 0xAA])  # PID, DCS, VP 4 days
            + bytes([length])
            + user_data
        )
        pdus.append((len(tpdu), (b"\x00" + tpdu).hex().upper()))
    return pdus


def decode_submit(hex_pdu: str) -> Submit:
    """An SMS-SUBMIT as a modem receives it after AT+CMGS (service centre address first)."""
    pdu = _octets(hex_pdu)
    if not pdu:
        raise PduError("empty PDU")
    pdu = pdu[1 + pdu[0] :]
    if len(pdu) < 2 or pdu[0] & 0x03 != 0b01:
        raise PduError("not an SMS-SUBMIT")
    first = pdu[0]
    number, position = _read_address(pdu, 2)
    dcs = pdu[position + 1]
    position += 2
    validity = (first >> 3) & 0x03
    position += {0: 0, 2: 1}.get(validity, 7)
    if position >= len(pdu):
        raise PduError("the PDU ends before the user data")
    length = pdu[position]
    text, concat = decode_user_data(pdu[position + 1 :], length, dcs, bool(first & 0x40))
    return Submit(number, text, concat)
