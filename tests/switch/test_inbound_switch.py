"""InboundConnection and EventRouter against the simulated FreeSWITCH (real sockets).

Each test shows one of greenswitch 0.0.19's faults fixed; where the fault is visible on the
wire, greenswitch's own InboundESL is run on the same traffic first to show it.
"""

from __future__ import annotations

import re
import time
import uuid

import gevent.event
import pytest
from greenswitch.esl import InboundESL
from switch_lab import PARKS, PASSWORD, RINGS, SwitchLab, wait_until

from esl_callback.simulator import Simulator
from esl_callback.switch import commands
from esl_callback.switch.commands import UnsafeCommand
from esl_callback.switch.connection import CommandTimeout, InboundConnection
from esl_callback.switch.protocol import Frame
from esl_callback.switch.router import EventRouter

CHANNEL_EVENTS = [
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "BACKGROUND_JOB",
]
NO_ROUTE = "originate loopback/4711/no_such_context &park()"


def park_leg(conn: InboundConnection, number: str, request_id: str, **variables: str) -> str:
    leg = str(uuid.uuid4())
    conn.bgapi(
        commands.originate(
            commands.dial_string("loopback/{number}/phones", number),
            commands.park_application(),
            {"origination_uuid": leg, "callback_request_id": request_id, **variables},
        )
    )
    return leg


def greenswitch_events(lab: SwitchLab, subscription: str, command: str) -> list[dict[str, str]]:
    """What greenswitch's own InboundESL reports for the events `command` causes."""
    seen: list[dict[str, str]] = []
    esl = InboundESL("127.0.0.1", lab.port, PASSWORD)
    esl.register_handle("*", lambda event: seen.append(event.headers))
    esl.connect()
    try:
        esl.send(subscription)
        esl.send(command)
        wait_until(lambda: seen)
    finally:
        esl.stop()
    return seen


def test_greenswitch_alone_folds_a_background_job_result_into_its_last_header(
    lab: SwitchLab,
) -> None:
    headers = greenswitch_events(lab, "event plain BACKGROUND_JOB", f"bgapi {NO_ROUTE}")[0]
    assert headers["Content-Length"].endswith("-ERR NO_ROUTE_DESTINATION")


def test_a_background_job_result_is_the_body_of_its_event(lab: SwitchLab) -> None:
    routed: list[Frame] = []
    conn = lab.connect(["BACKGROUND_JOB"], on_event=lambda event, node: routed.append(event))
    assert conn.wait_connected(5)
    job = conn.bgapi(NO_ROUTE)
    assert job.wait(5) == "-ERR NO_ROUTE_DESTINATION\n"
    assert not job.ok
    assert job.event is not None
    assert job.event.get("Job-UUID") == job.uuid
    assert job.event.get("Job-Command-Arg") == "loopback/4711/no_such_context &park()"
    assert job.event.get("Content-Length") == "26"
    wait_until(lambda: routed)
    assert routed[0].get("Job-UUID") == job.uuid
    assert conn.pending_jobs() == 0


def test_a_custom_event_body_stays_the_body_and_cannot_add_headers(lab: SwitchLab) -> None:
    seen: list[Frame] = []
    conn = lab.connect(["callback::test"], on_event=lambda event, node: seen.append(event))
    assert conn.wait_connected(5)
    body = "line one\nUnique-ID: forged-uuid\n"
    sender = InboundESL("127.0.0.1", lab.port, PASSWORD)
    sender.connect()
    try:
        sender.send(
            f"sendevent CUSTOM\nEvent-Subclass: callback::test\n"
            f"Content-Length: {len(body)}\n\n{body}"
        )
    finally:
        sender.stop()
    wait_until(lambda: seen)
    event = seen[0]
    assert (event.get("Event-Name"), event.get("Event-Subclass")) == ("CUSTOM", "callback::test")
    assert event.body == body.encode()
    assert event.get_all("Unique-ID") == []


def test_an_sms_body_reaches_us_whole_and_forges_no_header(lab: SwitchLab) -> None:
    seen: list[Frame] = []
    conn = lab.connect(["MESSAGE"], on_event=lambda event, node: seen.append(event))
    assert conn.wait_connected(5)
    text = "CALL 4930123456\nUnique-ID: forged-uuid\nfrom_user: 999"
    lab.sim.receive_sms("15550001001", "18005550100", text)
    wait_until(lambda: seen)
    assert seen[0].text == text
    assert seen[0].get("from_user") == "15550001001"
    assert seen[0].get_all("Unique-ID") == []


def test_a_display_name_cannot_forge_the_unique_id(lab: SwitchLab) -> None:
    created: list[Frame] = []
    conn = lab.connect(["CHANNEL_CREATE"], on_event=lambda event, node: created.append(event))
    assert conn.wait_connected(5)
    leg = str(uuid.uuid4())
    conn.bgapi(
        f"originate {{origination_uuid={leg},"
        f"origination_caller_id_name='Bob%0AUnique-ID: forged-uuid'}}"
        f"loopback/{RINGS}/phones &park()"
    )
    wait_until(lambda: any(e.get("Unique-ID") == leg for e in created))
    event = next(e for e in created if e.get("Unique-ID") == leg)
    assert event.get("Caller-Caller-ID-Name") == "Bob\nUnique-ID: forged-uuid"
    assert all(e.get("Unique-ID") != "forged-uuid" for e in created)


def test_after_the_switch_restarts_a_fresh_connection_is_subscribed_again(
    lab: SwitchLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", "esl_callback.switch.connection")
    reconnected: list[InboundConnection] = []
    created: list[str] = []
    conn = lab.connect(
        ["CHANNEL_CREATE"],
        on_event=lambda event, node: created.append(event.get("Unique-ID") or ""),
        on_connected=reconnected.append,
    )
    assert conn.wait_connected(5)
    lab.restart_switch(down_for=0.6)

    wait_until(lambda: conn.connections_made == 2 and conn.connected, timeout=10)
    leg = park_leg(conn, RINGS, "1")
    wait_until(lambda: leg in created)  # events flow: the new connection was subscribed
    assert reconnected == [conn, conn]

    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and "closed by FreeSWITCH" in lost[0]
    retries = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert retries, "the attempts while the switch was down were not logged"
    steps = [int(re.search(r"retry (\d+) in", message).group(1)) for message in retries]
    assert steps == list(range(steps[0], steps[0] + len(steps)))  # one line per backoff step
    assert all("nothing listens there: check host/port" in message for message in retries)


@pytest.mark.parametrize(
    ("refusal", "hint"),
    [
        ("password", "check the password"),
        ("user", "check the user controller@default exists with that ESL password"),
        ("acl", "check apply-inbound-acl in event_socket.conf.xml"),
        ("port", "nothing listens there: check host/port"),
    ],
)
def test_a_switch_that_refuses_us_is_retried_with_backoff_saying_what_to_check(
    lab: SwitchLab, caplog: pytest.LogCaptureFixture, refusal: str, hint: str
) -> None:
    options: dict[str, str] = {"password": PASSWORD}
    if refusal == "password":
        options["password"] = "not-the-password"
    elif refusal == "user":  # the simulator has no ESL users: userauth is refused like that
        options["user"] = "controller@default"
    elif refusal == "acl":
        lab.restart_switch(apply_inbound_acl=["192.0.2.0/24"])
    else:
        lab.sim.stop()
    conn = lab.connect(["CHANNEL_CREATE"], **options)

    wait_until(lambda: len([r for r in caplog.records if "cannot connect" in r.getMessage()]) >= 3)
    assert not conn.connected and conn.connections_made == 0
    messages = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
    assert [m.split("retry ")[1].split(" ")[0] for m in messages[:3]] == ["1", "2", "3"]
    assert all(hint in message for message in messages)
    assert "Secret" not in caplog.text and "not-the-password" not in caplog.text


def test_a_command_without_a_reply_in_time_raises_command_timeout(lab: SwitchLab) -> None:
    conn = lab.connect(["CHANNEL_CREATE"])
    assert conn.wait_connected(5)
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"no reply to 'api originate .*' within 0.3 s"):
        conn.api(f"originate loopback/{RINGS}/phones &park()", timeout=0.3)  # blocks 60 s
    assert time.monotonic() - started < 2
    # The switch stayed silent while the command waited: that connection was given up and a
    # fresh one made, which answers.
    wait_until(lambda: conn.connections_made == 2 and conn.connected)
    assert conn.api("version").startswith("FreeSWITCH Version 1.10")


def test_api_commands_sent_together_answer_in_order(lab: SwitchLab) -> None:
    conn = lab.connect(["CHANNEL_ANSWER"])
    assert conn.wait_connected(5)
    leg = park_leg(conn, PARKS, "8")
    wait_until(lambda: conn.api(f"uuid_exists {leg}") == "true")
    outputs = conn.api_all([f"uuid_exists {leg}", "no_such_command", f"uuid_kill {leg}"])
    assert outputs == ["true", "-ERR no_such_command Command not found!\n", "+OK\n"]
    wait_until(lambda: conn.api(f"uuid_exists {leg}") == "false")


def test_one_unsafe_command_among_several_sends_none_of_them(lab: SwitchLab) -> None:
    conn = lab.connect(["CHANNEL_ANSWER"])
    assert conn.wait_connected(5)
    leg = park_leg(conn, PARKS, "9")
    wait_until(lambda: conn.api(f"uuid_exists {leg}") == "true")
    with pytest.raises(UnsafeCommand):
        conn.api_all([f"uuid_kill {leg}", "version\n\nsendevent CUSTOM"])
    gevent.sleep(0.3)
    assert conn.api(f"uuid_exists {leg}") == "true"


def test_a_slow_handler_of_one_call_does_not_stall_another_call(lab: SwitchLab) -> None:
    router = EventRouter()
    release = gevent.event.Event()
    slow_seen: list[tuple[str, str]] = []
    fast_seen: list[tuple[str, str]] = []

    def slow(event: Frame, node: str) -> None:
        release.wait()
        slow_seen.append((event.get("Event-Name") or "", event.get("Unique-ID") or ""))

    router.register("1", slow)
    router.register(
        "2", lambda e, node: fast_seen.append((e.get("Event-Name"), e.get("Unique-ID")))
    )
    conn = lab.connect(CHANNEL_EVENTS, on_event=router.dispatch)
    assert conn.wait_connected(5)
    slow_leg = park_leg(conn, PARKS, "1")
    fast_leg = park_leg(conn, PARKS, "2")

    wait_until(lambda: ("CHANNEL_ANSWER", fast_leg) in fast_seen)
    wait_until(lambda: router.backlog() >= 1)  # call 1's ANSWER queues behind its held CREATE
    assert slow_seen == []
    release.set()
    wait_until(lambda: ("CHANNEL_ANSWER", slow_leg) in slow_seen)
    names = [name for name, leg in slow_seen if leg == slow_leg]
    assert names == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]


def test_a_job_result_reaches_the_call_its_job_uuid_is_bound_to(lab: SwitchLab) -> None:
    router = EventRouter()
    seen: list[bytes] = []
    router.register("7", lambda event, node: seen.append(event.body))
    conn = lab.connect(["BACKGROUND_JOB"], on_event=router.dispatch)
    assert conn.wait_connected(5)
    job_uuid = str(uuid.uuid4())
    router.bind(job_uuid, "7")
    conn.bgapi(NO_ROUTE, job_uuid=job_uuid)
    wait_until(lambda: seen)
    assert seen == [b"-ERR NO_ROUTE_DESTINATION\n"]


def test_events_of_every_node_reach_one_router_with_their_node_name(lab: SwitchLab) -> None:
    second = Simulator(lab.config(listen="127.0.0.1:0")).start()
    try:
        router = EventRouter()
        seen: list[tuple[str, str]] = []
        router.register("11", lambda event, node: seen.append((node, event.get("Unique-ID"))))
        connections = [
            InboundConnection(
                name=name,
                host="127.0.0.1",
                port=port,
                password=PASSWORD,
                events=["CHANNEL_CREATE"],
                on_event=router.dispatch,
            ).start()
            for name, port in (("fs1", lab.port), ("fs2", second.port))
        ]
        lab.connections += connections
        assert all(conn.wait_connected(5) for conn in connections)
        legs = [park_leg(conn, RINGS, "11") for conn in connections]
        # (each loopback -b partner carries our variables too, as on a real FreeSWITCH)
        wait_until(lambda: {("fs1", legs[0]), ("fs2", legs[1])} <= set(seen))
        assert {node for node, leg in seen} == {"fs1", "fs2"}
    finally:
        second.stop()


def test_the_backlog_counts_events_sent_but_not_read_yet(lab: SwitchLab) -> None:
    release = gevent.event.Event()

    def stalls_the_reader(event: Frame, node: str) -> None:
        release.wait()  # stands for a reader that falls behind the switch

    watcher = lab.connect(["CHANNEL_CREATE"], on_event=stalls_the_reader)
    caller = lab.connect(["BACKGROUND_JOB"])
    assert watcher.wait_connected(5) and caller.wait_connected(5)
    assert watcher.queued_events() == 0
    for n in range(30):
        park_leg(caller, PARKS, str(n))
    # The first CHANNEL_CREATE is being handled; the others wait unread in the socket.
    wait_until(lambda: watcher.queued_events() >= 20)
    assert watcher.peak_backlog >= 20
    release.set()
    wait_until(lambda: watcher.queued_events() == 0)


def test_with_filters_the_switch_sends_only_the_events_they_pass(lab: SwitchLab) -> None:
    """Our calls' legs carry callback_request_id; another call on the same switch is not sent."""
    seen: list[Frame] = []
    conn = lab.connect(
        ["CHANNEL_CREATE", "BACKGROUND_JOB"],
        filters=[("variable_callback_request_id", "/^[0-9]+$/"), ("Event-Name", "BACKGROUND_JOB")],
        on_event=lambda event, node: seen.append(event),
    )
    assert conn.wait_connected(5)
    other = str(uuid.uuid4())
    other_job = conn.bgapi(f"originate {{origination_uuid={other}}}loopback/{PARKS}/phones &park()")
    ours = park_leg(conn, PARKS, "42")
    wait_until(lambda: len({e.get("Job-UUID") for e in seen} - {None}) == 2)
    created = [e.get("Unique-ID") for e in seen if e.get("Event-Name") == "CHANNEL_CREATE"]
    assert ours in created
    assert other not in created
    assert all(e.get("variable_callback_request_id") == "42" for e in seen if e.get("Unique-ID"))
    assert other_job.wait(5).startswith("+OK")
