"""The agent's conversation with the modem: initialisation, the SIM PIN, text mode, direct
delivery (+CMT), modems without AT+CHUP, replies the network refuses, status and metrics."""

from __future__ import annotations

import json
import urllib.request

from gsm_helpers import CALLER, wait_until

from esl_callback.gateway_agent import pdu

INITIALISATION = [
    "> AT",
    "< OK",
    "> ATZ",
    "< OK",
    "> ATE0",
    "< OK",
    "> AT+CMEE=1",
    "< OK",
    "> AT+CPIN?",
    "< +CPIN: SIM PIN",
    "< OK",
    "> AT+CPIN=********",
    "< OK",
    "> AT+CMGF=0",
    "< OK",
    '> AT+CPMS="SM","SM","SM"',
    "< +CPMS: 0,30,0,30,0,30",
    "< OK",
    "> AT+CLIP=1",
    "< OK",
    "> AT+CNMI=2,1,0,0,0",
    "< OK",
    "> AT+CSQ",
    "< +CSQ: 20,99",
    "< OK",
    "> AT+CREG?",
    "< +CREG: 0,1",
    "< OK",
    "> AT+CMGL=4",
    "< OK",
]


def test_initialisation_enters_the_pin_and_sets_pdu_mode_caller_id_and_sms_alerts(rig) -> None:
    r = rig(fake={"pin": "2468"}, modem={"pin": "2468"})

    assert r.modem.transcript[: len(INITIALISATION)] == INITIALISATION
    assert "2468" not in "\n".join(r.transcript + r.modem.transcript)


def test_a_wrong_pin_is_entered_once_only_and_the_error_says_what_to_do(rig) -> None:
    r = rig(fake={"pin": "2468"}, modem={"pin": "1111", "reopen_max_seconds": 0.2}, agent=False)
    r.start_agent()

    status = wait_until(
        lambda: (
            (s := r.snapshot())["modem"]["state"] == "SIM problem"
            and "not trying it again" in (s["last_error"] or "")
            and s
        ),
        "the second initialisation to refuse to try the PIN again",
    )

    assert r.modem.pin_attempts == 2  # one of three used: the SIM is not blocked
    assert [c for c in r.modem.commands if c.upper().startswith("AT+CPIN=")] == ['AT+CPIN="1111"']
    assert "correct it and restart the agent" in status["last_error"]


def test_text_mode_reads_plain_ucs2_and_long_sms_and_replies_in_text(rig, alice) -> None:
    r = rig(modem={"sms_mode": "text"})

    r.modem.receive_sms(f"+{CALLER}", "BAL")
    r.modem.receive_sms(f"+{CALLER}", "HELP ÿ€ Привет", force_ucs2=True)
    r.modem.receive_sms(f"+{CALLER}", "bal " + "y" * 170)  # two 7-bit parts, hex with a header
    sent = r.wait_sent(3)
    wait_until(lambda: not r.modem.storage, "every SMS deleted from the SIM")

    texts = [m.body for m in r.sms_in(CALLER)]
    assert texts == ["BAL", "HELP ÿ€ Привет", "bal " + "y" * 170]
    assert sent[0] == (f"+{CALLER}", "Your balance is 10.00 EUR.")
    assert "> AT+CMGF=1" in r.modem.transcript and "> AT+CSDH=1" in r.modem.transcript
    assert any(line.startswith('> AT+CMGS="+15550001001"') for line in r.modem.transcript)


def test_sms_delivered_without_storing_are_read_from_the_cmt_line(rig, alice) -> None:
    r = rig()

    for part in pdu.deliver_pdus(f"+{CALLER}", "BAL " + "z" * 200, reference=9):
        r.modem.receive_pdu(part, direct=True)

    assert r.wait_sent(1) == [(f"+{CALLER}", "Your balance is 10.00 EUR.")]
    assert r.modem.storage == {}
    (item,) = r.items()
    assert item["text"] == "BAL " + "z" * 200


def test_a_modem_without_chup_rejects_calls_with_ath(rig, alice) -> None:
    r = rig()
    r.modem.fail_next("AT+CHUP", "ERROR")

    r.modem.ring(f"+{CALLER}")
    r.platform.wait_request(lambda req: True)
    r.modem.ring("+15550001009")  # another caller: a second call
    wait_until(lambda: len(r.platform.requests()) == 2, "the second call reported")

    assert r.modem.hangups == 2
    hangups = [c for c in r.modem.commands if c in ("AT+CHUP", "ATH")]
    assert hangups == ["AT+CHUP", "ATH", "ATH"]


def test_a_reply_the_network_refuses_is_sent_again_later(rig, alice) -> None:
    r = rig()
    r.modem.fail_next("AT+CMGS", "+CMS ERROR: 332")  # network timeout

    (index,) = r.modem.receive_sms(f"+{CALLER}", "BAL")
    sent = r.wait_sent(1)

    assert sent == [(f"+{CALLER}", "Your balance is 10.00 EUR.")]
    assert [c for c in r.modem.commands if c.startswith("AT+CMGS")] == ["AT+CMGS=37"] * 2
    assert index not in r.modem.storage
    (item,) = r.items()
    assert (item["reply_state"], item["reply_attempts"]) == ("sent", 2)


def test_status_and_metrics_show_signal_registration_queue_and_last_error(rig, alice) -> None:
    r = rig()
    r.modem.signal, r.modem.registration = 15, 5
    r.platform.service.web_server.stop(timeout=1)
    r.modem.ring(f"+{CALLER}")
    base = f"http://127.0.0.1:{r.agent.status_server.port}"
    wait_until(
        lambda: (
            r.snapshot()["queue"]["queue_length"] == 1
            and r.snapshot()["modem"]["signal_rssi"] == 15
        ),
        "the poll",
    )

    with urllib.request.urlopen(f"{base}/status", timeout=5) as page:
        status = json.loads(page.read())
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as page:
        metrics = page.read().decode()

    assert status["modem"] == {
        "state": "ready",
        "signal_rssi": 15,
        "signal_dbm": -83,
        "registration": "roaming",
        "registered": True,
    }
    assert status["queue"]["queue_length"] == 1
    assert "not reached" in status["last_error"]
    for line in (
        "esl_callback_agent_modem_ready 1.0",
        "esl_callback_agent_signal_dbm -83.0",
        "esl_callback_agent_registered 1.0",
        "esl_callback_agent_queue_length 1.0",
        "esl_callback_agent_platform_reachable 0.0",
        "esl_callback_agent_calls_total 1.0",
    ):
        assert line in metrics.splitlines(), line


def test_in_text_mode_an_sms_saying_ring_is_text_not_a_call(rig, alice) -> None:
    r = rig(modem={"sms_mode": "text"})

    r.modem.receive_sms(f"+{CALLER}", "RING")
    r.wait_sent(1)

    assert [m.body for m in r.sms_in(CALLER)] == ["RING"]
    assert r.modem.hangups == 0 and r.gateway_requests() == []


def test_a_delete_the_modem_refuses_is_done_at_a_later_poll_without_a_reset(rig, alice) -> None:
    r = rig()
    r.modem.fail_next("AT+CMGD", "+CMS ERROR: 500")

    (index,) = r.modem.receive_sms(f"+{CALLER}", "BAL")
    r.wait_sent(1)
    wait_until(lambda: index not in r.modem.storage, "the SMS deleted at a later poll")

    assert [c for c in r.modem.commands if c.startswith("AT+CMGD")] == [f"AT+CMGD={index}"] * 2
    assert r.snapshot()["counts"]["modem_resets"] == 0
    assert r.modem.transcript.count("> ATZ") == 1
