"""Placing calls: the ``originate`` API, the endpoints it can dial, and the bridge application.

Endpoints: ``loopback/NUMBER[/CONTEXT]`` (two channels, -a and -b, like mod_loopback),
``sofia/gateway/GW/NUMBER`` and ``user/EXT`` (one visible channel whose far end runs the
configured dialplan extension, hidden like a real remote phone), ``error/CAUSE``. Anything else
fails like FreeSWITCH does (CHAN_NOT_IMPLEMENTED, NORMAL_TEMPORARY_FAILURE, ...).
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from typing import TYPE_CHECKING

from esl_callback.simulator.causes import cause_from_text
from esl_callback.simulator.channel import CS_EXECUTE, Channel
from esl_callback.simulator.dialstring import (
    Leg,
    parse_application,
    parse_dial_string,
    sanitize_number,
    split_args,
)
from esl_callback.simulator.profile import CallerProfile

if TYPE_CHECKING:
    from esl_callback.simulator.core import Simulator

log = logging.getLogger(__name__)

ORIGINATE_USAGE = (
    "-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] "
    "[<cid_name>] [<cid_num>] [<timeout_sec>]\n"
)
DEFAULT_CID_NUMBER = "0000000000"


class OriginateError(Exception):
    """The call could not be placed; ``cause`` is the hangup cause FreeSWITCH reports."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "yes", "on", "1")


def _outbound_profile(
    variables: dict[str, str], number: str, context: str, callee: str, source: str
) -> CallerProfile:
    cid_number = variables.get("origination_caller_id_number", DEFAULT_CID_NUMBER)
    cid_name = variables.get("origination_caller_id_name", "")
    return CallerProfile(
        direction="outbound",
        logical_direction="outbound",
        destination_number=number,
        context=context,
        caller_id_name=cid_name,
        caller_id_number=cid_number,
        orig_caller_id_name=cid_name,
        orig_caller_id_number=cid_number,
        callee_id_name="Outbound Call",
        callee_id_number=sanitize_number(callee),
        ani=cid_number,
        source=source,
    )


def _new_uuid(variables: dict[str, str]) -> str:
    return variables.get("origination_uuid") or str(uuidlib.uuid4())


def _create_pair(
    sim: Simulator,
    ordered_vars: list[tuple[str, str]],
    leg: Leg,
    a_name: str,
    profile: CallerProfile,
    b_profile: CallerProfile,
    hidden_far_end: bool,
) -> tuple[Channel, Channel]:
    """The originated channel (-a) and its far end (-b), linked like mod_loopback links them."""
    variables = dict(ordered_vars)
    sim.claim_sessions(2 if not hidden_far_end else 1)
    a = Channel(sim, uuid=_new_uuid(variables), name=a_name, direction="outbound", profile=profile)
    number = profile.destination_number
    b_name = f"loopback/{number}-b"
    b = Channel(sim, uuid=str(uuidlib.uuid4()), name=b_name, direction="inbound", profile=b_profile)
    b.silent = hidden_far_end
    early = "false" if _true(variables.get("ignore_early_media")) else "true"
    a.set_vars(
        [
            ("direction", "outbound"),
            ("is_outbound", "true"),
            ("session_id", str(sim.next_session_id())),
            ("read_codec", "L16"),
            ("read_rate", "8000"),
            ("write_codec", "L16"),
            ("write_rate", "8000"),
            ("channel_name", a_name),
            ("uuid", a.uuid),
            ("call_uuid", a.uuid),
            *ordered_vars,
            ("originate_early_media", early),
            ("originate_endpoint", leg.endpoint),
        ]
    )
    b.set_vars(
        [
            ("direction", "inbound"),
            ("uuid", b.uuid),
            ("call_uuid", b.uuid),
            ("session_id", str(sim.next_session_id()) if not hidden_far_end else "0"),
            ("channel_name", b_name),
            ("read_codec", "L16"),
            ("read_rate", "8000"),
            ("write_codec", "L16"),
            ("write_rate", "8000"),
            # mod_loopback copies the leg's variables to its -b twin; a gateway's far end is
            # a phone elsewhere, which never sees them (nor a park_timeout).
            *(ordered_vars if not hidden_far_end else ()),
        ]
    )
    if leg.endpoint == "loopback":
        a.set_var("other_loopback_leg_uuid", b.uuid)
        b.set_var("other_loopback_leg_uuid", a.uuid)
        a.set_var("loopback_leg", "A")
        b.set_var("loopback_leg", "B")
    a.loopback_peer, b.loopback_peer = b, a
    sim.register(a)
    if not hidden_far_end:
        sim.register(b)
    a.start()
    b.start()
    return a, b


def _dial(sim: Simulator, ordered_vars: list[tuple[str, str]], leg: Leg) -> Channel:
    """Create the channel(s) for one leg; raise OriginateError when the leg cannot be dialled."""
    variables = dict(ordered_vars)
    config = sim.config
    if leg.endpoint == "loopback":
        parts = leg.data.split("/")
        number = parts[0]
        context = parts[1] if len(parts) > 1 and parts[1] else "default"
        profile = _outbound_profile(variables, number, context, leg.data, "mod_loopback")
        b_profile = _far_end_profile(profile)
        a, _ = _create_pair(
            sim, ordered_vars, leg, f"loopback/{number}-a", profile, b_profile, False
        )
        return a
    if leg.endpoint == "error":
        raise OriginateError(cause_from_text(leg.data, "NORMAL_CLEARING"))
    if leg.endpoint == "user":
        user = leg.data.split("@", 1)[0]
        spec = config.users.get(user)
        if spec is None:
            raise OriginateError("SUBSCRIBER_ABSENT")
        if not spec.registered:
            raise OriginateError("USER_NOT_REGISTERED")
        return _remote(sim, ordered_vars, leg, user, spec.context, f"sofia/internal/{user}")
    if leg.endpoint == "sofia":
        kind, _, rest = leg.data.partition("/")
        if kind == "gateway":
            gateway, _, number = rest.partition("/")
            gw = config.gateways.get(gateway)
            if gw is None:
                raise OriginateError("INVALID_GATEWAY")
            return _remote(
                sim, ordered_vars, leg, number, gw.context, f"sofia/gateway/{gateway}/{number}"
            )
        raise OriginateError("NORMAL_TEMPORARY_FAILURE")
    raise OriginateError("CHAN_NOT_IMPLEMENTED")


def _far_end_profile(profile: CallerProfile) -> CallerProfile:
    far = profile.clone()
    far.direction = far.logical_direction = "inbound"
    return far


def _remote(
    sim: Simulator,
    ordered_vars: list[tuple[str, str]],
    leg: Leg,
    number: str,
    context: str,
    name: str,
) -> Channel:
    variables = dict(ordered_vars)
    profile = _outbound_profile(variables, number, context, leg.data, "mod_sofia")
    a, _ = _create_pair(sim, ordered_vars, leg, name, profile, _far_end_profile(profile), True)
    return a


def place_call(sim: Simulator, dial_string: str, timeout: float | None = None) -> Channel:
    """switch_ivr_originate: dial, wait for answer (or early media), return the answered leg.

    Raises OriginateError with the cause when no leg answers.
    """
    parsed = parse_dial_string(dial_string)
    cause = "NORMAL_CLEARING"
    for leg in parsed.legs:
        ordered = list(parsed.variables) + leg.variables
        variables = dict(ordered)
        leg_timeout = timeout
        if "originate_timeout" in variables and variables["originate_timeout"].isdigit():
            leg_timeout = int(variables["originate_timeout"])
        try:
            channel = _dial(sim, ordered, leg)
        except OriginateError as exc:
            cause = exc.cause
            continue
        if _await_answer(
            sim, channel, leg_timeout or 60, _true(variables.get("ignore_early_media"))
        ):
            _after_answer(channel)
            return channel
        cause = channel.hangup_cause or "NO_ANSWER"
    raise OriginateError(cause)


def _await_answer(sim: Simulator, ch: Channel, timeout: float, ignore_early: bool) -> bool:
    deadline = sim.clock.now() + timeout
    while True:
        changed = ch.changed
        if ch.down:
            return False
        if ch.answered or (ch.early_media and not ignore_early):
            return True
        remaining = deadline - sim.clock.now()
        if remaining <= 0:
            ch.hangup("NO_ANSWER")
            return False
        changed.wait(sim.clock.real(remaining))


def _after_answer(ch: Channel) -> None:
    """What originate does to the answered leg: the caller id flips (loopback)."""
    p = ch.profile
    if p.callee_id_name:
        ch.set_var("pre_transfer_caller_id_name", p.caller_id_name)
    if p.callee_id_number:
        ch.set_var("pre_transfer_caller_id_number", p.caller_id_number)
    p.flip_cid()
    ch.set_var("channel_cid_flipped", "yes")


def run_extension(ch: Channel, apps: list[tuple[str, str | None]]) -> None:
    """Hand the answered leg its extension and let its session execute it."""
    ch.extension = apps
    ch.ext_index = 0
    ch.hit_dialplan = True
    ch.set_state(CS_EXECUTE)


def originate_api(sim: Simulator, arg: str) -> str:
    """``originate <call url> <exten>|&app(args) [dialplan] [context] [cid_name] [cid_num]
    [timeout]``"""
    argv = split_args(arg or "")
    if len(argv) < 2 or not argv[0] or not argv[1]:
        return ORIGINATE_USAGE
    dial, exten = argv[0], argv[1]
    dialplan = argv[2] if len(argv) > 2 else "XML"
    context = argv[3] if len(argv) > 3 else "default"
    prefix: list[str] = []
    if len(argv) > 4 and argv[4]:
        prefix.append(f"origination_caller_id_name={argv[4]}")
    if len(argv) > 5 and argv[5]:
        prefix.append(f"origination_caller_id_number={argv[5]}")
    if prefix:
        dial = (
            "{" + ",".join(prefix) + "}" + dial
            if not dial.startswith("{")
            else ("{" + ",".join(prefix) + "," + dial[1:])
        )
    timeout = int(argv[6]) if len(argv) > 6 and argv[6].isdigit() else None
    try:
        channel = place_call(sim, dial, timeout)
    except OriginateError as exc:
        return f"-ERR {exc.cause}\n"
    application = parse_application(exten)
    if application is not None:
        # switch_caller_extension_new(session, app, arg): the extension is named after it
        channel.extension_name, channel.extension_number = application[0], application[1] or ""
        run_extension(channel, [application])
    else:
        apps = sim.dialplan.lookup(context, exten, channel) if dialplan else None
        run_extension(channel, apps or [("hangup", "NO_ROUTE_DESTINATION")])
    return f"+OK {channel.uuid}\n"


def bridge_app(ch: Channel, arg: str) -> None:
    """The ``bridge`` application: dial, then bridge this channel (originator) to the callee."""
    from esl_callback.simulator import bridge

    exported = [v for v in (ch.get_var("export_vars") or "").split(",") if v]
    prefix = ",".join(f"{name}={ch.vars[name]}" for name in exported if name in ch.vars)
    dial = arg
    if prefix:
        dial = "{" + prefix + ("," + arg[1:] if arg.startswith("{") else "}" + arg)
    try:
        callee = place_call(ch.sim, dial)
    except OriginateError as exc:
        ch.set_var("originate_disposition", exc.cause)
        ch.set_var("DIALSTATUS", "BUSY" if exc.cause == "USER_BUSY" else "NOANSWER")
        return
    ch.set_var("originate_disposition", "SUCCESS")
    ch.set_var("DIALSTATUS", "SUCCESS")
    bridge.run_inline(ch, callee)
