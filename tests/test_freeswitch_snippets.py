"""The FreeSWITCH files shipped for a real install (freeswitch/, dialplan/), checked against the
controller's code and against how FreeSWITCH 1.10 reads them.

The rules mirrored here come from the FreeSWITCH source:
- mod_event_socket.c, parse_command `userauth`: the user's esl-allowed-events and
  esl-allowed-api are split on spaces when the value has one, else on commas; after CUSTOM the
  names are event subclasses; `event ...` answers `-ERR permission denied` for an event not
  allowed, `api`/`bgapi` for a command name not in the list (exact match). The login reply
  echoes both lists and is formatted into a 512-byte buffer: longer, it is cut and loses the
  blank line that ends the frame.
- switch_xml.c, preprocess(): a line holding `X-PRE-PROCESS` is executed even inside an
  ordinary `<!-- -->` comment, and double-dollar variables are expanded in every line.
- sofia_reg.c, sofia_reg_parse_auth(): a directory user with neither `password` nor `a1-hash`
  authenticates with any credentials; `sip-forbid-register` (domain, group or user) refuses
  every authentication first.
"""

from __future__ import annotations

import inspect
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from esl_callback.config import settings_from_mapping
from esl_callback.service import SUBSCRIBED_EVENTS, Service
from esl_callback.switch import commands

ROOT = Path(__file__).resolve().parent.parent
DIRECTORY_FILE = ROOT / "freeswitch" / "directory" / "esl-callback.xml"
SHIPPED = sorted(
    path for top in ("freeswitch", "dialplan") for path in (ROOT / top).rglob("*") if path.is_file()
)
UUID = "0b6f1b1e-8f4e-4c4e-9a55-6c1f3c7c2d10"
OTHER_UUID = "5d0c1e7a-2b9f-4f07-8d3e-0a4b6c8e9f12"

# Every public function of esl_callback/switch/commands.py is either a builder of an `api` /
# `bgapi` command (called here with sample arguments) or something else. A new function must
# be put in one of the two, so a new command cannot be added without this test checking that
# the shipped directory user may send it.
API_BUILDERS = {
    "originate": lambda: commands.originate(
        commands.dial_string("sofia/gateway/{gateway}/{number}", "15550001001", "carrier"),
        commands.socket_application("127.0.0.1:8084"),
        {"callback_request_id": 1, "callback_leg": "a"},
    ),
    "uuid_bridge": lambda: commands.uuid_bridge(UUID, OTHER_UUID),
    "uuid_kill": lambda: commands.uuid_kill(UUID, "NORMAL_CLEARING"),
    "uuid_break": lambda: commands.uuid_break(UUID),
    "uuid_broadcast": lambda: commands.uuid_broadcast(UUID, "tone_stream://%(1000,4000,425)"),
    "sched_broadcast": lambda: commands.sched_broadcast(60, UUID, "ivr/low-balance.wav"),
    "uuid_exists": lambda: commands.uuid_exists(UUID),
    "sched_hangup": lambda: commands.sched_hangup(300, UUID),
    "sched_del": lambda: commands.sched_del(UUID),
    "say_string": lambda: commands.say_string("en", "4998"),
    "show_channels_json": commands.show_channels_json,
    "chat": lambda: commands.chat("4930100300", "15550001001", "We call you back now."),
    "global_getvar": lambda: commands.global_getvar("core_uuid"),
}
NOT_API_COMMANDS = {
    # checks of values
    "check_uuid",
    "check_cause",
    "check_digits",
    "check_sound",
    "check_host_port",
    "check_prompt",
    "sounds_said",
    "file_string",
    "whole_seconds",
    # parts of a command
    "format_variables",
    "dial_string",
    "park_application",
    "socket_application",
    # `filter` and `event`: event-socket commands of their own, not checked against
    # esl-allowed-api (the events subscribed are checked against esl-allowed-events)
    "event_filter",
    "event_subscription",
    # applications run on a call's own outbound socket (`sendmsg execute`), where no userauth
    # applies
    "application_args",
    "play_and_get_digits",
    "playback",
    "unset_variable",
    "hangup",
    "set_variable",
}
SWITCH_TRUE = {"true", "yes", "on", "enabled", "active", "allow", "1"}  # switch_true()


def _directory() -> ET.Element:
    return ET.parse(DIRECTORY_FILE).getroot()


def _domain() -> ET.Element:
    domains = _directory().findall("domain")
    assert len(domains) == 1, "the file defines exactly one domain"
    return domains[0]


def _user() -> tuple[ET.Element, ET.Element]:
    """(group, user) of the user with id esl-callback."""
    found = [
        (group, user)
        for group in _domain().iterfind("groups/group")
        for user in group.iterfind("users/user")
        if user.get("id") == "esl-callback"
    ]
    assert len(found) == 1, "one user esl-callback in the domain's groups"
    return found[0]


def _params(element: ET.Element) -> dict[str, str]:
    return {p.get("name", "").lower(): p.get("value", "") for p in element.iterfind("params/param")}


def _userauth_params() -> dict[str, str]:
    """What mod_event_socket's userauth reads: domain, then group, then user (later wins)."""
    group, user = _user()
    merged: dict[str, str] = {}
    for element in (_domain(), group, user):
        merged.update(_params(element))
    return merged


def _split(value: str) -> list[str]:
    """mod_event_socket's split of an allowed list: on spaces if it has one, else on commas."""
    return value.split(" " if " " in value else ",")


def _allowed_events() -> tuple[set[str], set[str]]:
    """(event names, CUSTOM subclasses) of esl-allowed-events."""
    names: set[str] = set()
    subclasses: set[str] = set()
    custom = False
    for token in _split(_userauth_params()["esl-allowed-events"]):
        if custom:
            subclasses.add(token)
        else:
            names.add(token.upper())
            custom = token.upper() == "CUSTOM"
    return names, subclasses


def _allowed_api() -> set[str]:
    return set(_split(_userauth_params()["esl-allowed-api"]))


def _api_commands_the_controller_sends() -> set[str]:
    """Command names of every builder, plus what Service sends on each (re)connect."""
    names = {builder().split(" ", 1)[0] for builder in API_BUILDERS.values()}
    sent: list[str] = []

    class Node:
        name = "fs1"
        up_since = time.time()

        def api(self, command: str, timeout: float | None = None) -> str:
            sent.append(command)
            return "8a1f2c3d-core-uuid"

    reconciled: list[object] = []
    fake_service = SimpleNamespace(
        dialer=SimpleNamespace(core_uuids={}, reconcile=lambda node, since: reconciled.append(node))
    )
    Service.on_node_connected(fake_service, Node())  # type: ignore[arg-type]
    assert sent and reconciled
    return names | {command.split(" ", 1)[0] for command in sent}


# -- the userauth user ----------------------------------------------------------------------


def test_commands_py_functions_are_all_classified_as_api_builders_or_not() -> None:
    public = {
        name
        for name, obj in inspect.getmembers(commands, inspect.isfunction)
        if obj.__module__ == commands.__name__ and not name.startswith("_")
    }
    assert public - set(API_BUILDERS) - NOT_API_COMMANDS == set(), (
        "new functions in esl_callback/switch/commands.py: add each to API_BUILDERS (and its "
        "command to esl-allowed-api in freeswitch/directory/esl-callback.xml) or to "
        "NOT_API_COMMANDS"
    )
    assert set(API_BUILDERS) - public == set()
    assert NOT_API_COMMANDS - public == set()


def test_every_api_command_the_controller_sends_is_allowed() -> None:
    missing = _api_commands_the_controller_sends() - _allowed_api()
    assert not missing, f"esl-allowed-api lacks {sorted(missing)} (-ERR permission denied)"


def test_no_api_command_is_allowed_that_the_controller_does_not_send() -> None:
    assert _allowed_api() - _api_commands_the_controller_sends() == set()


def test_the_subscription_the_controller_sends_is_allowed_event_by_event() -> None:
    names, subclasses = _allowed_events()
    words = commands.event_subscription("plain", SUBSCRIBED_EVENTS).split(" ")
    assert words[:2] == ["event", "plain"]
    custom = False
    for word in words[2:]:  # mod_event_socket's `event` command, token by token
        if custom:
            assert word in subclasses, f"CUSTOM subclass {word} is not allowed"
        else:
            assert word.upper() in names, f"event {word} is not in esl-allowed-events"
            custom = word.upper() == "CUSTOM"


def test_no_event_is_allowed_that_the_controller_does_not_subscribe() -> None:
    names, subclasses = _allowed_events()
    assert names == {event.upper() for event in SUBSCRIBED_EVENTS if "::" not in event}
    assert subclasses == {event for event in SUBSCRIBED_EVENTS if "::" in event}


def test_the_login_reply_fits_mod_event_socket_reply_buffer() -> None:
    params = _userauth_params()
    log = params.get("esl-allowed-log", "true").lower() in SWITCH_TRUE
    event_reply = f"Allowed-Events: {params['esl-allowed-events']}\n"
    api_reply = f"Allowed-API: {params['esl-allowed-api']}\n"
    log_reply = f"Allowed-LOG: {'true' if log else 'false'}\n"
    reply = f"~Reply-Text: +OK accepted\n{event_reply}{api_reply}{log_reply}\n"
    # char reply[512], event_reply[512], api_reply[512]; snprintf keeps 511 bytes and the NUL
    for part in (event_reply, api_reply, reply):
        assert len(part.encode()) <= 511, f"{len(part.encode())} bytes: {part!r}"
    assert not log, "the controller never asks for logs"


def test_the_user_cannot_authenticate_on_sip() -> None:
    _group, user = _user()
    domain_params, user_params = _params(_domain()), _params(user)
    for where, params in (("domain", domain_params), ("user", user_params)):
        assert params.get("sip-forbid-register", "").lower() in SWITCH_TRUE, where
    # and never a user without a SIP password, should sip-forbid-register be removed
    password, esl_password = user_params.get("password", ""), user_params["esl-password"]
    assert len(password) >= 32 and len(esl_password) >= 32
    assert password != esl_password
    assert "a1-hash" not in user_params


def test_the_user_lives_in_a_domain_of_its_own_not_in_the_phones_domain() -> None:
    # vanilla directory/default.xml puts every directory/default/*.xml into the phones' domain
    assert not (ROOT / "freeswitch" / "directory" / "default").exists()
    name = _domain().get("name", "")
    assert name.endswith(".invalid") and "$" not in name


def test_the_login_the_readme_gives_is_the_one_the_directory_defines() -> None:
    login = f"{_user()[1].get('id')}@{_domain().get('name')}"
    assert login == "esl-callback@esl-callback.invalid"
    settings = settings_from_mapping(
        {"freeswitch": {"nodes": [{"name": "fs1", "password": "x" * 40, "user": login}]}},
        environ={},
    )
    assert settings.freeswitch.nodes[0].user == login
    assert f"`user: {login}`" in (ROOT / "README.md").read_text()


# -- every shipped file ---------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_preprocessor_instruction_anywhere_in_a_shipped_file(path: Path) -> None:
    """Not even in a comment: FreeSWITCH's preprocessor reads every line."""
    text = path.read_text()
    assert "x-pre-process" not in text.lower()
    assert "<!--#" not in text
    assert "$$" not in text


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_shipped_file_is_well_formed_xml(path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".snippet":  # a fragment: several top-level elements
        text = f"<snippet>{text}</snippet>"
    ET.fromstring(text)


def test_snippets_are_never_picked_up_by_a_glob_of_xml_files() -> None:
    """sofia.conf.xml includes sip_profiles/*.xml as profiles, freeswitch.xml
    autoload_configs/*.xml as module configurations: a fragment must not end in .xml."""
    for path in SHIPPED:
        text = path.read_text()
        is_fragment = "<configuration" not in text and "<include>" not in text
        assert is_fragment == (path.suffix == ".snippet"), path


def test_the_sip_profile_snippet_sets_auth_messages() -> None:
    snippet = ROOT / "freeswitch" / "sip_profiles" / "auth-messages.xml.snippet"
    root = ET.fromstring(f"<settings>{snippet.read_text()}</settings>")
    assert [(p.get("name"), p.get("value")) for p in root] == [("auth-messages", "true")]


def test_every_socket_action_names_one_address() -> None:
    """mod_event_socket's socket application connects to one host:port (split at the last
    ':'); failover is one socket action per controller."""
    actions = [
        action
        for path in SHIPPED
        if path.suffix == ".xml"
        for action in ET.parse(path).getroot().iter("action")
        if action.get("application") == "socket"
    ]
    assert actions
    for action in actions:
        address, *flags = action.get("data", "").split(" ")
        assert re.fullmatch(r"[A-Za-z0-9.-]+:[0-9]{1,5}", address), address
        assert flags == ["async", "full"]
