"""greenswitch 0.0.19, unmodified, against the simulator: inbound and outbound socket."""

from __future__ import annotations

import gevent
import gevent.event
import greenswitch
import pytest
from ports import free_port

from esl_callback.simulator import Simulator


def test_inbound_api_events_and_bgapi(sim: Simulator) -> None:
    esl = greenswitch.InboundESL(host=sim.host, port=sim.port, password="ClueCon")
    esl.connect()
    try:
        status = esl.send("api status")
        assert status.data.startswith("UP ")
        assert "session(s) - peak" in status.data
        assert esl.send("api no_such_command").data == "-ERR no_such_command Command not found!\n"

        seen: list[tuple[str, str]] = []
        done = gevent.event.Event()
        jobs: list[str] = []

        def on_event(event) -> None:
            seen.append((event.headers["Event-Name"], event.headers.get("Channel-Name", "")))
            if event.headers["Event-Name"] == "CHANNEL_HANGUP_COMPLETE":
                done.set()

        for name in ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"):
            esl.register_handle(name, on_event)
        esl.register_handle("BACKGROUND_JOB", lambda e: jobs.append(e.headers["Job-UUID"]))
        reply = esl.send("events plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB")
        assert reply.data == "+OK event listener enabled plain"

        job = esl.send("bgapi originate loopback/15550001001/phones &park()")
        assert job.data.startswith("+OK Job-UUID: ")
        with gevent.Timeout(5):
            while not jobs:
                gevent.sleep(0.01)
        uuid = next(ch.uuid for ch in sim.channels.values() if ch.name.endswith("01-a"))
        assert esl.send(f"api uuid_kill {uuid}").data == "+OK\n"
        assert done.wait(5)
        assert ("CHANNEL_ANSWER", "loopback/15550001001-a") in seen
    finally:
        esl.stop()


def test_inbound_wrong_password(sim: Simulator) -> None:
    esl = greenswitch.InboundESL(host=sim.host, port=sim.port, password="wrong")
    with pytest.raises(ValueError):
        esl.connect()


class Ivr:
    """A greenswitch outbound application: answer, read a PIN, play, hang up."""

    results: list[object] = []

    def __init__(self, session) -> None:
        self.session = session

    def run(self) -> None:
        session = self.session
        try:
            session.myevents()
            session.answer()
            digits = session.play_and_get_digits(
                1,
                8,
                3,
                5000,
                "#",
                "ivr/ivr-welcome.wav",
                "silence_stream://250",
                "pin",
                "\\d+",
                3000,
                block=True,
                response_timeout=10,
            )
            Ivr.results.append(("pin", digits, session.uuid, session.caller_id_number))
            event = session.playback("silence_stream://500")
            Ivr.results.append(("played", event.headers.get("Application-Response")))
            session.hangup()
        except Exception as exc:  # the test reads it
            Ivr.results.append(("error", repr(exc)))


def test_outbound_server_runs_an_ivr(make_sim) -> None:
    port = free_port()
    server = greenswitch.OutboundESLServer(
        bind_address="127.0.0.1", bind_port=port, application=Ivr, max_connections=5
    )
    listener = gevent.spawn(server.listen)
    Ivr.results = []
    sim = make_sim()
    try:
        gevent.sleep(0.05)
        # the -b leg rings phone 15550001002 (answers, keys 1234#); the -a leg is handed to us
        out = sim.api(
            "originate {origination_caller_id_number=15550001002}loopback/15550001002/phones "
            f"&socket('127.0.0.1:{port} async full')"
        )
        assert out.startswith("+OK ")
        uuid = out.split()[1]
        with gevent.Timeout(10):
            while len(Ivr.results) < 2 and not any(r[0] == "error" for r in Ivr.results):
                gevent.sleep(0.02)
        # a loopback -a leg's caller number is its context once answered (as recorded)
        assert Ivr.results[0] == ("pin", "1234", uuid, "phones")
        assert Ivr.results[1] == ("played", "FILE PLAYED")
        sim.wait_gone(uuid, timeout=5)
    finally:
        server.stop()
        listener.join(timeout=5)


def test_inbound_every_command_the_product_uses(sim: Simulator) -> None:
    """Each reply parses in greenswitch and says what FreeSWITCH says."""
    sim.register_user("1001")  # the chat below has a phone to go to
    esl = greenswitch.InboundESL(host=sim.host, port=sim.port, password="ClueCon")
    esl.connect()
    try:
        leg = esl.send(
            "api originate {ignore_early_media=true}loopback/15550001001/phones &park()"
        ).data.split()[1]
        other = esl.send(
            "api originate {ignore_early_media=true}loopback/15550001002/phones &park()"
        ).data.split()[1]
        expected = [
            ("api version", "FreeSWITCH Version 1.10.12-release"),
            ("api uptime", ""),
            (f"api uuid_exists {leg}", "true"),
            (f"api uuid_setvar {leg} color blue", "+OK"),
            (f"api uuid_getvar {leg} color", "blue"),
            (f"api uuid_send_dtmf {leg} 1", f"+OK {leg} sent DTMF 1."),
            (f"api uuid_broadcast {leg} silence_stream://100 aleg", "+OK Message sent"),
            (f"api uuid_break {leg}", "+OK"),
            ("api show channels as json", '{"row_count":'),
            ("api show calls", ""),
            ("api reloadxml", "+OK [Success]"),
            ("api global_getvar hold_music", "local_stream://moh"),
            ("api chat sip|1000|1001@127.0.0.1|hi", "Sent"),
            (f"api uuid_bridge {leg} {other}", f"+OK {other}"),
            (f"api sched_hangup +60 {leg}", "+OK"),
            ("api uuid_sched_hangup +60 x", "-ERR uuid_sched_hangup Command not found!"),
            ("filter Event-Name CHANNEL_HANGUP", "+OK filter added. [Event-Name]=[CHANNEL_HANGUP]"),
            ("filter delete Event-Name CHANNEL_HANGUP", "+OK filter deleted."),
            # (greenswitch cannot parse JSON events, from FreeSWITCH or from us: plain here)
            ("event plain CHANNEL_HANGUP", "+OK event listener enabled plain"),
            ("nixevent CHANNEL_HANGUP", "+OK events nixed"),
            ("noevents", "+OK no longer listening for events"),
            ("linger", "-ERR not controlling a session"),
            (f"myevents {leg}", "+OK Events Enabled"),  # now this connection has a session
            ("linger 5", "+OK will linger 5 seconds"),
            (
                f"sendmsg {leg}\ncall-command: execute\nexecute-app-name: set\n"
                "execute-app-arg: y=1",
                "+OK",
            ),
            ("bgapi status", "+OK Job-UUID: "),
            (f"api uuid_kill {leg}", "+OK"),
            ("api hupall", "+OK hangup all channels with cause: NORMAL_CLEARING"),
            ("no_such_command", "-ERR command not found"),
        ]
        for command, reply in expected:
            answer = esl.send(command)
            text = getattr(answer, "data", "")
            assert text.startswith(reply), (command, text)
        assert esl.send("exit").data == "+OK bye"
    finally:
        esl.stop()
