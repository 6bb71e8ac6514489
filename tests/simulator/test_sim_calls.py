"""Call behaviour the controller depends on: triggers, originate results, uuid_bridge on a
socket-controlled channel, sched_hangup, ordering of api/bgapi, linger, timing."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable, Iterator

import gevent
import gevent.queue
import pytest
from sim_client import EslClient, channel, named
from sim_setup import sim_config

from esl_callback.simulator import Simulator
from esl_callback.simulator.config import GatewaySpec
from esl_callback.simulator.core import DB_LAG
from esl_callback.simulator.dialplan import Extension

ANSWERED_PHONE = "{ignore_early_media=true}loopback/15550001001/phones"
TRIGGER = "{origination_caller_id_number=15550001001}loopback/18005550100/access &park()"


@pytest.fixture
def sessions(outbound_server) -> Iterator[tuple[str, gevent.queue.Queue]]:
    """An outbound socket server; each session the simulator opens lands in the queue."""
    accepted: gevent.queue.Queue[EslClient] = gevent.queue.Queue()
    opened: list[EslClient] = []

    def handle(sock, address) -> None:
        conn = EslClient.accepted(sock)
        conn.accepted_at = time.monotonic()  # type: ignore[attr-defined]
        opened.append(conn)
        accepted.put(conn)
        conn.closed.wait()

    yield outbound_server(handle), accepted
    for conn in opened:
        conn.close()


def socket_leg(make_sim, sessions) -> tuple[Simulator, str, EslClient]:
    """A simulator whose answered phone is handed to our socket server: the leg's uuid and its
    session, connected."""
    address, accepted = sessions
    sim = make_sim(outbound=address)
    leg = sim.api(f"originate {ANSWERED_PHONE} &socket('{address} async full')").split()[1]
    session = accepted.get(timeout=5)
    session.connect()
    return sim, leg, session


def test_trigger_reaches_the_socket_ringing_before_inbound_sees_it(make_sim, sessions) -> None:
    address, accepted = sessions
    sim = make_sim(outbound=address)
    watcher = EslClient(sim.host, sim.port)
    watcher.command("event plain CHANNEL_CREATE")
    job = gevent.spawn(sim.api, f"originate {TRIGGER}")
    session = accepted.get(timeout=5)
    data = session.connect()
    assert data.get("Channel-Name") == "loopback/18005550100-b"
    assert data.get("Answer-State") == "ringing"
    assert data.get("Caller-Caller-ID-Number") == "15550001001"
    assert data.get("Caller-Destination-Number") == "18005550100"
    create = watcher.event("CHANNEL_CREATE", named("loopback/18005550100-b"))
    assert create.arrived > session.accepted_at
    session.execute("hangup", "USER_BUSY")
    assert job.get(timeout=5) == "-ERR USER_BUSY\n"
    watcher.close()


def test_uuid_bridge_completes_the_socket_app_and_the_session_follows(make_sim, sessions) -> None:
    address, accepted = sessions
    sim = make_sim(outbound=address)
    a_out = sim.api(f"originate {ANSWERED_PHONE} &socket('{address} async full')")
    assert a_out.startswith("+OK ")
    leg_a = a_out.split()[1]
    session = accepted.get(timeout=5)
    assert session.connect().get("Unique-ID") == leg_a
    assert session.command("myevents").get("Reply-Text") == "+OK Events Enabled"
    b_out = sim.api("originate {ignore_early_media=true}loopback/15550002001/phones &park()")
    leg_b = b_out.split()[1]
    assert sim.api(f"uuid_bridge {leg_a} {leg_b}") == f"+OK {leg_b}\n"
    done = session.event("CHANNEL_EXECUTE_COMPLETE", lambda e: e.get("Application") == "socket")
    assert done.get("Unique-ID") == leg_a
    bridge = session.event("CHANNEL_BRIDGE")
    assert bridge.get("Other-Leg-Unique-ID") == leg_b
    # the session keeps getting its channel's events until the end
    assert sim.api(f"uuid_kill {leg_b}") == "+OK\n"
    session.event("CHANNEL_UNBRIDGE")
    hangup = session.event("CHANNEL_HANGUP_COMPLETE", channel(leg_a))
    assert hangup.get_all("Hangup-Cause") == ["NORMAL_CLEARING", "NORMAL_CLEARING"]
    assert session.closed.wait(5)


def test_a_destination_hanging_up_as_it_is_bridged_does_not_leave_the_caller_stuck(
    sim: Simulator,
) -> None:
    """B goes before it could take the bridge (the bridge came late, B's phone hung up): the
    bridge ends at once and A carries on (its `&park()` is over, so it hangs up), not left
    waiting for B forever."""
    leg_a = sim.api(f"originate {ANSWERED_PHONE} &park()").split()[1]
    leg_b = sim.api("originate {ignore_early_media=true}loopback/15550002001/phones &park()")
    leg_b = leg_b.split()[1]
    # No yield between the two: B is down before its session could take the bridge.
    assert sim.api(f"uuid_bridge {leg_a} {leg_b}") == f"+OK {leg_b}\n"
    assert sim.api(f"uuid_kill {leg_b}") == "+OK\n"
    sim.wait_gone(leg_b)
    sim.wait_gone(leg_a, timeout=5)


def test_sched_hangup_hits_the_named_leg_only(sim: Simulator, client) -> None:
    watcher = client()
    watcher.command("event plain CHANNEL_HANGUP")
    a = sim.api("originate {ignore_early_media=true}loopback/15550001001/phones &park()").split()[1]
    b = sim.api("originate {ignore_early_media=true}loopback/15550002001/phones &park()").split()[1]
    assert sim.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    assert watcher.api(f"sched_hangup +1 {a} ALLOTTED_TIMEOUT") == "+OK\n"
    first = watcher.event("CHANNEL_HANGUP", lambda e: e.get("Unique-ID") in (a, b))
    assert first.get("Unique-ID") == a
    assert first.get("Hangup-Cause") == "ALLOTTED_TIMEOUT"
    other = watcher.event("CHANNEL_HANGUP", channel(b))
    assert other.get("Hangup-Cause") == "NORMAL_CLEARING"


def test_park_timeout_hangs_up_a_parked_leg_with_the_cause_it_names(sim: Simulator, client) -> None:
    watcher = client()
    watcher.command("event plain CHANNEL_HANGUP")
    phone = "loopback/15550001001/phones &park()"  # answers, then stays parked
    plain = sim.api(f"originate {{ignore_early_media=true,park_timeout=2}}{phone}").split()[1]
    named_cause = sim.api(
        f"originate {{ignore_early_media=true,park_timeout=2:ALLOTTED_TIMEOUT}}{phone}"
    ).split()[1]
    untimed = sim.api(f"originate {{ignore_early_media=true}}{phone}").split()[1]
    causes = {}
    for _ in range(2):
        hangup = watcher.event(
            "CHANNEL_HANGUP", lambda e: e.get("Unique-ID") in (plain, named_cause)
        )
        causes[hangup.get("Unique-ID")] = hangup.get("Hangup-Cause")
    assert causes == {plain: "NORMAL_CLEARING", named_cause: "ALLOTTED_TIMEOUT"}
    assert untimed in sim.channels


def test_an_async_socket_session_is_parked_so_park_timeout_ends_it_too(make_sim, sessions) -> None:
    """mod_event_socket parks a channel it hands to an async session: the leg's `park_timeout`
    bounds the whole session, whatever the controller is doing with it."""
    address, accepted = sessions
    sim = make_sim(outbound=address)
    dial = "{ignore_early_media=true,park_timeout=2}loopback/15550001001/phones"
    leg = sim.api(f"originate {dial} &socket('{address} async full')").split()[1]
    session = accepted.get(timeout=5)
    session.connect()
    session.command("myevents")
    hangup = session.event("CHANNEL_HANGUP", channel(leg))
    assert hangup.get("Hangup-Cause") == "NORMAL_CLEARING"


def test_a_bridged_call_to_phones_holding_the_line_outlives_the_park_timeout(
    sim: Simulator,
) -> None:
    """uuid_bridge ends both legs' parks (and their timeouts); the virtual phones that hold the
    line are people, not parked channels, whatever park_timeout their loopback twin copied."""
    parked = "{ignore_early_media=true,park_timeout=2}loopback/%s/phones &park()"
    a = sim.api("originate " + parked % "15550001001").split()[1]
    b = sim.api("originate " + parked % "15550001002").split()[1]
    assert sim.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    gevent.sleep(sim.clock.real(5))
    assert a in sim.channels and b in sim.channels


def test_a_loopback_twin_copies_the_legs_park_timeout_but_a_gateways_far_end_does_not() -> None:
    """mod_loopback gives the -b channel the leg's variables (the recorded flows show them), so
    a far end that parks is hung up by them; a sofia gateway's far end is a phone elsewhere."""
    config = sim_config()
    config.gateways = {"carrier": GatewaySpec(context="parks")}
    config.dialplan.contexts["parks"] = [
        Extension("parks", r"^(\d+)$", [("answer", None), ("park", None)])
    ]
    simulator = Simulator(config, speed=20.0).start()
    try:
        leg = "{ignore_early_media=true,park_timeout=1}%s/15550003001%s &echo()"
        looped = simulator.api("originate " + leg % ("loopback", "/parks")).split()[1]
        via_gateway = simulator.api("originate " + leg % ("sofia/gateway/carrier", "")).split()[1]
        simulator.wait_gone(looped, timeout=simulator.clock.real(5))
        gevent.sleep(simulator.clock.real(3))
        assert via_gateway in simulator.channels
    finally:
        simulator.stop()


def test_no_uuid_sched_hangup_and_usage_texts(sim: Simulator, client) -> None:
    conn = client()
    assert conn.api("uuid_sched_hangup +5 x") == "-ERR uuid_sched_hangup Command not found!\n"
    assert conn.api("sched_hangup") == "-USAGE: [+]<time> <uuid> [<cause>]\n"
    assert conn.api("sched_hangup +1 nosuch") == "-ERR No such channel!\n"
    assert conn.api("uuid_kill nosuch") == "-ERR No such channel!\n"
    assert conn.api("uuid_bridge") == "-USAGE: <uuid> <other_uuid>\n"


@pytest.mark.parametrize(
    ("dial", "result"),
    [
        ("loopback/15550002004/phones", "-ERR USER_BUSY\n"),
        ("{originate_timeout=2}loopback/15550002003/phones", "-ERR NO_ANSWER\n"),
        (
            "{ignore_early_media=true,originate_timeout=2}loopback/15550002005/phones",
            "-ERR NO_ANSWER\n",
        ),
        ("loopback/15550002005/phones", "+OK"),  # early media counts without ignore_early_media
        ("{ignore_early_media=true}loopback/15550001001/phones", "+OK"),
        ("foo/bar", "-ERR CHAN_NOT_IMPLEMENTED\n"),
        ("user/1000", "-ERR SUBSCRIBER_ABSENT\n"),
    ],
)
def test_originate_results(sim: Simulator, dial: str, result: str) -> None:
    assert sim.api(f"originate {dial} &park()").startswith(result)


def test_api_commands_run_one_at_a_time_in_order(sim: Simulator, client) -> None:
    conn = client()
    started = time.monotonic()
    conn.send(
        "api originate {originate_timeout=2}loopback/15550002003/phones &park()\n\n"
        "api global_getvar hold_music\n\n"
    )
    assert conn.reply().text == "-ERR NO_ANSWER\n"
    assert time.monotonic() - started >= 2 / sim.clock.speed
    assert conn.reply().text == "local_stream://moh"


def test_bgapi_does_not_block_the_connection(sim: Simulator, client) -> None:
    conn = client()
    conn.command("event plain BACKGROUND_JOB")
    conn.send(
        "bgapi originate {originate_timeout=2}loopback/15550002003/phones &park()\n\n"
        "api global_getvar hold_music\n\n"
    )
    job = conn.reply().get("Job-UUID")
    assert conn.reply().text == "local_stream://moh"
    assert conn.events.empty()
    event = conn.event("BACKGROUND_JOB")
    assert event.get("Job-UUID") == job
    assert event.body == b"-ERR NO_ANSWER\n"


def test_linger_keeps_the_session_until_after_the_hangup(make_sim, sessions) -> None:
    sim, leg, session = socket_leg(make_sim, sessions)
    assert session.command("linger 1").get("Reply-Text") == "+OK will linger 1 seconds"
    session.command("myevents")
    sim.api(f"uuid_kill {leg}")
    session.event("CHANNEL_HANGUP_COMPLETE", channel(leg))
    assert not session.closed.is_set()
    assert session.api("global_getvar hold_music") == "local_stream://moh"  # still usable
    assert session.closed.wait(5)
    notices = [f for f in session.other if f.content_type == "text/disconnect-notice"]
    assert [n.get("Content-Disposition") for n in notices] == ["linger", "disconnect"]


def test_without_linger_the_session_closes_at_the_hangup(make_sim, sessions) -> None:
    sim, leg, session = socket_leg(make_sim, sessions)
    session.command("myevents")
    sim.api(f"uuid_kill {leg}")
    assert session.closed.wait(5)
    names = [e.get("Event-Name") for e in session.drain()]
    assert names[0] == "CHANNEL_HANGUP"
    assert names[-1] == "CHANNEL_HANGUP_COMPLETE"  # it closes once the channel is reported
    (notice,) = [f for f in session.other if f.content_type == "text/disconnect-notice"]
    assert notice.get("Content-Disposition") == "disconnect"


def test_a_finished_call_is_freed_without_the_garbage_collector(make_sim, sessions) -> None:
    """No reference cycles: a busy switch must not wait for full collections to free calls."""
    sim, leg, session = socket_leg(make_sim, sessions)
    channel_a = sim.channels[leg]
    left = [weakref.ref(channel_a), weakref.ref(channel_a.loopback_peer)]
    left.append(weakref.ref(channel_a.outbound))
    del channel_a
    gc.disable()
    try:
        sim.api(f"uuid_kill {leg}")
        sim.wait_gone(leg)
        assert session.closed.wait(5)
        gevent.sleep(sim.clock.real(DB_LAG) + 0.1)  # `show channels` lists the channels no more
        assert sim.listed_channels() == []
        assert [ref() for ref in left] == [None, None, None]
    finally:
        gc.enable()


def test_dtmf_crosses_the_loopback_pair(sim: Simulator, client) -> None:
    conn = client()
    conn.command("event plain DTMF")
    a = sim.api("originate {ignore_early_media=true}loopback/15550001001/phones &park()").split()[1]
    assert conn.api(f"uuid_send_dtmf {a} 12#") == f"+OK {a} sent DTMF 12#.\n"
    digits = [conn.event("DTMF").get("DTMF-Digit") for _ in range(3)]
    assert digits == ["1", "2", "#"]


def test_phone_keys_reach_play_and_get_digits_without_the_terminator(make_sim, sessions) -> None:
    address, accepted = sessions
    sim = make_sim(outbound=address)
    sim.api(f"originate loopback/15550001002/phones &socket('{address} async full')")
    session = accepted.get(timeout=5)
    session.connect()
    session.command("myevents")
    session.execute(
        "play_and_get_digits",
        "1 8 3 5000 # ivr/ivr-welcome.wav silence_stream://250 pin \\d+ 3000",
    )
    done = session.event(
        "CHANNEL_EXECUTE_COMPLETE", lambda e: e.get("Application") == "play_and_get_digits"
    )
    assert done.get("variable_pin") == "1234"
    assert done.get("variable_read_result") == "success"


def test_billsec_and_timestamps_follow_simulated_time(make_sim) -> None:
    """1 s of ringing and 30 s of talk take 0.31 real seconds at speed 100, yet every time the
    call reports is simulated: 1 s to answer, 30 s billed.

    The simulator's own work counts 100 times over in simulated time (a millisecond of real
    time is 0.1 simulated seconds), so each span may exceed its nominal length by what the
    whole call ran late: the simulated time it took beyond its 31 nominal seconds. On an idle
    machine that is a few tenths; on a busy one (CI) it is what the load cost, and the spans
    are compared with that, never shorter than nominal.
    """
    speed = 100.0
    sim = make_sim(speed=speed)
    watcher = EslClient(sim.host, sim.port)
    watcher.command("event plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE")
    started = time.monotonic()
    sim.place_call("15550009999", "15550002001", "phones")  # answers after 1 s, talks 30 s
    is_b = named("loopback/15550002001-b")
    create = watcher.event("CHANNEL_CREATE", is_b)
    answer = watcher.event("CHANNEL_ANSWER", is_b)
    done = watcher.event("CHANNEL_HANGUP_COMPLETE", is_b)
    took = time.monotonic() - started
    assert took < 2.0
    late = took * speed - 31.0  # simulated seconds beyond the call's nominal 31
    answered_after = (
        int(answer.get("Event-Date-Timestamp")) - int(create.get("Event-Date-Timestamp"))
    ) / 1e6
    talked = int(done.get("variable_billusec")) / 1e6
    assert 1.0 <= answered_after <= 1.0 + late
    assert 30.0 <= talked <= 30.0 + late
    # whole seconds as FreeSWITCH counts them: the difference of the two epoch seconds
    assert int(done.get("variable_billsec")) in (int(talked), int(talked) + 1)
    duration = int(done.get("variable_uduration")) / 1e6
    assert int(done.get("variable_duration")) in (int(duration), int(duration) + 1)
    watcher.close()


def test_python_api_places_calls_and_waits_for_states(sim: Simulator) -> None:
    uuid = sim.place_call("15550009999", "15550001001", "phones")
    ch = sim.wait_for(uuid, lambda c: c.answered, timeout=5)
    assert ch is not None and ch.name == "loopback/15550001001-a"
    assert ch.initial_cid[1] == "15550009999"  # once answered, it shows the context (as real)
    sim.api(f"uuid_kill {uuid}")
    sim.wait_gone(uuid, timeout=5)
    assert sim.api(f"uuid_exists {uuid}") == "false"


def test_inbound_acl_rejects_rudely() -> None:
    config = sim_config()
    config.inbound_acl = ["10.0.0.0/8"]
    sim = Simulator(config, speed=20).start()
    try:
        sock = gevent.socket.create_connection((sim.host, sim.port))
        data = b""
        with gevent.Timeout(5):
            while chunk := sock.recv(4096):
                data += chunk
        assert data.startswith(
            b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
        )
        assert b"Content-Type: text/disconnect-notice" in data
    finally:
        sim.stop()


def test_chat_api_lands_in_the_outbox(sim: Simulator, client: Callable[..., EslClient]) -> None:
    sim.register_user("15550002001")  # else nobody to send to: "Error! Message Not Sent"
    conn = client()
    assert conn.api("chat sip|15550001001|15550002001@127.0.0.1|hello there") == "Sent"
    (message,) = sim.outbox
    assert (message.sender, message.recipient, message.body) == (
        "15550001001",
        "15550002001@127.0.0.1",
        "hello there",
    )


def test_execute_on_answer_and_ring(sim: Simulator) -> None:
    out = sim.api(
        "originate {execute_on_answer='set answered_by=hook',execute_on_ring='export rang=yes'}"
        "loopback/15550001001/phones &park()"
    )
    leg = out.split()[1]
    assert sim.api(f"uuid_getvar {leg} answered_by") == "hook"
    assert sim.api(f"uuid_getvar {leg} rang") == "yes"
