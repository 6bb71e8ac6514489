"""The session thread of a channel: its state machine, executing applications, sendmsg.

Mirrors switch_core_state_machine.c (states), switch_core_session_exec (CHANNEL_EXECUTE /
CHANNEL_EXECUTE_COMPLETE and the current_application* variables) and switch_ivr_parse_event
(sendmsg: execute with loops and event-lock, hangup).
"""

from __future__ import annotations

import logging
import re
import uuid as uuidlib
from typing import TYPE_CHECKING

from esl_callback.simulator.causes import cause_from_text
from esl_callback.simulator.channel import (
    CS_CONSUME_MEDIA,
    CS_EXCHANGE_MEDIA,
    CS_EXECUTE,
    CS_HANGUP,
    CS_INIT,
    CS_ROUTING,
    CS_SOFT_EXECUTE,
    Channel,
)
from esl_callback.simulator.scheduler import atol
from esl_callback.switch.protocol import Command

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

_VAR_REF = re.compile(r"\$\$?\{([^{}]+)\}")


def run(ch: Channel) -> None:
    """CS_INIT .. CS_DESTROY for one channel."""
    ch.state = CS_INIT
    ch.set_running_state(CS_INIT)
    ch.state = CS_ROUTING
    ch.fire("CHANNEL_CREATE")
    ch.created.set()
    if ch.direction == "inbound":
        _route(ch)
    else:
        ch.state = CS_CONSUME_MEDIA
        ch.set_running_state(CS_CONSUME_MEDIA)
    while not ch.down:
        state = ch.state
        if state == CS_EXECUTE:
            _execute_state(ch)
        elif state in (CS_SOFT_EXECUTE, CS_EXCHANGE_MEDIA):
            from esl_callback.simulator import bridge

            bridge.run_state(ch)
        elif ch.transfer is not None:
            _take_transfer(ch)
        else:
            ch.sleep_until_woken(state)
    finish(ch)


def finish(ch: Channel) -> None:
    """Hangup, reporting and destroy states (idempotent)."""
    if ch.running_state < CS_HANGUP:
        ch._hangup_state()
    if ch.running_state == CS_HANGUP:
        ch._reporting_state()
        ch._destroy_state()


def _route(ch: Channel) -> None:
    """CS_ROUTING: hunt the dialplan for the destination number."""
    ch.set_running_state(CS_ROUTING)
    apps = ch.sim.dialplan.hunt(ch)
    ch.set_var("call_uuid", ch.uuid)
    if apps is None:
        ch.hangup("NO_ROUTE_DESTINATION")
        return
    ch.extension = apps
    ch.ext_index = 0
    ch.state = CS_EXECUTE


def _execute_state(ch: Channel) -> None:
    """CS_EXECUTE: run the rest of the extension; hang up NORMAL_CLEARING when it ends."""
    ch.set_running_state(CS_EXECUTE)
    ch.set_var("call_uuid", ch.uuid)
    while ch.ext_index < len(ch.extension) and not ch.down and ch.transfer is None:
        app, arg = ch.extension[ch.ext_index]
        ch.ext_index += 1
        execute(ch, app, arg)
    if ch.transfer is not None and not ch.down:
        _take_transfer(ch)
    elif not ch.down and ch.state == CS_EXECUTE:
        ch.hangup("NORMAL_CLEARING")


def _take_transfer(ch: Channel) -> None:
    move: Callable[[], None] | None = ch.transfer
    ch.transfer = None
    if move is not None:
        move()


def expand(ch: Channel, text: str) -> str:
    """switch_channel_expand_variables for ``${var}`` and ``$${global}``."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if match.group(0).startswith("$$"):
            return ch.sim.config.globals.get(name, "")
        return ch.vars.get(name) or ch.sim.config.globals.get(name, "")

    return _VAR_REF.sub(sub, text) if "$" in text else text


def execute(ch: Channel, app_name: str, arg: str | None) -> bool:
    """switch_core_session_execute_application: run one application with its two events."""
    from esl_callback.simulator.apps import APPS, NO_MEDIA_APPS

    if ch.down:
        return False
    func = APPS.get(app_name)
    if func is None:
        log.warning("%s invalid application %s", ch.uuid, app_name)
        ch.hangup("DESTINATION_OUT_OF_ORDER")
        return False
    if app_name not in NO_MEDIA_APPS and not ch.media_ready and ch.direction == "inbound":
        ch.pre_answer()
    app_uuid = ch.vars.pop("app_uuid", None) or str(uuidlib.uuid4())
    data = expand(ch, arg) if arg else None
    ch.app_log.append((app_name, data, ch.sim.clock.now_us()))
    ch.set_var("current_application", app_name)
    ch.set_var("current_application_data", data)
    ch.set_var("current_application_response", None)
    data_header = [("Application-Data", data)] if data is not None else []
    ch.fire(
        "CHANNEL_EXECUTE",
        tail=[("Application", app_name), *data_header, ("Application-UUID", app_uuid)],
    )
    ch.break_flag = False
    ch.set_var("current_application", app_name)
    ch.app_depth += 1
    try:
        func(ch, data or "")
    finally:
        ch.app_depth -= 1
    response = ch.vars.get("current_application_response") or "_none_"
    ch.fire(
        "CHANNEL_EXECUTE_COMPLETE",
        tail=[
            ("Application", app_name),
            *data_header,
            ("Application-Response", response),
            ("Application-UUID", app_uuid),
        ],
    )
    return True


def queue_private_event(ch: Channel, command: Command) -> None:
    """switch_core_session_queue_private_event (a sendmsg for this channel): it waits in the
    queue until the session next looks at it, between media frames (Channel.pickup_due_us)."""
    ch.private_events.append((ch.sim.clock.now_us(), command))
    ch.wake()


def parse_next_event(ch: Channel, fire_private: bool) -> None:
    """Take one queued sendmsg, run it, then (with media up) echo it as PRIVATE_COMMAND."""
    _, command = ch.private_events.popleft()
    parse_event(ch, command)
    if fire_private:
        # mod_event_socket keeps the whole header block as the Command header, unless it cut
        # it at the first line to read the uuid of "sendmsg <uuid>"; an event the switch
        # queued itself (switch_ivr_broadcast) has no Command header
        text = command.line if command.line[7:].strip() else (command.raw or command.line)
        lead = [("Command", text)] if text else []
        ch.fire("PRIVATE_COMMAND", lead=[*lead, *command.headers])


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1", "enabled", "active", "allow")


def parse_event(ch: Channel, command: Command) -> None:
    """switch_ivr_parse_event: ``call-command`` execute / hangup / unicast / nomedia."""
    call_command = (command.get("call-command") or "").strip().lower()
    locked = _true(command.get("event-lock"))
    if locked:
        ch.event_lock += 1
    try:
        if not _lead_frames(ch, command.get("lead-frames")):
            return
        if call_command == "execute":
            _execute_command(ch, command)
        elif call_command == "hangup":
            ch.hangup(cause_from_text(command.get("hangup-cause")))
    finally:
        if locked:
            ch.event_lock -= 1


def _lead_frames(ch: Channel, value: str | None) -> bool:
    """switch_ivr_parse_event's ``lead-frames`` (switch_ivr_broadcast sends 5): with media up,
    read frames until that many carried audio, reading twice as many less one at most. The
    simulator carries no audio (every frame is comfort noise, as a silent loopback leg's), so
    it is always the most. False when the channel went down meanwhile: nothing runs then."""
    if not value or not ch.media_ready:
        return True
    count = atol(value)
    if count <= 0:
        return True
    return ch.read_frames(2 * count - 1)


def _execute_command(ch: Channel, command: Command) -> None:
    app = command.get("execute-app-name")
    if not app:
        return
    arg = command.get("execute-app-arg")
    content_type = (command.get("content-type") or "").lower()
    if not arg and content_type == "text/plain":
        arg = command.body.decode("utf-8", "replace")
    loops_text = command.get("loops")
    loops = int(loops_text) if loops_text and loops_text.lstrip("-").isdigit() else 1
    event_uuid = command.get("event-uuid")
    clock = ch.sim.clock
    x = 0
    while x < loops or loops < 0:
        before = clock.now()
        if event_uuid:
            ch.set_var("app_uuid", event_uuid)
        ch.set_var("current_loop", str(x + 1))
        ch.set_var("total_loops", str(loops))
        if not execute(ch, app, arg):
            break
        x += 1
        if ch.interrupted() or clock.now() - before < 0.5:
            break
    ch.set_var("current_loop", None)
    ch.set_var("total_loops", None)
