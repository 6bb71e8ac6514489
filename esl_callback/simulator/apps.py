"""Dialplan applications (mod_dptools and friends) as the simulator runs them.

Each application takes the channel and its (already expanded) argument string and blocks the
channel's session greenlet for as long as the real application would.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from esl_callback.simulator import media
from esl_callback.simulator.causes import cause_from_sip_status, cause_from_text
from esl_callback.simulator.channel import BREAK, DTMF, TIMEOUT, Channel

App = Callable[[Channel, str], None]

# Applications that run without media; the others pre-answer an unanswered inbound leg first.
NO_MEDIA_APPS = frozenset(
    {
        "answer",
        "pre_answer",
        "ring_ready",
        "respond",
        "hangup",
        "set",
        "export",
        "unset",
        "sleep",
        "park",
        "socket",
        "sched_hangup",
        "sched_broadcast",
        "sched_cancel",
        "bridge",
        "send_dtmf",
        "log",
        "info",
    }
)


def play_file(ch: Channel, path: str, on_dtmf: Callable[[str], bool] | None = None) -> str:
    """switch_ivr_play_file: PLAYBACK_START, play, playback_* variables, PLAYBACK_STOP.

    Returns ``done`` (played to the end), ``break`` (stopped by DTMF or uuid_break) or
    ``error`` (the channel went down, was transferred, or lost its media).
    """
    sim = ch.sim
    shown = media.full_path(path, ch.get_var("sound_prefix"))
    kind = media.file_type(path)
    type_header = [("Playback-File-Type", kind)] if kind else []
    ch.fire("PLAYBACK_START", tail=[*type_header, ("Playback-File-Path", shown)])
    length = media.duration(path, sim.config.sound_files, sim.config.default_sound_seconds)
    start = sim.clock.now()
    result = ch.wait(None if math.isinf(length) else length, on_dtmf=on_dtmf)
    played = min(sim.clock.now() - start, length)
    ms = int(played * 1000)
    samples = ms * 8
    ch.set_vars(
        [
            ("playback_last_offset_pos", str(samples)),
            ("playback_seconds", str(ms // 1000)),
            ("playback_ms", str(ms)),
            ("playback_samples", str(samples)),
        ]
    )
    status = {TIMEOUT: "done", BREAK: "break", DTMF: "break"}.get(result, "error")
    stop_status = "break" if status == "break" else "done"
    ch.fire(
        "PLAYBACK_STOP",
        tail=[*type_header, ("Playback-File-Path", shown), ("Playback-Status", stop_status)],
    )
    return status


def _terminators(ch: Channel, variable: str, default: str) -> str:
    value = ch.get_var(variable)
    if value is None:
        return default
    return "" if value.lower() == "none" else value


def app_playback(ch: Channel, arg: str) -> None:
    terminators = _terminators(ch, "playback_terminators", "*")

    def on_dtmf(digit: str) -> bool:
        if digit in terminators:
            ch.set_var("playback_terminator_used", digit)
            return True
        return False

    status = play_file(ch, arg, on_dtmf)
    ch.set_var(
        "current_application_response", "PLAYBACK ERROR" if status == "error" else "FILE PLAYED"
    )


def read_digits(
    ch: Channel,
    max_digits: int,
    prompt: str | None,
    timeout_ms: int,
    terminators: str,
    digit_timeout_ms: int,
) -> tuple[str, str]:
    """switch_ivr_read: prompt (cut short by the first digit), then collect digits.

    Returns (digits, terminator used or "").
    """
    digits: list[str] = []
    terminator = ""

    def take(digit: str) -> bool:
        nonlocal terminator
        if digit in terminators:
            terminator = digit
            return True
        digits.append(digit)
        return len(digits) >= max_digits

    if prompt:
        play_file(ch, prompt, lambda d: take(d) or True)
    wait_ms = timeout_ms
    while not terminator and len(digits) < max_digits and not ch.interrupted():
        if ch.wait(wait_ms / 1000.0, on_dtmf=lambda d: take(d) or True) != DTMF:
            break
        wait_ms = digit_timeout_ms
    return "".join(digits), terminator


def _record_read(ch: Channel, digits: str, terminator: str, variable: str | None) -> None:
    if terminator:
        ch.set_var("read_terminator_used", terminator)
    ch.set_var("read_result", "success" if digits else "timeout")
    if variable:
        ch.set_var(variable, digits or None)


def app_play_and_get_digits(ch: Channel, arg: str) -> None:
    """<min> <max> <tries> <timeout> <terminators> <file> <invalid_file> [<var> <regex>
    <digit_timeout> <transfer_on_fail>]"""
    parts = arg.split()
    if len(parts) < 7:
        return
    min_d, max_d, tries, timeout = (int(p) for p in parts[:4])
    terminators, prompt, invalid = parts[4], parts[5], parts[6]
    variable = parts[7] if len(parts) > 7 else None
    regex = parts[8] if len(parts) > 8 else None
    digit_timeout = int(parts[9]) if len(parts) > 9 else timeout
    for _attempt in range(max(tries, 1)):
        digits, terminator = read_digits(ch, max_d, prompt, timeout, terminators, digit_timeout)
        if ch.interrupted():
            return
        valid = len(digits) >= min_d and (not regex or re.fullmatch(regex, digits) is not None)
        if valid:
            _record_read(ch, digits, terminator, variable)
            return
        if invalid:
            play_file(ch, invalid)
    ch.set_var("read_result", "failure")
    if variable:
        ch.set_var(variable, None)


def app_read(ch: Channel, arg: str) -> None:
    """<min> <max> <sound file> <variable name> <timeout> <terminators> [<digit_timeout>]"""
    parts = arg.split()
    if len(parts) < 6:
        return
    max_d = int(parts[1])
    digit_timeout = int(parts[6]) if len(parts) > 6 else int(parts[4])
    digits, terminator = read_digits(ch, max_d, parts[2], int(parts[4]), parts[5], digit_timeout)
    if not ch.interrupted():
        _record_read(ch, digits, terminator, parts[3])


def app_sleep(ch: Channel, arg: str) -> None:
    ms = int(arg) if arg.strip().isdigit() else 0
    ch.wait(ms / 1000.0)


def app_park(ch: Channel, arg: str) -> None:
    """switch_ivr_park: CHANNEL_PARK, serve sendmsg/DTMF until hangup or transfer, UNPARK.

    It is also what an async `socket` session runs, so `park_timeout` bounds both: between
    applications, once it has passed, the channel is hung up.
    """
    ch.controlled = True
    expires, cause = _park_timeout(ch)
    ch.fire("CHANNEL_PARK")
    while True:
        remaining = None if expires is None else expires - ch.sim.clock.now()
        result = ch.wait(remaining, until=lambda: not ch.controlled)
        if result == TIMEOUT:
            ch.hangup(cause)
            break
        if result != BREAK:
            break
    ch.controlled = False
    ch.fire("CHANNEL_UNPARK")


def _park_timeout(ch: Channel) -> tuple[float | None, str]:
    """`park_timeout` (`<seconds>[:<cause>]`), read and cleared as the park starts: when the
    park expires, on the switch's whole-second clock (None: never; the seconds are read like
    C's atoi, so a value that is not a number expires at once) and the cause it hangs up with
    (NORMAL_CLEARING unless named)."""
    value = ch.get_var("park_timeout")
    if value is None:
        return None, "NORMAL_CLEARING"
    ch.set_var("park_timeout", None)
    seconds_text, colon, cause_text = value.partition(":")
    cause = cause_from_text(cause_text) if colon else "NORMAL_CLEARING"
    number = re.match(r"\s*([+-]?\d+)", seconds_text)
    seconds = int(number.group(1)) if number else 0
    if seconds < 0:
        return None, cause
    return math.floor(ch.sim.clock.now()) + seconds, cause


def app_set(ch: Channel, arg: str) -> None:
    name, sep, value = arg.partition("=")
    if name:
        ch.set_var(name.strip(), value if sep else None)


def app_export(ch: Channel, arg: str) -> None:
    name, sep, value = arg.partition("=")
    name = name.strip()
    if not name:
        return
    ch.set_var(name, value if sep else None)
    exported = [v for v in (ch.get_var("export_vars") or "").split(",") if v]
    if name not in exported:
        exported.append(name)
    ch.set_var("export_vars", ",".join(exported))


def app_unset(ch: Channel, arg: str) -> None:
    if arg.strip():
        ch.set_var(arg.strip(), None)


def app_say(ch: Channel, arg: str) -> None:
    """<module> <type> <method> [<gender>] <text>: about 0.6 s of speech per character."""
    text = arg.split()[-1] if arg.split() else ""
    ch.wait(0.6 * max(len(text), 1))


def app_send_dtmf(ch: Channel, arg: str) -> None:
    digits = arg.split("@", 1)[0].strip()
    ch.send_dtmf(digits)


def app_sched_hangup(ch: Channel, arg: str) -> None:
    """mod_dptools sched_hangup ``[+]<time> [<cause>] [bleg]``: like the api (``+0`` hangs up
    at once); ``bleg`` hangs up the bridge partner when the task runs."""
    from esl_callback.simulator.api import hangup_runtime

    parts = arg.split(None, 4)
    if not parts:
        return
    cause = cause_from_text(parts[1]) if len(parts) > 1 else "ALLOTTED_TIMEOUT"
    runtime = hangup_runtime(ch.sim, parts[0])
    if runtime is None:
        ch.hangup(cause)
        return
    bleg = len(parts) > 2 and parts[2].lower() == "bleg"
    ch.sim.schedule_hangup(runtime, ch.uuid, cause, bleg)


def app_sched_broadcast(ch: Channel, arg: str) -> None:
    """mod_dptools sched_broadcast ``[+]<time> <path> [aleg|bleg|both]``: a task in the
    channel's group; its id goes to ``last_sched_id``."""
    from esl_callback.simulator.api import broadcast_flags, sched_runtime

    parts = arg.split(None, 5)
    if len(parts) < 2:
        return
    flags = broadcast_flags(parts[2] if len(parts) > 2 else None, ignore_case=False)
    task_id = ch.sim.schedule_broadcast(sched_runtime(ch.sim, parts[0]), ch.uuid, parts[1], flags)
    ch.set_var("last_sched_id", str(task_id))


def app_sched_cancel(ch: Channel, arg: str) -> None:
    """mod_dptools sched_cancel ``[<task_id>|<group>]``: the channel's own tasks by default."""
    from esl_callback.simulator.api import delete_tasks

    delete_tasks(ch.sim, arg.strip() or ch.uuid)


def app_hangup(ch: Channel, arg: str) -> None:
    ch.hangup(cause_from_text(arg))


def app_answer(ch: Channel, arg: str) -> None:
    ch.answer()


def app_pre_answer(ch: Channel, arg: str) -> None:
    ch.pre_answer()


def app_ring_ready(ch: Channel, arg: str) -> None:
    ch.ring_ready()


def app_noop(ch: Channel, arg: str) -> None:
    """log, info."""


def app_respond(ch: Channel, arg: str) -> None:
    """`respond <code>`: on a remote phone (the far end of a sofia gateway or user leg) a SIP
    final response refuses the call, and the leg that called it ends with the cause mod_sofia
    makes of the status (486: USER_BUSY); 180/183 ring or bring early media. mod_loopback's
    channels ignore it (their caller sees NORMAL_CLEARING when the far end then ends, as the
    recordings show)."""
    status = arg.split()[0] if arg.split() else ""
    if not ch.silent or not status.isdigit():
        return
    code = int(status)
    if code == 180:
        ch.ring_ready()
    elif code == 183:
        ch.pre_answer()
    elif code >= 300 and not ch.answered:
        ch.hangup(cause_from_sip_status(code))


def app_echo(ch: Channel, arg: str) -> None:
    ch.wait(None)


def app_socket(ch: Channel, arg: str) -> None:
    from esl_callback.simulator.outbound import socket_app

    socket_app(ch, arg)


def app_bridge(ch: Channel, arg: str) -> None:
    from esl_callback.simulator.originate import bridge_app

    bridge_app(ch, arg)


APPS: dict[str, App] = {
    "answer": app_answer,
    "pre_answer": app_pre_answer,
    "ring_ready": app_ring_ready,
    "respond": app_respond,
    "hangup": app_hangup,
    "playback": app_playback,
    "play_and_get_digits": app_play_and_get_digits,
    "read": app_read,
    "sleep": app_sleep,
    "set": app_set,
    "export": app_export,
    "unset": app_unset,
    "say": app_say,
    "park": app_park,
    "bridge": app_bridge,
    "send_dtmf": app_send_dtmf,
    "sched_hangup": app_sched_hangup,
    "sched_broadcast": app_sched_broadcast,
    "sched_cancel": app_sched_cancel,
    "socket": app_socket,
    "echo": app_echo,
    "log": app_noop,
    "info": app_noop,
}
