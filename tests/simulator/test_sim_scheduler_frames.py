"""The scheduler (sched_hangup, sched_broadcast, sched_del) and sendmsg taken between media
frames, as FreeSWITCH 1.10.12 does them (switch_scheduler.c, mod_commands.c, switch_ivr.c).

Every wait here is for an event or a state, with a generous timeout: nothing sleeps a fixed
time. "The channel is still up after its time" is shown by a later task (or a later sendmsg)
that did run, since the scheduler runs its due tasks in order and a session takes its queued
sendmsg in order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import gevent
import gevent.event
import gevent.queue
import pytest
from sim_client import EslClient, channel
from sim_setup import sim_config

from esl_callback.simulator import Simulator
from esl_callback.simulator.clock import SimClock
from esl_callback.simulator.config import KNOWN_KEYS, ConfigError, SimConfig, from_mapping
from esl_callback.simulator.scheduler import PASS_SECONDS, Scheduler
from esl_callback.switch.protocol import Frame

PARKED_PHONE = "{ignore_early_media=true}loopback/%s/phones &park()"
SOUND = "ivr/ivr-welcome.wav"  # 3 s in the test configuration
WIDE_FRAME_MS = 2000  # the widest a FreeSWITCH timer ticks by
WIDE_SPEED = 10.0  # a 2 s frame lasts 0.2 real seconds
TIMEOUT = 20.0  # real seconds; generous, for loaded machines


def parked(sim: Simulator, number: str = "15550001001") -> str:
    """An answered loopback leg parked with &park(): its uuid."""
    reply = sim.api("originate " + PARKED_PHONE % number)
    assert reply.startswith("+OK "), reply
    return reply.split()[1]


def timestamp(event: Frame) -> int:
    return int(event.get("Event-Date-Timestamp") or 0)


def application(name: str, uuid: str) -> Callable[[Frame], bool]:
    return lambda e: e.get("Unique-ID") == uuid and e.get("Application") == name


def events_until(conn: EslClient, match: Callable[[Frame], bool]) -> list[Frame]:
    """Every event ``conn`` receives up to and including the first that matches."""
    seen: list[Frame] = []
    with gevent.Timeout(TIMEOUT, AssertionError("no matching event")):
        while True:
            event = conn.events.get()
            seen.append(event)
            if match(event):
                return seen


def news_of(events: list[Frame], uuid: str) -> list[Frame]:
    """The events of ``uuid`` among ``events``, but for its `park` starting (as it was placed)."""
    return [e for e in events if channel(uuid)(e) and not application("park", uuid)(e)]


def ran(events: list[Frame], app: str, uuid: str) -> list[Frame]:
    """The CHANNEL_EXECUTE events of ``app`` on ``uuid`` among ``events``."""
    return [
        e for e in events if e.get("Event-Name") == "CHANNEL_EXECUTE" and application(app, uuid)(e)
    ]


# -- the scheduler ------------------------------------------------------------------------------


@pytest.fixture
def watcher(sim: Simulator, client: Callable[..., EslClient]) -> EslClient:
    conn = client()
    conn.command("event plain CHANNEL_HANGUP CHANNEL_EXECUTE PRIVATE_COMMAND")
    return conn


@pytest.mark.parametrize("by", ["uuid", "task id"])
def test_sched_del_removes_a_pending_sched_hangup(sim: Simulator, watcher: EslClient, by) -> None:
    leg, control = parked(sim), parked(sim, "15550001002")
    assert watcher.api(f"sched_hangup +1 {leg}") == "+OK\n"
    (task,) = sim.scheduler.tasks
    assert (task.group, task.desc) == (leg, "switch_ivr_schedule_hangup")
    which = leg if by == "uuid" else str(task.task_id)
    assert watcher.api(f"sched_del {which}") == "+OK Deleted: 1\n"
    assert watcher.api(f"sched_del {which}") == "+OK Deleted: 0\n"
    # added later for the same second or a later one: it runs after the deleted one would have
    assert watcher.api(f"sched_hangup +1 {control}") == "+OK\n"
    hangup = watcher.event("CHANNEL_HANGUP", lambda e: e.get("Unique-ID") in (leg, control))
    assert hangup.get("Unique-ID") == control
    assert hangup.get("Hangup-Cause") == "ALLOTTED_TIMEOUT"
    assert watcher.api(f"uuid_exists {leg}") == "true"
    assert not sim.channels[leg].down


def test_sched_del_by_uuid_removes_the_channels_hangup_and_broadcast_tasks_together(
    sim: Simulator, watcher: EslClient
) -> None:
    leg, control = parked(sim), parked(sim, "15550001002")
    assert watcher.api(f"sched_hangup +2 {leg} NORMAL_CLEARING") == "+OK\n"
    assert watcher.api(f"sched_broadcast +1 {leg} {SOUND} aleg") == "+OK Message scheduled\n"
    assert watcher.api(f"sched_broadcast +1 {control} {SOUND} aleg") == "+OK Message scheduled\n"
    ids = [task.task_id for task in sim.scheduler.tasks]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert watcher.api(f"sched_del {leg}") == "+OK Deleted: 2\n"
    assert [task.group for task in sim.scheduler.tasks] == [control]
    assert watcher.api(f"sched_hangup +2 {control}") == "+OK\n"
    seen = events_until(
        watcher, lambda e: e.get("Event-Name") == "CHANNEL_HANGUP" and channel(control)(e)
    )
    assert ran(seen, "playback", control)  # the other channel's broadcast still ran
    assert not ran(seen, "playback", leg)
    assert not news_of(seen, leg)
    assert watcher.api(f"uuid_exists {leg}") == "true"


def played(conn: EslClient, uuid: str) -> tuple[Frame, Frame]:
    """The CHANNEL_EXECUTE of a playback on ``uuid`` and the PRIVATE_COMMAND that queued it
    (fired once the command's application is over: switch_ivr_parse_next_event)."""
    seen = events_until(
        conn,
        lambda e: (
            e.get("Event-Name") == "PRIVATE_COMMAND"
            and channel(uuid)(e)
            and e.get("execute-app-name") == "playback"
        ),
    )
    (execute,) = ran(seen, "playback", uuid)
    return execute, seen[-1]


def test_sched_broadcast_plays_at_its_time(make_sim) -> None:
    sim = make_sim(speed=WIDE_SPEED)
    conn = EslClient(sim.host, sim.port)
    conn.command("event plain CHANNEL_EXECUTE PRIVATE_COMMAND")
    leg = parked(sim)
    before = sim.clock.now()
    assert conn.api(f"sched_broadcast +2 {leg} {SOUND}") == "+OK Message scheduled\n"
    after = sim.clock.now()
    execute, command = played(conn, leg)
    assert execute.get("Application-Data") == SOUND
    due = math.floor(before) + 2
    assert timestamp(execute) >= due * 1_000_000
    assert timestamp(execute) < (math.floor(after) + 2 + PASS_SECONDS + 2.0) * 1_000_000
    # switch_ivr_broadcast's event: no Command header (no sendmsg), event-lock, 5 lead frames
    assert command.get("Command") is None
    assert command.get("call-command") == "execute"
    assert command.get("execute-app-name") == "playback"
    assert command.get("execute-app-arg") == SOUND
    assert command.get("event-lock") == "true"
    assert command.get("lead-frames") == "5"
    assert command.get("hold-bleg") is None
    conn.close()


def test_sched_broadcast_usage_and_a_channel_that_is_not_there(sim: Simulator, client) -> None:
    conn = client()
    usage = "-USAGE: [[+]<time>|@time] <uuid> <path> [aleg|bleg|both]\n"
    assert conn.api("sched_broadcast +1 nosuch") == usage
    assert conn.api(f"sched_broadcast +1 nosuch {SOUND}") == "+OK Message scheduled\n"
    assert conn.api("sched_del") == "-ERR Invalid syntax\n"
    assert conn.api("sched_del 0") == "+OK Deleted: 0\n"
    assert conn.api("sched_del 4294967") == "+OK Deleted: 0\n"
    assert conn.api("sched_del nosuch") == "+OK Deleted: 1\n"


def test_tasks_of_a_channel_that_is_gone_do_nothing(sim: Simulator, watcher: EslClient) -> None:
    leg, control = parked(sim), parked(sim, "15550001002")
    assert watcher.api(f"sched_broadcast +1 {leg} {SOUND} both") == "+OK Message scheduled\n"
    assert watcher.api(f"sched_hangup +1 {leg}") == "+OK\n"
    assert watcher.api(f"uuid_kill {leg}") == "+OK\n"
    sim.wait_gone(leg, timeout=TIMEOUT)
    assert watcher.api(f"sched_hangup +1 {control}") == "+OK\n"
    seen = events_until(
        watcher, lambda e: e.get("Event-Name") == "CHANNEL_HANGUP" and channel(control)(e)
    )
    assert seen[-1].get("Hangup-Cause") == "ALLOTTED_TIMEOUT"
    assert [e.get("Event-Name") for e in news_of(seen, leg)] == ["CHANNEL_HANGUP"]  # uuid_kill's
    assert sim.scheduler.tasks == []


def test_sched_hangup_plus_zero_hangs_up_at_once(sim: Simulator, watcher: EslClient) -> None:
    """mod_commands reads atol(argv[0] + 1): 0 seconds hangs up in the api call, no task."""
    leg = parked(sim)
    assert watcher.api(f"sched_hangup +0 {leg} USER_BUSY") == "+OK\n"
    assert sim.scheduler.tasks == []
    hangup = watcher.event("CHANNEL_HANGUP", channel(leg))
    assert hangup.get("Hangup-Cause") == "USER_BUSY"


def test_a_task_runs_on_the_first_pass_after_its_second_passes_every_half_second_from_its_add(
    make_sim,
) -> None:
    """switch_scheduler_task_thread: adding a task wakes the task thread (ADD_SCHEDULE), which
    then looks at its list every half second: `sched_hangup +2` sent .3 s into a second runs
    .3 s or more into the second it is due (a fixed lag of .2 s ran it before FreeSWITCH's
    pass)."""
    sim = make_sim(speed=2.0)  # lateness counts only twice in simulated time
    conn = EslClient(sim.host, sim.port)
    conn.command("event plain CHANNEL_HANGUP")
    leg = parked(sim)
    for _ in range(5):  # until the add falls .25-.45 s into a second (a busy machine is late)
        gevent.sleep(sim.clock.real(math.floor(sim.clock.now()) + 1.3 - sim.clock.now()))
        before = sim.clock.now()
        assert conn.api(f"sched_hangup +2 {leg}") == "+OK\n"
        after = sim.clock.now()
        if before % 1 >= 0.25 and after % 1 < 0.45 and math.floor(after) == math.floor(before):
            break
        assert conn.api(f"sched_del {leg}") == "+OK Deleted: 1\n"
    else:
        raise AssertionError("no add fell where this test needs it")
    hangup = conn.event("CHANNEL_HANGUP", channel(leg), timeout=TIMEOUT)
    ran = timestamp(hangup) / 1e6
    assert before + 2 <= ran < math.floor(before) + 3
    conn.close()


def test_a_late_pass_lets_a_playback_that_ended_before_it_complete_first(make_sim) -> None:
    """The simulator fell behind (its process did not run) past a playback's end and past the
    scheduler pass that hangs the channel up after it: every overdue greenlet wakes at once,
    yet the playback completes first, as on the switch, where the media thread and the task
    thread both keep real time."""
    sim = make_sim(speed=5.0)
    conn = EslClient(sim.host, sim.port)
    conn.command("event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP")
    leg = parked(sim)
    gevent.sleep(sim.clock.real(math.floor(sim.clock.now()) + 1.1 - sim.clock.now()))
    second = math.floor(sim.clock.now())
    assert conn.api(f"sched_hangup +2 {leg}") == "+OK\n"  # its pass: second + 2 or later
    assert conn.api(f"uuid_broadcast {leg} silence_stream://1000 aleg").startswith("+OK")
    (started,) = ran(events_until(conn, application("playback", leg)), "playback", leg)
    assert timestamp(started) / 1e6 + 1.0 < second + 1.7  # it ends .3 s before the pass or more
    time.sleep(sim.clock.real(second + 3 - sim.clock.now()))  # nothing runs past both
    seen = events_until(conn, lambda e: e.get("Event-Name") == "CHANNEL_HANGUP")
    names = [
        (e.get("Event-Name"), e.get("Application"))
        for e in news_of(seen, leg)
        if e.get("Event-Name") != "CHANNEL_EXECUTE"
    ]
    assert names == [("CHANNEL_EXECUTE_COMPLETE", "playback"), ("CHANNEL_HANGUP", None)]
    conn.close()


# -- sendmsg between media frames -----------------------------------------------------------------


@pytest.fixture
def sessions(outbound_server) -> Iterator[tuple[str, gevent.queue.Queue]]:
    """An outbound socket server; each session the simulator opens lands in the queue."""
    accepted: gevent.queue.Queue[EslClient] = gevent.queue.Queue()
    opened: list[EslClient] = []

    def handle(sock, address) -> None:
        conn = EslClient.accepted(sock)
        opened.append(conn)
        accepted.put(conn)
        conn.closed.wait()

    yield outbound_server(handle), accepted
    for conn in opened:
        conn.close()


def socket_leg(sim: Simulator, sessions) -> tuple[str, EslClient, EslClient]:
    """An answered phone leg handed to our socket server (async full, so it parks): its uuid,
    its session (connected, with myevents) and an inbound connection for api commands."""
    address, accepted = sessions
    dial = "{ignore_early_media=true}loopback/15550001001/phones"
    reply = sim.api(f"originate {dial} &socket('{address} async full')")
    assert reply.startswith("+OK "), reply
    session = accepted.get(timeout=TIMEOUT)
    session.connect()
    assert session.command("myevents").get("Reply-Text") == "+OK Events Enabled"
    inbound = EslClient(sim.host, sim.port)
    return reply.split()[1], session, inbound


def marker(session: EslClient, uuid: str, n: object, seen: list[Frame] | None = None) -> Frame:
    """Run `set marker=<n>` through sendmsg; its CHANNEL_EXECUTE is the frame tick it was
    taken at (the caller is then early in the next frame). Events received meanwhile are
    added to ``seen``."""
    assert session.execute("set", f"marker={n}").get("Reply-Text") == "+OK"
    is_marker = application("set", uuid)
    events = events_until(
        session,
        lambda e: (
            e.get("Event-Name") == "CHANNEL_EXECUTE"
            and is_marker(e)
            and e.get("Application-Data") == f"marker={n}"
        ),
    )
    if seen is not None:
        seen += events
    return events[-1]


def frame_index(event: Frame, period_us: int) -> int:
    """Which frame of its channel (counted from Caller-Channel-Created-Time) an event is in."""
    created = int(event.get("Caller-Channel-Created-Time") or 0)
    return (timestamp(event) - created) // period_us


def wide_frames(make_sim, sessions, frame_ms: int = WIDE_FRAME_MS, speed: float = WIDE_SPEED):
    sim = make_sim(outbound=sessions[0], speed=speed, media_frame_ms=frame_ms)
    return (sim, *socket_leg(sim, sessions))


def test_a_sendmsg_runs_at_the_next_frame_tick_within_one_frame(make_sim, sessions) -> None:
    _, leg, session, inbound = wide_frames(make_sim, sessions)
    period = WIDE_FRAME_MS * 1000
    for n in range(3):
        tick = marker(session, leg, n)
        assert session.execute("playback", SOUND).get("Reply-Text") == "+OK"
        execute = session.event("CHANNEL_EXECUTE", application("playback", leg), timeout=TIMEOUT)
        assert frame_index(execute, period) == frame_index(tick, period) + 1
        session.event("CHANNEL_EXECUTE_COMPLETE", application("playback", leg), timeout=TIMEOUT)
    inbound.close()


def test_a_sendmsg_broken_with_all_in_its_frame_never_runs_every_time(make_sim, sessions) -> None:
    """The ringback of an instantly failing destination: `sendmsg execute playback`, then
    `api uuid_break <uuid> all` (another connection) before the next frame: it never runs."""
    _, leg, session, inbound = wide_frames(make_sim, sessions)
    seen: list[Frame] = []
    for n in range(5):
        marker(session, leg, n, seen)
        assert session.execute("playback", SOUND).get("Reply-Text") == "+OK"
        assert inbound.api(f"uuid_break {leg} all") == "+OK\n"
    # a sendmsg sent afterwards runs a frame later: the playbacks would have run before it
    marker(session, leg, "last", seen)
    assert not ran(seen, "playback", leg)
    assert not [e for e in seen if e.get("Event-Name") == "PLAYBACK_START"]
    assert [e.get("Application-Data") for e in ran(seen, "set", leg)] == [
        *(f"marker={n}" for n in range(5)),
        "marker=last",
    ]
    assert inbound.api(f"uuid_exists {leg}") == "true"
    inbound.close()


def test_at_the_default_frame_a_break_that_came_within_the_frame_stopped_the_sendmsg(
    make_sim, sessions
) -> None:
    """Real time, 20 ms frames: each round sends the sendmsg and, once it is answered, the
    break; a break whose answer came back before the frame tick after the sendmsg was sent
    flushed it, so that playback never ran (on a loaded machine some rounds come too late:
    their playback may run)."""
    sim, leg, session, inbound = wide_frames(make_sim, sessions, frame_ms=20, speed=1.0)
    ch = sim.channels[leg]
    in_frame = []
    for n in range(10):
        sent = sim.clock.now_us()
        assert session.execute("playback", f"silence_stream://{100 + n}").get("Reply-Text") == "+OK"
        assert inbound.api(f"uuid_break {leg} all") == "+OK\n"
        if sim.clock.now_us() < ch.next_frame_us(sent):
            in_frame.append(f"silence_stream://{100 + n}")
    seen: list[Frame] = []
    marker(session, leg, "last", seen)
    played = {e.get("Application-Data") for e in ran(seen, "playback", leg)}
    assert in_frame, "no break came back within its frame: the machine is too loaded"
    assert not played & set(in_frame)
    inbound.close()


def test_a_break_without_all_leaves_the_queued_sendmsg_to_run(make_sim, sessions) -> None:
    _, leg, session, inbound = wide_frames(make_sim, sessions)
    seen: list[Frame] = []
    marker(session, leg, 0, seen)
    assert session.execute("playback", SOUND).get("Reply-Text") == "+OK"
    assert inbound.api(f"uuid_break {leg}") == "+OK\n"
    marker(session, leg, 1, seen)
    assert len(ran(seen, "playback", leg)) == 1
    inbound.close()


def test_a_broadcast_broken_in_its_frame_never_runs(make_sim, sessions) -> None:
    _, leg, session, inbound = wide_frames(make_sim, sessions)
    seen: list[Frame] = []
    marker(session, leg, 0, seen)
    assert inbound.api(f"uuid_broadcast {leg} {SOUND} aleg") == "+OK Message sent\n"
    assert inbound.api(f"uuid_break {leg} all") == "+OK\n"
    marker(session, leg, 1, seen)
    assert not ran(seen, "playback", leg)
    inbound.close()


def test_a_broadcast_waits_its_lead_frames_and_a_break_then_comes_too_late(
    make_sim, sessions
) -> None:
    """switch_ivr_broadcast asks for 5 lead frames; a silent loopback leg reads comfort noise,
    so switch_ivr_parse_event reads 9 frames before it executes. The event is off the queue by
    then: a `uuid_break ... all` meanwhile flushes nothing, and the application starting clears
    the break (switch_core_session_exec), so the playback plays to its end."""
    frame_ms = 500
    sim, leg, session, inbound = wide_frames(make_sim, sessions, frame_ms=frame_ms, speed=5.0)
    inbound.command("event plain CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE PRIVATE_COMMAND")
    tick = marker(session, leg, 0)
    assert inbound.api(f"uuid_broadcast {leg} {SOUND} aleg") == "+OK Message sent\n"
    with gevent.Timeout(TIMEOUT, AssertionError("the broadcast was never taken")):
        while sim.channels[leg].private_events:  # taken at the next frame tick
            gevent.sleep(0.001)
    assert inbound.api(f"uuid_break {leg} all") == "+OK\n"
    execute = inbound.event("CHANNEL_EXECUTE", application("playback", leg), timeout=TIMEOUT)
    assert frame_index(execute, frame_ms * 1000) == frame_index(tick, frame_ms * 1000) + 1 + 9
    done = inbound.event("CHANNEL_EXECUTE_COMPLETE", application("playback", leg), timeout=TIMEOUT)
    assert done.get("variable_playback_ms") == "3000"  # played to the end, not broken
    inbound.close()


# -- the frame clock and its setting ------------------------------------------------------------


def test_frame_ticks_run_from_the_channels_creation(make_sim) -> None:
    sim = make_sim(media_frame_ms=30)
    leg = parked(sim)
    ch = sim.channels[leg]
    created = ch.profile.times.created
    assert ch.media_ready
    assert ch.frame_grid() == (created, 30_000)
    assert ch.next_frame_us(created) == created + 30_000
    assert ch.next_frame_us(created + 29_999) == created + 30_000
    assert ch.next_frame_us(created + 30_000) == created + 60_000


def test_media_frame_ms_setting() -> None:
    assert SimConfig().media_frame_ms == 20
    assert "media_frame_ms" in KNOWN_KEYS["switch"]
    assert sim_config(media_frame_ms=40).media_frame_ms == 40
    for bad in (0, 2001, -20, "20", 20.5, True, None):
        with pytest.raises(ConfigError, match="media_frame_ms"):
            from_mapping({"switch": {"media_frame_ms": bad}})
    with pytest.raises(ConfigError, match="media_frame_ms"):
        SimConfig(media_frame_ms=0)


def test_a_runtime_already_past_is_a_repeat_interval() -> None:
    """switch_scheduler_add_task: `task_runtime < now` makes it repeat every that many seconds
    from now (so `sched_hangup 15 <uuid>`, an epoch long past, runs every 15 s)."""
    clock = SimClock(speed=10.0)
    scheduler = Scheduler(clock)
    runs: list[float] = []
    done = gevent.event.Event()

    def run() -> None:
        runs.append(clock.now())
        if len(runs) == 2:
            done.set()

    now = math.floor(clock.now())
    task_id = scheduler.add(2, run, "test", None)
    (task,) = scheduler.tasks
    assert (task.task_id, task.group, task.repeat) == (task_id, "none", 2)
    assert task.runtime in (now + 2, now + 3)
    try:
        assert done.wait(TIMEOUT)
        assert runs[1] - runs[0] == pytest.approx(2, abs=1)
        assert scheduler.tasks == [task]  # still there: it repeats until deleted
        assert scheduler.delete_id(task_id) == 1
        assert scheduler.add(math.floor(clock.now()) + 5, run, "test", "g") == task_id + 1
    finally:
        scheduler.stop()
