"""Nothing lost: the platform down, answers lost on the way, the modem unplugged or stuck, the
agent away while SMS arrive, garbage and malformed PDUs from the modem."""

from __future__ import annotations

import dataclasses
import json

import gevent
import gevent.socket
from gevent.server import StreamServer
from gsm_helpers import CALLER, FRIEND, wait_until

from esl_callback.gateway_agent import pdu
from esl_callback.web.server import serve_web

TALKS = {"answer_after": 0.3, "hangup_after": 1}
ANSWERS = {"answer_after": 0.3, "keys": [{"after": 0.8, "digits": f"{FRIEND}#"}]}


def test_while_the_platform_is_down_requests_wait_and_are_delivered_once_it_is_back(
    rig, alice
) -> None:
    r = rig({CALLER: ANSWERS, FRIEND: TALKS})
    web = r.platform.service.web_server
    port = web.server_port
    web.stop(timeout=1)

    r.modem.ring(f"+{CALLER}")
    (index,) = r.modem.receive_sms(f"+{CALLER}", "BAL")
    down = wait_until(
        lambda: (
            (s := r.snapshot())["queue"]["queue_length"] == 2
            and s["counts"]["delivery_failures"] >= 3
            and s
        ),
        "both requests queued and retried",
    )
    assert down["platform_reachable"] is False
    assert "not reached" in down["last_error"]
    assert index in r.modem.storage  # kept on the SIM until the platform has it

    r.platform.service.web_server = serve_web(web.application, "127.0.0.1", port)
    r.wait_queue_empty()
    request = r.platform.wait_request()
    r.wait_sent(1)
    wait_until(lambda: index not in r.modem.storage, "the SMS deleted from the SIM")

    assert [x.id for x in r.gateway_requests()] == [request.id]  # once
    assert request.state == "completed"
    assert len(r.sms_in(CALLER)) == 1
    assert r.modem.sent_messages() == [(f"+{CALLER}", "Your balance is 10.00 EUR.")]
    assert [(i["kind"], i["state"]) for i in r.items()] == [
        ("call", "delivered"),
        ("sms", "delivered"),
    ]
    call, sms = r.items()  # in order: the SMS waited behind the call
    assert (call["attempts"] >= 3, sms["attempts"]) == (True, 1)


class AnswerEater:
    """A relay in front of the platform that forwards requests but loses the first answers
    (the connection closes after the platform did the work): the agent must retry, and the
    platform must act once."""

    def __init__(self, target_port: int, lose: int) -> None:
        self.target_port = target_port
        self.lose = lose
        self.forwarded = 0
        self.server = StreamServer(("127.0.0.1", 0), self.relay)
        self.server.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def relay(self, client, _address) -> None:
        upstream = gevent.socket.create_connection(("127.0.0.1", self.target_port))
        request = b""
        while b"\r\n\r\n" not in request:
            request += client.recv(65536)
        head, _, body = request.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        while len(body) < length:
            body += client.recv(65536)
        upstream.sendall(head + b"\r\n\r\n" + body)
        answer = b""
        while chunk := upstream.recv(65536):
            answer += chunk
        upstream.close()
        self.forwarded += 1
        if self.lose > 0:
            self.lose -= 1
        else:
            client.sendall(answer)
        client.close()


def test_a_request_whose_answer_was_lost_is_retried_and_acted_on_once(rig, alice) -> None:
    r = rig({CALLER: ANSWERS, FRIEND: TALKS}, agent=False)
    eater = AnswerEater(r.platform.web_port, lose=4)
    platform = dataclasses.replace(r.settings.platform, url=eater.url)
    r.settings = dataclasses.replace(r.settings, platform=platform)
    r.start_agent()
    r.wait_ready()

    r.modem.ring(f"+{CALLER}")
    r.modem.receive_sms(f"+{CALLER}", "BAL")
    r.wait_queue_empty()
    request = r.platform.wait_request()
    r.wait_sent(1)

    assert eater.forwarded == 6  # the call four times in vain, then once more; the SMS once
    assert [x.id for x in r.gateway_requests()] == [request.id]
    assert request.state == "completed"
    assert len(r.sms_in(CALLER)) == 1
    call, sms = r.items()
    assert (call["attempts"], json.loads(call["answer"])["duplicate"]) == (5, True)
    assert (sms["attempts"], json.loads(sms["answer"])["duplicate"]) == (1, False)
    assert r.modem.sent_messages() == [(f"+{CALLER}", "Your balance is 10.00 EUR.")]


def test_an_unplugged_modem_is_opened_again_when_it_is_back(rig, alice) -> None:
    r = rig({CALLER: ANSWERS, FRIEND: TALKS})

    r.modem.unplug()
    gone = wait_until(
        lambda: (s := r.snapshot())["modem"]["state"] != "ready" and s["last_error"] and s,
        "the agent to notice",
    )
    r.modem.plug()
    r.wait_ready()
    r.modem.ring(f"+{CALLER}")
    request = r.platform.wait_request()

    assert "modem port" in gone["last_error"] and "failed" in gone["last_error"]
    assert request.state == "completed" and r.modem.hangups == 1


def test_sms_that_arrived_while_the_agent_was_away_are_read_from_the_sim(rig, alice) -> None:
    r = rig()
    r.stop_agent()

    first = r.modem.receive_sms(f"+{CALLER}", "BAL")
    long = r.modem.receive_sms(f"+{CALLER}", "HELP " + "x" * 200)
    r.start_agent()
    sent = r.wait_sent(2)

    assert [to for to, _ in sent] == [f"+{CALLER}"] * 2
    assert sent[0][1] == "Your balance is 10.00 EUR."
    wait_until(lambda: not r.modem.storage, f"SIM indexes {first + long} deleted")


def test_a_modem_that_stops_answering_is_reset_and_initialised_again(rig, alice) -> None:
    r = rig(
        {CALLER: ANSWERS, FRIEND: TALKS},
        fake={"reply_delay": 0.05},
        modem={"command_timeout_seconds": 1, "poll_seconds": 1},
    )

    r.modem.hang()
    stuck = wait_until(lambda: (s := r.snapshot())["counts"]["modem_resets"] >= 1 and s, "a reset")
    r.modem.unhang()
    r.wait_ready()
    r.modem.ring(f"+{CALLER}")
    request = r.platform.wait_request()

    assert "stopped answering" in stuck["last_error"]
    assert request.state == "completed"
    inits = [line for line in r.modem.transcript if line == "> ATZ"]
    assert len(inits) >= 2  # initialised again after the reset


def test_what_is_queued_when_the_agent_stops_is_delivered_by_the_next_start(rig, alice) -> None:
    r = rig({CALLER: ANSWERS, FRIEND: TALKS})
    web = r.platform.service.web_server
    web.stop(timeout=1)
    r.modem.ring(f"+{CALLER}")
    wait_until(lambda: r.snapshot()["counts"]["delivery_failures"] >= 1, "a failed delivery")
    r.stop_agent()

    r.platform.service.web_server = serve_web(web.application, "127.0.0.1", web.server_port)
    r.start_agent()
    r.wait_queue_empty()
    request = r.platform.wait_request()

    assert request.state == "completed"
    assert len(r.gateway_requests()) == 1
    (item,) = r.items()
    assert (item["kind"], item["state"], item["attempts"] >= 2) == ("call", "delivered", True)


def test_garbage_and_malformed_pdus_are_logged_and_nothing_else_is_lost(rig, alice, caplog) -> None:
    r = rig(fake={"reply_delay": 0.1})
    good = pdu.deliver_pdus(f"+{CALLER}", "BAL")[0]
    cut_short = good[:-10]
    not_hex = "07911326040000F0040B9113466100ZZ"

    r.modem.send_raw(b"\r\n\x00\xff\xfe garbage \x1b[0m\r\n+WEIRD: 1\r\n")
    bad_index = r.modem.receive_pdu(cut_short)
    r.modem.receive_pdu(not_hex, direct=True)
    r.modem.inside_next_answer.append(
        f'\r\nRING\r\n\r\n+CLIP: "+{CALLER}",145,"",,"",0\r\n'.encode()
    )
    good_index = r.modem.receive_pdu(good)
    r.wait_sent(1)
    request = r.platform.wait_request()
    wait_until(lambda: good_index not in r.modem.storage, "the good SMS deleted from the SIM")

    status = r.snapshot()
    assert status["queue"]["unreadable"] == 2
    assert status["counts"]["noise_lines"] >= 2
    assert bad_index in r.modem.storage  # the malformed one is left on the SIM
    assert request.caller_id == f"+{CALLER}"  # the RING inside a command's answer was seen
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any(f"unreadable SMS at SIM index {bad_index}, left there" in e for e in errors)
    assert not any(cut_short[20:60] in e for e in errors)  # the text is not logged
    assert any("unreadable SMS (not stored): not hexadecimal" in e for e in errors)


def test_a_refused_request_is_kept_aside_and_those_behind_it_go_on(rig, alice) -> None:
    """A 422 (here: a caller ID longer than the API takes) cannot change on a retry: it is
    kept in the queue file as refused, and the SMS behind it is delivered."""
    r = rig()

    r.modem.ring("+" + "1" * 70)
    r.modem.receive_sms(f"+{CALLER}", "BAL")
    r.wait_sent(1)

    call, sms = r.items()
    assert (call["state"], call["last_error"]) == (
        "refused",
        "HTTP 422: from is too long (at most 64 characters)",
    )
    assert sms["state"] == "delivered"
    assert r.snapshot()["queue"]["refused"] == 1
