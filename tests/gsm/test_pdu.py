"""SMS PDUs and text-mode data, against published examples and against each other."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esl_callback.gateway_agent import pdu, texts

# Widely published SMS-DELIVER examples (7-bit default alphabet, no header).
PUBLISHED = [
    (
        "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        "27838890001",
        "hellohello",
    ),
    (
        "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
        "+31641600986",
        "How are you?",
    ),
]


@pytest.mark.parametrize(("hex_pdu", "sender", "text"), PUBLISHED)
def test_published_deliver_pdus_decode_to_their_sender_and_text(hex_pdu, sender, text) -> None:
    message = pdu.decode_deliver(hex_pdu)

    assert (message.sender, message.text, message.concat) == (sender, text, None)


def test_the_extension_table_and_the_national_characters_of_the_default_alphabet() -> None:
    text = "{[~]}|\\^€ äöüÄÖÜß@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæÉ¡§¿ñÑà"
    (hex_pdu,) = pdu.deliver_pdus("+4930123", text)

    assert pdu.decode_deliver(hex_pdu).text == text
    assert pdu.alphabet(int(hex_pdu[42:44], 16)) == pdu.GSM7  # it fits: no UCS2 needed


def test_an_unknown_extension_code_reads_as_its_basic_character() -> None:
    assert pdu.gsm7_text([pdu.ESCAPE, 0x41, 0x42]) == "AB"


def test_ucs2_with_characters_beyond_the_bmp() -> None:
    (hex_pdu,) = pdu.deliver_pdus("+4930123", "Grüße 😀 مرحبا")

    assert pdu.decode_deliver(hex_pdu).text == "Grüße 😀 مرحبا"


@pytest.mark.parametrize("wide", [False, True])
def test_the_parts_of_a_long_message_carry_their_concatenation_element(wide) -> None:
    parts = pdu.deliver_pdus("+4930123", "0123456789" * 40, reference=300, wide_reference=wide)
    decoded = [pdu.decode_deliver(p) for p in parts]

    assert [d.concat for d in decoded] == [
        pdu.Concat(300 if wide else 300 % 256, 3, n) for n in (1, 2, 3)
    ]
    assert "".join(d.text for d in decoded) == "0123456789" * 40
    assert max(len(d.text) for d in decoded) == (152 if wide else 153)


@given(st.text(max_size=400))
def test_any_text_survives_submit_then_deliver_in_parts(text) -> None:
    sent = [pdu.decode_submit(hex_pdu) for _, hex_pdu in pdu.submit_pdus("+4930123", text, 7)]
    joined = "".join(message.text for message in sent)

    assert joined == text
    assert all(message.number == "+4930123" for message in sent)
    if len(sent) > 1:
        assert [m.concat.number for m in sent] == list(range(1, len(sent) + 1))


def test_submit_lengths_are_what_at_cmgs_needs() -> None:
    ((length, hex_pdu),) = pdu.submit_pdus("+15550001001", "Your balance is 10.00 EUR.", 1)

    assert length == len(bytes.fromhex(hex_pdu)) - 1  # the empty service centre octet left out
    assert hex_pdu.startswith("0011000B915155001000F10000AA")


@pytest.mark.parametrize(
    ("hex_pdu", "problem"),
    [
        ("", "empty PDU"),
        ("0791", "ends after the service centre address"),
        ("07917283010010F5040BC8723888", "address of 11 digits is cut short"),
        ("07917283010010F5040BC87238880900F1000099309251619580", "ends before the user data"),
        ("07917283010010F5040BC87238880900F10000993092516195800AE8329B", "needs 9 octets"),
        ("07917283010010F5440BC87238880900F10000993092516195800A09", "longer than the data"),
        ("07917283010010F5010BC87238880900F1000099309251619580", "not an SMS-DELIVER"),
        ("0791ZZ", "not hexadecimal"),
        ("07917283010010F5040BC87238880900F10024993092516195800AE8329BFD4697D9EC37", "compressed"),
    ],
)
def test_malformed_pdus_are_refused_saying_what_is_wrong(hex_pdu, problem) -> None:
    with pytest.raises(pdu.PduError, match=problem):
        pdu.decode_deliver(hex_pdu)


def test_text_mode_parts_read_plain_text_ucs2_hex_and_hex_with_a_header() -> None:
    plain = texts.from_text(
        ["+4930123", "", "24/01/02,10:00:00+04", "145", "4", "0", "0"], "BAL", 3
    )
    ucs2 = texts.from_text(["+4930123", "", "x", "145", "4", "0", "8"], "00480069002004410020", 4)
    header = "050003070201"  # part 1 of 2 of message 7, UCS2
    part = texts.from_text(["+4930123", "", "x", "145", "68", "0", "8"], header + "00410042", None)

    assert (plain.sender, plain.text, plain.sim_index) == ("+4930123", "BAL", 3)
    assert ucs2.text == "Hi \u0441 "  # a Cyrillic es
    assert (part.text, part.concat) == ("AB", pdu.Concat(7, 2, 1))


def test_the_same_message_read_twice_has_the_same_id_and_another_message_another() -> None:
    first, second = pdu.deliver_pdus("+4930123", "x" * 200, reference=1)
    again = texts.from_pdu(first, 5)
    other = texts.from_pdu(pdu.deliver_pdus("+4930123", "x" * 200, reference=2)[0], 5)

    assert texts.from_pdu(first, 1).key == again.key != other.key
    keys = [texts.from_pdu(p, None).key for p in (first, second)]
    assert texts.message_id(keys) == texts.message_id(list(reversed(keys)))


def test_at_response_fields_keep_quoted_commas() -> None:
    line = '"REC UNREAD","+4930123",,"24/01/02,10:00:00+04",145,4'

    assert texts.fields(line) == ["REC UNREAD", "+4930123", "", "24/01/02,10:00:00+04", "145", "4"]
