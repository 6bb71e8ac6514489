"""A whole phone callback, on the simulator, sends FreeSWITCH nothing that the shipped userauth
user (freeswitch/directory/esl-callback.xml) is not allowed.

tests/test_freeswitch_snippets.py checks the list against the command builders; this records
what the controller's inbound connection really sends during a callback (including commands
written outside the builders), as mod_event_socket would check it: `api`/`bgapi` by command
name against esl-allowed-api, the `event` subscription against esl-allowed-events.
SQLite only: the database plays no part in what is sent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from platform_helpers import PIN_ACCESS

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.switch.connection import InboundConnection

DIRECTORY_FILE = (
    Path(__file__).resolve().parents[2] / "freeswitch" / "directory" / "esl-callback.xml"
)
CALLER = "15550001001"
FRIEND = "15550002001"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'esl-callback.db'}"


def allowed(param: str) -> set[str]:
    """A userauth list as mod_event_socket splits it (on spaces if it has one, else commas)."""
    user = next(u for u in ET.parse(DIRECTORY_FILE).iter("user") if u.get("id") == "esl-callback")
    value = next(p.get("value", "") for p in user.iter("param") if p.get("name") == param)
    return set(value.split(" " if " " in value else ","))


def test_a_pin_callback_sends_only_allowed_commands_and_subscribes_only_allowed_events(
    platform, monkeypatch
) -> None:
    sent: list[tuple[str, str]] = []  # (connection name, api or bgapi command)
    original_api, original_bgapi = InboundConnection._api, InboundConnection.bgapi

    def recording_api(self, commands, timeout):
        sent.extend((self.name, command) for command in commands)
        return original_api(self, commands, timeout)

    def recording_bgapi(self, command, job_uuid=None, timeout=None):
        sent.append((self.name, command))
        return original_bgapi(self, command, job_uuid, timeout)

    monkeypatch.setattr(InboundConnection, "_api", recording_api)
    monkeypatch.setattr(InboundConnection, "bgapi", recording_bgapi)

    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_access_number(PIN_ACCESS, "pin")
    dials = [{"after": 1.0, "digits": "4711#"}, {"after": 2.5, "digits": f"{FRIEND}#"}]
    p = platform(
        {
            CALLER: {"answer_after": 1, "keys": dials},
            FRIEND: {"answer_after": 1, "hangup_after": 4},
        }
    )
    p.trigger(CALLER, PIN_ACCESS)
    request = p.wait_request()
    p.wait_idle()
    assert request.state == "completed"

    controller = {node.name for node in p.service.nodes}
    names = {command.split(" ", 1)[0] for who, command in sent if who in controller}
    # A bridged PIN callback sends these (show and global_getvar: on connecting); the other
    # commands (uuid_broadcast, uuid_break, uuid_kill, sched_broadcast, chat) belong to other
    # flows and are checked through their builders in tests/test_freeswitch_snippets.py.
    assert {"global_getvar", "show", "originate", "uuid_bridge", "sched_hangup"} <= names
    assert names - allowed("esl-allowed-api") == set()

    events = allowed("esl-allowed-events")
    for node in p.service.nodes:
        assert node.subscription.startswith("event plain ")
        assert set(node.subscription.split(" ")[2:]) - events == set()
