"""Received SMS as the modem shows them, in PDU mode or text mode, read into `Part`s.

Each part has a `key`: a hash of what the network delivered (the TPDU in PDU mode, the header
fields and data in text mode). Reading the same message again (after a restart, from the SIM
listing) gives the same key, and the joined message's id (`message_id`) is made from its parts'
keys: so a message posted twice is the same `message_id`, which the platform acts on once.

Text mode (AT+CMGF=1 with AT+CSDH=1, 27.005 section 3.1): the header gives <fo> and <dcs>; data
in UCS2, 8-bit, or with a user data header (a part of a long message) comes as hex and is read
like a PDU's user data. Plain 7-bit text comes in the TE character set (IRA, i.e. ASCII: a
character outside it is lost by the modem, not here; PDU mode, the default, has no such loss).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from esl_callback.gateway_agent import pdu

_FIELD = re.compile(r'\s*("(?:[^"]*)"|[^,]*)\s*(?:,|$)')


@dataclass(frozen=True)
class Part:
    """One received SMS, or one part of a long one."""

    key: str
    sender: str
    text: str
    concat: pdu.Concat | None
    sim_index: int | None


def fields(text: str) -> list[str]:
    """The comma-separated parameters of an AT response line, quotes removed
    (`"REC READ","+1555",,"24/01/02,10:00:00+00"` has four)."""
    found = []
    position = 0
    while position <= len(text):
        match = _FIELD.match(text, position)
        if match is None or match.end() == position:
            break
        found.append(match.group(1).strip().strip('"'))
        position = match.end()
        if position == len(text) and text.endswith(","):
            found.append("")
            break
    return found


def _key(*pieces: str) -> str:
    return hashlib.sha256("\x00".join(pieces).encode("utf-8", "surrogatepass")).hexdigest()


def from_pdu(hex_pdu: str, sim_index: int | None) -> Part:
    """A part from a PDU line (raises pdu.PduError when it is malformed)."""
    deliver = pdu.decode_deliver(hex_pdu)
    return Part(_key("pdu", deliver.tpdu), deliver.sender, deliver.text, deliver.concat, sim_index)


def from_text(header: list[str], data: str, sim_index: int | None) -> Part:
    """A part from text mode: `header` the fields after <stat> (`<oa>,[<alpha>],<scts>` and,
    with AT+CSDH=1, `<tooa>,<fo>,<pid>,<dcs>,...`), `data` its data line(s)."""
    if len(header) < 3 or not header[0]:
        raise pdu.PduError(f"text-mode header without a sender: {','.join(header)[:60]!r}")
    sender = header[0]
    first = _integer(header, 4)
    dcs = _integer(header, 6)
    text, concat = data, None
    coded = dcs is not None and pdu.alphabet(dcs) != pdu.GSM7
    if (first is not None and first & 0x40) or coded:
        try:
            octets = bytes.fromhex(data.strip())
        except ValueError:
            raise pdu.PduError(f"text-mode data should be hex here: {data[:40]!r}") from None
        text, concat = _hex_user_data(octets, dcs or 0, bool(first and first & 0x40))
    key = _key("text", *header, data)
    return Part(key, sender, text, concat, sim_index)


def _integer(header: list[str], index: int) -> int | None:
    if index < len(header) and header[index].isdigit():
        return int(header[index])
    return None


def _hex_user_data(octets: bytes, dcs: int, has_header: bool) -> tuple[str, pdu.Concat | None]:
    """User data given as hex in text mode: TP-UDL is not given, so it is read off the data
    (a 7-bit septet that is all fill is dropped)."""
    if pdu.alphabet(dcs) != pdu.GSM7:
        return pdu.decode_user_data(octets, len(octets), dcs, has_header)
    septets = len(octets) * 8 // 7
    text, concat = pdu.decode_user_data(octets, septets, dcs, has_header)
    if len(octets) % 7 == 0 and text[-1:] in ("@", "\r"):  # 7 spare bits: fill, or CR (23.038)
        text = text[:-1]
    return text, concat


def message_id(part_keys: list[str]) -> str:
    """The id the platform gets for a message made of these parts: stable across re-reads."""
    return "sms-" + _key(*sorted(part_keys))[:40]
