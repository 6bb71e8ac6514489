"""The one builder of the command strings we send to FreeSWITCH.

Nothing else in the project writes an originate, uuid_bridge, uuid_kill or sched_hangup string,
or an application argument for `sendmsg`. Every value is checked before a byte is sent: numbers
must be validated digit strings, UUIDs and causes match strict patterns, channel-variable values
come from a whitelist of characters, and no value may carry a line break (a line break would end
the ESL command and start another). A bad value raises `UnsafeCommand`.

Which commands may go with `api` on a node's one shared inbound connection. FreeSWITCH runs a
connection's `api` commands one at a time in its listener thread and writes no event while one
runs (captures: inbound-api-pipelined-behind-blocking-originate.txt,
inbound-chat-api-blocks-on-silent-user.txt), so a command that waits holds every call's
commands and events behind it, and past `command_timeout_seconds` the controller drops the
connection and the events queued on the switch with it. A command that can wait goes with
`bgapi` (its result comes in a BACKGROUND_JOB; the connection is free at once). Audited against
the FreeSWITCH 1.10.12 source; every session lookup is switch_core_session_locate, whose read
lock is a try-lock (a channel being destroyed is "not found" at once, never waited for):

    originate          WAITS until the leg answers or fails (seconds to minutes): bgapi only
                       (flow.originate).
    chat               WAITS for the SIP MESSAGE's final response: mod_dptools' chat api is
                       blocking, sofia_presence_chat_send polls 199 x 100 ms, so 19.9 s for a
                       registered phone that does not answer (captured): bgapi only
                       (sms.SmsService.chat_reply).
    uuid_bridge        safe: switch_ivr_uuid_bridge sets flags, variables and both channels'
                       states and returns; the bridge itself runs in the channels' threads. Sent
                       with the sched_del / sched_hangup / sched_broadcast of the bridge.
    uuid_kill          safe: switch_channel_hangup marks the channel down and signals its thread;
                       the hangup's work happens there.
    uuid_break         safe: flushes the channel's queued private events (`all`) and sets
                       CF_BREAK, or stops a broadcast; the playback notices on its next frame.
    uuid_broadcast     safe for our legs: queues the playback as a private event. It would wait
                       (switch_ivr_media) only for a channel in proxy / bypass media mode, which
                       no leg we originate is.
    sched_hangup, sched_broadcast, sched_del
                       safe: add or delete a task in the core scheduler (a mutex, no I/O); the
                       task runs later in the scheduler's thread.
    say_string         safe: mod_say builds the file names in memory from the language's XML
                       settings (an HTTP fetch only where mod_xml_curl serves them).
    uuid_exists, global_getvar
                       safe: a hash lookup.
    show channels as json
                       safe: one read of the core database, once per (re)connect
                       (reconcile.Reconciler.reconcile); it takes longer the more channels the
                       switch has, but waits for no phone (nor for any network, unless the core
                       database is an ODBC/PostgreSQL server: core-db-dsn).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from esl_callback.numbers import is_digits

_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_CAUSE = re.compile(r"[A-Z][A-Z_]{1,63}")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Channel-variable values: letters, digits and a few punctuation marks that mean nothing to
# originate's {a=b,c=d} syntax. A value with spaces is single-quoted.
_VAR_VALUE = re.compile(r"[A-Za-z0-9 _.:@+/#*-]{0,128}")
_APP_NAME = re.compile(r"[a-z_]{1,32}")
_EVENT_NAME = re.compile(r"[A-Za-z0-9_]+(::[A-Za-z0-9_:.-]+)?")
_HOST_PORT = re.compile(r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}")
_HEADER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
# A filter value: a word, or a regular expression between slashes; no whitespace.
_FILTER_VALUE = re.compile(r"[A-Za-z0-9_:.-]{1,128}|/[^\s/]{1,126}/")
# Sound files and tone streams as FreeSWITCH names them; no whitespace, quotes or line breaks.
_SOUND = re.compile(r"[A-Za-z0-9_./:%(),;=+$@{}-]{1,512}")
# Several of them played as one: `file_string://a!b!c` (mod_native_file's file_string).
_FILE_STRING = "file_string://"
_TEMPLATE_FIELDS = re.compile(r"\{(\w+)\}")
# Characters that would end a dial string or start another one, a variable block or an app.
_UNSAFE_IN_DIAL_STRING = re.compile(r"[\s,|{}\[\]&'^]")


class UnsafeCommand(ValueError):
    """A value that must not reach FreeSWITCH; raised before anything is sent."""


def check_uuid(value: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise UnsafeCommand(f"not a channel UUID: {value!r}")
    return value


def check_cause(value: str) -> str:
    if not isinstance(value, str) or not _CAUSE.fullmatch(value):
        raise UnsafeCommand(f"not a hangup cause: {value!r}")
    return value


def check_digits(value: str, what: str = "number") -> str:
    if not isinstance(value, str) or not is_digits(value) or len(value) > 32:
        raise UnsafeCommand(f"{what} must be validated digits, got {value!r}")
    return value


def check_sound(value: str) -> str:
    if not isinstance(value, str) or not _SOUND.fullmatch(value):
        raise UnsafeCommand(f"not a sound file or tone stream: {value!r}")
    return value


def check_prompt(value: str) -> str:
    """A sound, or a `file_string` of sounds (as `file_string` builds it)."""
    if isinstance(value, str) and value.startswith(_FILE_STRING):
        for part in value.removeprefix(_FILE_STRING).split("!"):
            check_sound(part)
        return value
    return check_sound(value)


def check_host_port(value: str) -> str:
    if not isinstance(value, str) or not _HOST_PORT.fullmatch(value):
        raise UnsafeCommand(f"not a host:port address: {value!r}")
    return value


def event_filter(header: str, value: str) -> str:
    """`filter <header> <value>`: a listener with filters is sent only the events one of them
    passes: `header` equal to `value` (any case), or matching it when it is `/regex/`."""
    if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
        raise UnsafeCommand(f"not an event header name: {header!r}")
    if not isinstance(value, str) or not _FILTER_VALUE.fullmatch(value):
        raise UnsafeCommand(f"not a filter value: {value!r}")
    return f"filter {header} {value}"


def event_subscription(event_format: str, events: Iterable[str]) -> str:
    """`event <format> NAME ...`: each name once, CUSTOM subclasses after `CUSTOM`."""
    names: list[str] = []
    subclasses: list[str] = []
    for event in events:
        if not _EVENT_NAME.fullmatch(event):
            raise UnsafeCommand(f"not an event name: {event!r}")
        target = subclasses if "::" in event else names
        if event not in target:
            target.append(event)
    if not names and not subclasses:
        raise ValueError("subscribe to at least one event")
    if subclasses:
        names = [n for n in names if n != "CUSTOM"] + ["CUSTOM", *subclasses]
    return f"event {event_format} {' '.join(names)}"


def format_variables(variables: Mapping[str, object]) -> str:
    """`{name=value,...}` for originate; values whitelisted, quoted when they hold spaces."""
    parts = []
    for name, raw in variables.items():
        if not _VAR_NAME.fullmatch(name):
            raise UnsafeCommand(f"not a channel variable name: {name!r}")
        value = str(raw).lower() if isinstance(raw, bool) else str(raw)
        if not _VAR_VALUE.fullmatch(value):
            raise UnsafeCommand(f"unsafe value for channel variable {name}: {value!r}")
        parts.append(f"{name}='{value}'" if " " in value else f"{name}={value}")
    return "{" + ",".join(parts) + "}"


def dial_string(template: str, number: str, gateway: str = "") -> str:
    """A route's dial-string template (e.g. `sofia/gateway/{gateway}/{number}`) filled in.

    Only a validated digit string and a plain gateway name can reach the template.
    """
    check_digits(number)
    fields = set(_TEMPLATE_FIELDS.findall(template))
    if "number" not in fields or fields - {"number", "gateway"}:
        raise UnsafeCommand(
            f"route template {template!r} must use {{number}} and may use {{gateway}}"
        )
    if gateway and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", gateway):
        raise UnsafeCommand(f"not a gateway name: {gateway!r}")
    dial = template.format(number=number, gateway=gateway)
    if _UNSAFE_IN_DIAL_STRING.search(dial):
        raise UnsafeCommand(f"route template {template!r} yields an unsafe dial string")
    return dial


def originate(dial_string: str, application: str, variables: Mapping[str, object]) -> str:
    """`originate {vars}DIAL &app(...)`: send with bgapi so the connection is never held."""
    if _UNSAFE_IN_DIAL_STRING.search(dial_string):
        raise UnsafeCommand(f"unsafe dial string: {dial_string!r}")
    if not application.startswith("&"):
        raise UnsafeCommand(f"originate application must be an &app(...), got {application!r}")
    return f"originate {format_variables(variables)}{dial_string} {application}"


def park_application() -> str:
    """`&park()`: the leg waits, answered and silent, until we bridge it."""
    return "&park()"


def socket_application(address: str) -> str:
    """`&socket('host:port async full')`: when the leg answers it connects to our server.

    One address: mod_event_socket has no failover list (it splits host and port at the last
    colon).
    """
    return f"&socket('{check_host_port(address)} async full')"


def global_getvar(name: str) -> str:
    """`global_getvar <name>`: a global variable of the switch (e.g. its core_uuid)."""
    if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
        raise UnsafeCommand(f"not a global variable name: {name!r}")
    return f"global_getvar {name}"


def uuid_bridge(uuid_a: str, uuid_b: str) -> str:
    return f"uuid_bridge {check_uuid(uuid_a)} {check_uuid(uuid_b)}"


def uuid_kill(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    return f"uuid_kill {check_uuid(uuid)} {check_cause(cause)}"


def uuid_break(uuid: str) -> str:
    """Stop what is playing on the channel (e.g. the ringback tone) now."""
    return f"uuid_break {check_uuid(uuid)} all"


def uuid_broadcast(uuid: str, sound: str, leg: str = "aleg") -> str:
    if leg not in ("aleg", "bleg", "both"):
        raise UnsafeCommand(f"broadcast leg must be aleg, bleg or both, got {leg!r}")
    return f"uuid_broadcast {check_uuid(uuid)} {check_sound(sound)} {leg}"


def sched_broadcast(seconds: int, uuid: str, sound: str, leg: str = "both") -> str:
    """Play `sound` on the call `seconds` from now (e.g. the low-balance warning)."""
    if leg not in ("aleg", "bleg", "both"):
        raise UnsafeCommand(f"broadcast leg must be aleg, bleg or both, got {leg!r}")
    return (
        f"sched_broadcast +{whole_seconds(seconds)} {check_uuid(uuid)} {check_sound(sound)} {leg}"
    )


def uuid_exists(uuid: str) -> str:
    return f"uuid_exists {check_uuid(uuid)}"


def sched_hangup(seconds: int, uuid: str, cause: str = "ALLOTTED_TIMEOUT") -> str:
    """Hang up `uuid` in whole seconds (FreeSWITCH 1.10 has no `uuid_sched_hangup`)."""
    return f"sched_hangup +{whole_seconds(seconds)} {check_uuid(uuid)} {check_cause(cause)}"


def sched_del(uuid: str) -> str:
    """Delete every task scheduled for a channel (its `sched_hangup`s and `sched_broadcast`s:
    their group is the channel's UUID, switch_ivr_async.c); the reply is `+OK Deleted: N`."""
    if check_uuid(uuid).isdigit():  # a number would name one task by its id
        raise UnsafeCommand(f"not a channel UUID: {uuid!r}")
    return f"sched_del {uuid}"


def whole_seconds(seconds: int) -> int:
    """Scheduled commands work on whole seconds >= 1."""
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 1:
        raise UnsafeCommand(f"expected a whole number of seconds >= 1, got {seconds!r}")
    return seconds


def show_channels_json() -> str:
    return "show channels as json"


# The chat API splits its argument with switch_separate_string (switch_utils.c): `|` ends a
# field (the rest of a body would become the content type), a pair of `'` quotes text and is
# removed, and `\` escapes the next character (`\n` a line break, `\s` a space, `\|` a bar).
_CHAT_SPECIAL = ("|", "'", "\\")


def chat(source: str, destination: str, body: str, proto: str = "sip") -> str:
    """`chat proto|from|to|body` (an outgoing SMS); line breaks become spaces."""
    if not re.fullmatch(r"[a-z_]{1,16}", proto):
        raise UnsafeCommand(f"not a chat protocol: {proto!r}")
    for what, value in (("from", source), ("to", destination)):
        if not re.fullmatch(r"[A-Za-z0-9_.@+:-]{1,128}", value):
            raise UnsafeCommand(f"unsafe chat {what} address: {value!r}")
    text = " ".join(body.split())
    found = [special for special in _CHAT_SPECIAL if special in text]
    if found:
        raise UnsafeCommand(
            f"a chat body must not contain {' or '.join(repr(c) for c in found)} (FreeSWITCH's "
            f"chat splits on |, removes ' quotes and reads \\ as an escape): {text!r}"
        )
    return f"chat {proto}|{source}|{destination}|{text}"


def application_args(app: str, *args: object) -> tuple[str, str]:
    """(app, arg) for `sendmsg execute`; every argument free of whitespace and line breaks."""
    if not _APP_NAME.fullmatch(app):
        raise UnsafeCommand(f"not an application name: {app!r}")
    parts = []
    for arg in args:
        text = str(arg)
        if not text or re.search(r"\s", text):
            raise UnsafeCommand(f"unsafe argument for {app}: {text!r}")
        parts.append(text)
    return app, " ".join(parts)


def play_and_get_digits(
    *,
    min_digits: int,
    max_digits: int,
    tries: int,
    timeout_ms: int,
    terminators: str,
    prompt: str,
    invalid_prompt: str,
    variable: str,
    regex: str,
    digit_timeout_ms: int,
) -> tuple[str, str]:
    """Arguments of `play_and_get_digits`, collecting DTMF into `variable`."""
    if not re.fullmatch(r"[0-9*#]{1,4}|none", terminators):
        raise UnsafeCommand(f"not a terminator set: {terminators!r}")
    if not _VAR_NAME.fullmatch(variable):
        raise UnsafeCommand(f"not a channel variable name: {variable!r}")
    if not re.fullmatch(r"[\\\[\]0-9dD*#+{},^$|()?-]{1,64}", regex):
        raise UnsafeCommand(f"unsafe digit regex: {regex!r}")
    for value in (min_digits, max_digits, tries, timeout_ms, digit_timeout_ms):
        if not isinstance(value, int) or value < 0:
            raise UnsafeCommand(f"play_and_get_digits counts must be whole numbers: {value!r}")
    return application_args(
        "play_and_get_digits",
        min_digits,
        max_digits,
        tries,
        timeout_ms,
        terminators,
        check_prompt(prompt),
        check_sound(invalid_prompt),
        variable,
        regex,
        digit_timeout_ms,
    )


def playback(sound: str) -> tuple[str, str]:
    """`playback` of a sound, or of a `file_string` of sounds."""
    return application_args("playback", check_prompt(sound))


def hangup(cause: str) -> tuple[str, str]:
    return application_args("hangup", check_cause(cause))


# mod_say's CURRENCY type is left out: mod_say_en (and the other languages) say "dollars" and
# "cents" whatever the currency. An amount is said as numbers and the currency's own sounds.
_SAY_TYPES = ("NUMBER", "ITEMS")
_SAY_METHODS = ("pronounced", "iterated", "counted")


def say_string(
    language: str, value: str, say_type: str = "NUMBER", method: str = "pronounced"
) -> str:
    """`say_string <lang> <lang> <type> <method> ~<number>`: the sound files mod_say plays for a
    whole number (at most 9 digits, no sign or point: what mod_say's count parses), as the
    `a!b!c` list of a file_string (the `~` drops its `file_string://`; mod_commands.c
    say_string_function). Played inside a prompt that collects digits, so that the caller can
    key through it (`file_string`)."""
    if not re.fullmatch(r"[a-z]{2,3}", language):
        raise UnsafeCommand(f"not a say language: {language!r}")
    if say_type not in _SAY_TYPES:
        raise UnsafeCommand(f"not a say type: {say_type!r} (one of {', '.join(_SAY_TYPES)})")
    if method not in _SAY_METHODS:
        raise UnsafeCommand(f"not a say method: {method!r}")
    if not re.fullmatch(r"[0-9]{1,9}", value):
        raise UnsafeCommand(f"not a whole number of at most 9 digits to say: {value!r}")
    return f"say_string {language} {language} {say_type} {method} ~{value}"


def sounds_said(reply: str) -> list[str]:
    """The sound files of a `say_string` reply (`a.wav!b.wav`), each checked; UnsafeCommand
    for an error (the language not configured, say: `-ERR Usage: ...`) or anything else."""
    text = reply.strip()
    if not text or text.startswith("-"):
        raise UnsafeCommand(f"say_string answered {text!r}")
    return [check_sound(part) for part in text.removeprefix(_FILE_STRING).split("!")]


def file_string(sounds: Iterable[str]) -> str:
    """Sounds played one after the other as one prompt: `file_string://a!b!c` (one sound as
    itself). Inside `play_and_get_digits` the caller can key through all of them."""
    checked = [check_sound(sound) for sound in sounds]
    if not checked:
        raise UnsafeCommand("a prompt needs at least one sound")
    if len(checked) == 1:
        return checked[0]
    return _FILE_STRING + "!".join(sound.removeprefix(_FILE_STRING) for sound in checked)


def unset_variable(name: str) -> tuple[str, str]:
    """`unset name`: the channel forgets the variable (mod_dptools)."""
    if not isinstance(name, str) or not _VAR_NAME.fullmatch(name):
        raise UnsafeCommand(f"not a channel variable name: {name!r}")
    return application_args("unset", name)


def set_variable(name: str, value: str) -> tuple[str, str]:
    """`set name=value` on the channel (values whitelisted like originate variables)."""
    rendered = format_variables({name: value})[1:-1]
    if "'" in rendered:
        raise UnsafeCommand(f"value for {name} must not contain spaces: {value!r}")
    return application_args("set", rendered)
