"""API commands (what ``api`` / ``bgapi`` run), with FreeSWITCH's replies and error texts.

Texts marked "captured" below were recorded from FreeSWITCH 1.10.12; the others follow
mod_commands' wording.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from esl_callback.simulator import say
from esl_callback.simulator.causes import cause_from_text
from esl_callback.simulator.channel import STATE_NAMES, Channel
from esl_callback.simulator.clock import local_stamp
from esl_callback.simulator.originate import originate_api
from esl_callback.simulator.scheduler import atol, is_digit_string
from esl_callback.simulator.session import queue_private_event
from esl_callback.switch.protocol import Command

if TYPE_CHECKING:
    from esl_callback.simulator.core import Simulator

log = logging.getLogger(__name__)

VERSION = "1.10.12-release"
NO_SUCH_CHANNEL = "-ERR No such channel!\n"  # captured (uuid_kill, uuid_getvar)

ApiFunction = Callable[["Simulator", str], str]

SHOW_CHANNELS_COLUMNS = [
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "application",
    "application_data",
    "dialplan",
    "context",
    "read_codec",
    "read_rate",
    "read_bit_rate",
    "write_codec",
    "write_rate",
    "write_bit_rate",
    "secure",
    "hostname",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "sent_callee_name",
    "sent_callee_num",
    "initial_cid_name",
    "initial_cid_num",
    "initial_ip_addr",
    "initial_dest",
    "initial_dialplan",
    "initial_context",
]
SHOW_CALLS_B_COLUMNS = [
    "b_uuid",
    "b_direction",
    "b_created",
    "b_created_epoch",
    "b_name",
    "b_state",
    "b_cid_name",
    "b_cid_num",
    "b_ip_addr",
    "b_dest",
    "b_presence_id",
    "b_presence_data",
    "b_accountcode",
    "b_callstate",
    "b_callee_name",
    "b_callee_num",
    "b_callee_direction",
    "b_sent_callee_name",
    "b_sent_callee_num",
]
SHOW_CALLS_A_COLUMNS = [
    "uuid",
    "direction",
    "created",
    "created_epoch",
    "name",
    "state",
    "cid_name",
    "cid_num",
    "ip_addr",
    "dest",
    "presence_id",
    "presence_data",
    "accountcode",
    "callstate",
    "callee_name",
    "callee_num",
    "callee_direction",
    "call_uuid",
    "hostname",
    "sent_callee_name",
    "sent_callee_num",
]


def _args(arg: str) -> list[str]:
    return (arg or "").split()


def _channel(sim: Simulator, uuid: str) -> Channel | None:
    return sim.channels.get(uuid)


def api_status(sim: Simulator, arg: str) -> str:
    up_us = sim.clock.now_us() - sim.started_us
    seconds, micro = divmod(up_us, 1_000_000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    years, day = divmod(days, 365)
    stats = sim.stats
    cfg = sim.config
    return (
        f"UP {years} years, {day} days, {hour} hours, {minute} minutes, {sec} seconds, "
        f"{micro // 1000} milliseconds, {micro % 1000} microseconds\n"
        f"FreeSWITCH (Version {VERSION}  64bit) is ready\n"
        f"{stats.since_startup} session(s) since startup\n"
        f"{len(sim.channels)} session(s) - peak {stats.peak}, last 5min {stats.peak} \n"
        f"{stats.current_sps()} session(s) per Sec out of max {cfg.sessions_per_second}, "
        f"peak {stats.sps_peak}, last 5min {stats.sps_peak} \n"
        f"{cfg.max_sessions} session(s) max\n"
        "min idle cpu 0.00/99.00\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


def api_version(sim: Simulator, arg: str) -> str:
    return f"FreeSWITCH Version {VERSION}~64bit ( 64bit)\n"  # captured


def api_uptime(sim: Simulator, arg: str) -> str:
    return f"{(sim.clock.now_us() - sim.started_us) // 1_000_000}\n"


def api_global_getvar(sim: Simulator, arg: str) -> str:
    name = (arg or "").strip()
    if not name:
        return "".join(f"{k}={v}\n" for k, v in sim.config.globals.items())
    return sim.config.globals.get(name, "")


def api_global_setvar(sim: Simulator, arg: str) -> str:
    name, sep, value = (arg or "").partition("=")
    if not name.strip() or not sep:
        return "-USAGE: <var>=<value>\n"
    sim.config.globals[name.strip()] = value.strip()
    return "+OK\n"


def api_uuid_kill(sim: Simulator, arg: str) -> str:
    argv = _args(arg)
    if not argv:
        return "-USAGE: <uuid> [cause]\n"
    ch = _channel(sim, argv[0])
    if ch is None:
        return NO_SUCH_CHANNEL
    ch.hangup(cause_from_text(argv[1]) if len(argv) > 1 else "NORMAL_CLEARING")
    return "+OK\n"  # captured


def api_uuid_exists(sim: Simulator, arg: str) -> str:
    return "true" if _channel(sim, (arg or "").strip()) else "false"


def api_uuid_getvar(sim: Simulator, arg: str) -> str:
    argv = _args(arg)
    if len(argv) < 2:
        return "-USAGE: <uuid> <var>\n"
    ch = _channel(sim, argv[0])
    if ch is None:
        return NO_SUCH_CHANNEL
    value = ch.get_var(argv[1])
    return value if value is not None else "_undef_"  # captured


def api_uuid_setvar(sim: Simulator, arg: str) -> str:
    argv = (arg or "").split(" ", 2)
    argv = [a for a in argv[:2] if a] + argv[2:]
    if len(argv) < 2:
        return "-USAGE: <uuid> <var> [value]\n"  # captured
    ch = _channel(sim, argv[0])
    if ch is None:
        return NO_SUCH_CHANNEL
    ch.set_var(argv[1], argv[2] if len(argv) > 2 else None)
    return "+OK\n"  # captured


def api_uuid_send_dtmf(sim: Simulator, arg: str) -> str:
    argv = _args(arg)
    if len(argv) < 2:
        return "-USAGE: <uuid> <dtmf_data>\n"
    ch = _channel(sim, argv[0])
    if ch is None:
        return "-ERR Cannot locate session!\n"
    ch.send_dtmf(argv[1].split("@", 1)[0], spacing=0.02)
    return f"+OK {ch.uuid} sent DTMF {argv[1]}.\n"  # captured


def api_uuid_bridge(sim: Simulator, arg: str) -> str:
    from esl_callback.simulator.bridge import uuid_bridge

    argv = _args(arg)
    if len(argv) < 2:
        return "-USAGE: <uuid> <other_uuid>\n"
    for other in argv[1:3]:
        a, b = _channel(sim, argv[0]), _channel(sim, other)
        if a is None or b is None or a is b or a.down or b.down or a.bridge or b.bridge:
            continue
        uuid_bridge(a, b)
        return f"+OK {other}\n"  # captured
    return "-ERR Invalid uuid\n"  # captured


def api_uuid_break(sim: Simulator, arg: str) -> str:
    """break_function: ``<uuid> [all] [both]``; ``all`` also drops the queued sendmsg (a
    queued execute then never runs), ``both`` does the same to the bridge partner."""
    uuid, _, flag = (arg or "").strip().partition(" ")
    if not uuid:
        return "-USAGE: <uuid> [all]\n"
    ch = _channel(sim, uuid)
    if ch is None:
        return "-ERR No such channel!\n"
    targets = [ch]
    if "both" in flag and ch.bridge_partner is not None:
        targets.append(ch.bridge_partner)
    for target in targets:
        if "all" in flag:
            target.flush_private_events()
        target.break_flag = True
        target.wake()
    return "+OK\n"  # captured


class MediaFlag(enum.IntFlag):
    """switch_media_flag_t, the flags of switch_ivr_broadcast that the simulator uses."""

    NONE = 0
    ECHO_ALEG = 1 << 1
    ECHO_BLEG = 1 << 2
    LOOP = 1 << 4
    HOLD_BLEG = 1 << 5


def _separate(arg: str, count: int) -> list[str]:
    """switch_separate_string on blanks into ``count`` fields at most (the last keeps the rest)."""
    return [part.strip() for part in (arg or "").split(None, count - 1)]


def _broadcast_command(app: str, arg: str, flags: int) -> Command:
    """The execute event switch_ivr_broadcast queues (no ``Command`` header: no sendmsg)."""
    headers = [("call-command", "execute"), ("execute-app-name", app)]
    headers += [("execute-app-arg", arg), ("event-lock", "true"), ("lead-frames", "5")]
    if flags & MediaFlag.LOOP:
        headers.append(("loops", "-1"))
    if flags & MediaFlag.HOLD_BLEG:
        headers.append(("hold-bleg", "true"))
    return Command("", headers)


def broadcast(sim: Simulator, uuid: str, path: str, flags: int) -> bool:
    """switch_ivr_broadcast: queue ``<app>::<arg>`` (``playback`` of ``path`` by default) for
    the bridge partner (bleg) first, then for the channel (aleg); ``<app>!<cause>::<arg>``
    queues a hangup with that cause after it. False when the channel does not exist."""
    ch = _channel(sim, uuid)
    if ch is None:
        return False
    app, arg = "playback", path
    colon = path.find(":")
    if colon >= 0 and path[colon + 1 : colon + 2] == ":":
        app, arg = path[:colon], path[colon + 2 :]
    app, bang, cause = app.partition("!")
    partner = ch.bridge_partner
    if flags & MediaFlag.ECHO_BLEG and partner is not None:
        queue_private_event(partner, _broadcast_command(app, arg, flags))
    if flags & MediaFlag.ECHO_ALEG:
        queue_private_event(ch, _broadcast_command(app, arg, flags))
    if bang:
        headers = [("call-command", "execute"), ("execute-app-name", "hangup")]
        headers += [("execute-app-arg", cause or "normal_clearing"), ("event-lock", "true")]
        queue_private_event(ch, Command("", headers))
    return True


def api_uuid_broadcast(sim: Simulator, arg: str) -> str:
    """uuid_broadcast_function: ``<uuid> <path> [aleg|bleg|holdb|both]`` (the leg words are
    looked for anywhere in the third field); without one, aleg with the partner on hold."""
    argv = _separate(arg, 4)
    if len(argv) < 2:
        return "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
    flags = MediaFlag.NONE
    if len(argv) > 2:
        leg = argv[2].lower()
        if "both" in leg:
            flags |= MediaFlag.ECHO_ALEG | MediaFlag.ECHO_BLEG
        if "aleg" in leg:
            flags |= MediaFlag.ECHO_ALEG
        if "bleg" in leg:
            flags = (flags & ~MediaFlag.HOLD_BLEG) | MediaFlag.ECHO_BLEG
        if "holdb" in leg:
            flags = (flags & ~MediaFlag.ECHO_BLEG) | MediaFlag.HOLD_BLEG
    else:
        flags = MediaFlag.ECHO_ALEG | MediaFlag.HOLD_BLEG
    if broadcast(sim, argv[0], argv[1], flags):
        return "+OK Message sent\n"
    return "-ERR invalid uuid\n"


def sched_runtime(sim: Simulator, when: str) -> int:
    """The runtime of sched_broadcast: ``@<epoch>``, ``+<seconds>`` from now, or ``<epoch>``
    (whole seconds, read like C's atol)."""
    if when.startswith("@"):
        return atol(when[1:])
    if when.startswith("+"):
        return math.floor(sim.clock.now()) + atol(when[1:])
    return atol(when)


def broadcast_flags(leg: str | None, ignore_case: bool) -> int:
    """The leg of sched_broadcast (the api compares without case, the application with):
    aleg when none is given, nothing for a word it does not know."""
    if leg is None:
        return MediaFlag.ECHO_ALEG
    word = leg.lower() if ignore_case else leg
    if word == "both":
        return MediaFlag.ECHO_ALEG | MediaFlag.ECHO_BLEG
    if word == "aleg":
        return MediaFlag.ECHO_ALEG
    if word == "bleg":
        return MediaFlag.ECHO_BLEG
    return MediaFlag.NONE


def api_sched_broadcast(sim: Simulator, arg: str) -> str:
    """sched_broadcast_function: a task in the channel's group that broadcasts at its time; it
    is added (and the answer is the same) whether or not the channel exists."""
    argv = _separate(arg, 4)
    if len(argv) < 3 or not argv[0]:
        return "-USAGE: [[+]<time>|@time] <uuid> <path> [aleg|bleg|both]\n"
    leg = argv[3] if len(argv) > 3 else None
    flags = broadcast_flags(leg, ignore_case=True)
    sim.schedule_broadcast(sched_runtime(sim, argv[0]), argv[1], argv[2], flags)
    return "+OK Message scheduled\n"


def hangup_runtime(sim: Simulator, when: str) -> int | None:
    """The runtime of sched_hangup (api and application): ``+<seconds>`` from now or
    ``<epoch>``; None, to hang up at once, when what follows the first character reads 0
    (both do ``atol(argv[0] + 1)``, so ``+0`` and a one-digit epoch hang up now)."""
    seconds = atol(when[1:])
    if seconds == 0:
        return None
    return math.floor(sim.clock.now()) + seconds if when.startswith("+") else atol(when)


def api_sched_hangup(sim: Simulator, arg: str) -> str:
    """sched_hangup_function: a task in the channel's group hangs it up at its time."""
    argv = _separate(arg, 4)
    if not argv:
        return "-USAGE: [+]<time> <uuid> [<cause>]\n"  # captured
    ch = _channel(sim, argv[1]) if len(argv) > 1 else None
    if ch is None:
        return NO_SUCH_CHANNEL
    cause = cause_from_text(argv[2]) if len(argv) > 2 else "ALLOTTED_TIMEOUT"
    runtime = hangup_runtime(sim, argv[0])
    if runtime is None:
        ch.hangup(cause)
    else:
        sim.schedule_hangup(runtime, ch.uuid, cause)
    return "+OK\n"  # captured


def delete_tasks(sim: Simulator, which: str) -> int:
    """``<task_id>`` (digits; 0 deletes nothing) or ``<group>`` (a channel uuid: all of that
    channel's tasks), as sched_del and the sched_cancel application read it."""
    if is_digit_string(which):
        task_id = atol(which) & 0xFFFFFFFF
        return sim.scheduler.delete_id(task_id) if task_id > 0 else 0
    return sim.scheduler.delete_group(which)


def api_sched_del(sim: Simulator, arg: str) -> str:
    """sched_del_function: answers how many tasks it deleted."""
    if not arg:
        return "-ERR Invalid syntax\n"
    return f"+OK Deleted: {delete_tasks(sim, arg)}\n"


def api_hupall(sim: Simulator, arg: str) -> str:
    argv = _args(arg)
    cause = cause_from_text(argv[0]) if argv else "NORMAL_CLEARING"
    var, value = (argv[1], argv[2]) if len(argv) > 2 else (None, None)
    for ch in list(sim.channels.values()):
        if var is None or ch.get_var(var) == value:
            ch.hangup(cause)
    if var is not None:
        return f"+OK hangup all channels matching [{var}]=[{value}] with cause: {cause}\n"
    return f"+OK hangup all channels with cause: {cause}\n"


def api_reloadxml(sim: Simulator, arg: str) -> str:
    return "+OK [Success]\n"


def api_chat(sim: Simulator, arg: str) -> str:
    """``chat <proto>|<from>|<to>|<message>|[<content-type>]``: an outgoing SMS, sent before
    the command returns (blocking: see `Simulator.send_chat`). The answers have no newline
    (captured)."""
    parts = (arg or "").split("|", 4)
    if len(parts) < 4:
        return "Invalid"
    ctype = parts[4] if len(parts) > 4 else ""
    if sim.send_chat(parts[0], parts[1], parts[2], parts[3], ctype):
        return "Sent"  # captured
    return "Error! Message Not Sent"  # captured


def api_sofia_contact(sim: Simulator, arg: str) -> str:
    """``sofia_contact [profile/]user[@domain]``: where the user's phone is registered, or
    ``error/user_not_registered`` (captured, both without a newline)."""
    target = (arg or "").strip().split("~", 1)[0]
    user = target.rpartition("/")[2].split("@", 1)[0]
    if not target:
        return ""
    return sim.contact(user) or "error/user_not_registered"


def _initial(ch: Channel) -> tuple[str, str]:
    return ch.initial_cid


def _channel_row(sim: Simulator, ch: Channel) -> dict[str, str]:
    p = ch.profile
    created = ch.profile.times.created
    init_name, init_num = _initial(ch)
    flipped = ch.get_var("channel_cid_flipped") == "yes"
    return {
        "uuid": ch.uuid,
        "direction": ch.direction,
        "created": local_stamp(created),
        "created_epoch": str(created // 1_000_000),
        "name": ch.name,
        "state": STATE_NAMES[ch.running_state],
        "cid_name": p.caller_id_name,
        "cid_num": p.caller_id_number,
        "ip_addr": "",
        "dest": p.destination_number,
        "application": ch.get_var("current_application") or "",
        "application_data": ch.get_var("current_application_data") or "",
        "dialplan": p.dialplan,
        "context": p.context,
        "read_codec": "L16",
        "read_rate": "8000",
        "read_bit_rate": "128000",
        "write_codec": "L16",
        "write_rate": "8000",
        "write_bit_rate": "128000",
        "secure": "",
        "hostname": sim.config.hostname,
        "presence_id": ch.get_var("presence_id") or "",
        "presence_data": ch.get_var("presence_data") or "",
        "accountcode": ch.get_var("accountcode") or "",
        "callstate": ch.callstate,
        "callee_name": p.callee_id_name,
        "callee_num": p.callee_id_number,
        "callee_direction": "RECV" if flipped else "",
        "call_uuid": ch.uuid if ch.direction == "outbound" else "",
        "sent_callee_name": "",
        "sent_callee_num": "",
        "initial_cid_name": init_name,
        "initial_cid_num": init_num,
        "initial_ip_addr": "",
        "initial_dest": ch.initial_dest,
        "initial_dialplan": "xml",
        "initial_context": ch.initial_context,
    }


def _table(rows: list[list[str]], columns: list[str], as_json: bool) -> str:
    if as_json:
        if not rows:
            return '{"row_count": 0}\n'  # captured
        objs = [dict(zip(columns, row, strict=True)) for row in rows]
        return json.dumps({"row_count": len(rows), "rows": objs}, separators=(",", ":"))
    if not rows:
        return "\n0 total.\n"  # captured
    lines = [",".join(columns)] + [",".join(row) for row in rows]
    return "\n".join(lines) + f"\n\n{len(rows)} total.\n"


def api_show(sim: Simulator, arg: str) -> str:
    argv = _args(arg)
    if not argv:
        return "-USAGE: codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels\n"
    what = argv[0].lower()
    as_json = len(argv) > 2 and argv[1].lower() == "as" and argv[2].lower() == "json"
    # FreeSWITCH lists by created_epoch; channels created in the same second come newest first.
    listed = sim.listed_channels()
    order = {ch.uuid: i for i, ch in enumerate(listed)}
    channels = sorted(listed, key=lambda c: (c.profile.times.created // 1_000_000, -order[c.uuid]))
    if what == "channels":
        if len(argv) > 1 and argv[1] == "count":
            return f"\n{len(channels)} total.\n"
        if len(argv) > 2 and argv[1] == "like":
            channels = [c for c in channels if argv[2] in " ".join(_channel_row(sim, c).values())]
        rows = [[_channel_row(sim, c)[k] for k in SHOW_CHANNELS_COLUMNS] for c in channels]
        return _table(rows, SHOW_CHANNELS_COLUMNS, as_json)
    if what == "calls":
        heads = [c for c in channels if c.bridge is not None and c.bridge.a is c]
        if len(argv) > 1 and argv[1] == "count":
            return f"\n{len(heads)} total.\n"
        columns = SHOW_CALLS_A_COLUMNS + SHOW_CALLS_B_COLUMNS + ["call_created_epoch"]
        rows = []
        for a in heads:
            row_a = _channel_row(sim, a)
            row_b = _channel_row(sim, a.bridge.b) if a.bridge else {}
            rows.append(
                [row_a[k] for k in SHOW_CALLS_A_COLUMNS]
                + [row_b.get(k[2:], "") for k in SHOW_CALLS_B_COLUMNS]
                + [row_a["created_epoch"]]
            )
        return _table(rows, columns, as_json)
    return f"-ERR Unknown command {argv[0]}\n"


COMMANDS: dict[str, ApiFunction] = {
    "status": api_status,
    "version": api_version,
    "uptime": api_uptime,
    "global_getvar": api_global_getvar,
    "global_setvar": api_global_setvar,
    "originate": originate_api,
    "uuid_kill": api_uuid_kill,
    "uuid_exists": api_uuid_exists,
    "uuid_getvar": api_uuid_getvar,
    "uuid_setvar": api_uuid_setvar,
    "uuid_send_dtmf": api_uuid_send_dtmf,
    "uuid_bridge": api_uuid_bridge,
    "uuid_break": api_uuid_break,
    "uuid_broadcast": api_uuid_broadcast,
    "sched_hangup": api_sched_hangup,
    "sched_broadcast": api_sched_broadcast,
    "sched_del": api_sched_del,
    "hupall": api_hupall,
    "reloadxml": api_reloadxml,
    "chat": api_chat,
    "sofia_contact": api_sofia_contact,
    "say_string": lambda sim, arg: say.say_string(arg),
    "show": api_show,
}


def execute(sim: Simulator, command: str, arg: str | None) -> str:
    """switch_api_execute as the event socket uses it (output never empty)."""
    func = COMMANDS.get(command.lower()) if command else None
    if func is None:
        return f"-ERR {command} Command not found!\n"  # captured
    try:
        return func(sim, arg or "")
    except Exception:
        log.exception("api %s %s failed", command, arg)
        return f"-ERR {command} failed\n"
