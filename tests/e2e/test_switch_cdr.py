"""The switch's CDR as the second source of truth, end to end over real sockets: the simulator's
mod_json_cdr posts each channel's CDR to the controller's portal, the controller's ESL
connection is cut (a relay in front of the switch) while bridged calls end, and the legs are
billed from the posted CDRs with the switch's billsec, checked against an independent ESL
client's record of the switch's own hangups. On SQLite and PostgreSQL (the `db` fixture)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from callback_storm import SwitchRecord
from click.testing import CliRunner
from esl_cut import CuttableRelay
from platform_helpers import ANI_ACCESS, Platform
from ports import free_port

from esl_callback import accounts
from esl_callback.callback import billing, requests
from esl_callback.callback.billing import LOST_CAUSE
from esl_callback.cli import main
from esl_callback.db import Database
from esl_callback.models import Account, Leg, SwitchCdr
from esl_callback.simulator import json_cdr

CALLER = "15550001001"
FRIEND = "15550002001"
CDR_PASSWORD = "cdr-password-for-the-tests-0123"


def cost(leg: Leg, billsec: int) -> Decimal:
    """standard_rates: 1.20 a minute to 15550002..., 0.60 to other numbers, by the second."""
    per_minute = Decimal("1.20") if leg.number.startswith("15550002") else Decimal("0.60")
    return (per_minute * billsec / 60).quantize(Decimal("0.0001"))


@pytest.fixture
def alice() -> Account:
    """Alice: 10.00 EUR, her mobile is a registered caller ID (ANI access)."""
    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_access_number(ANI_ACCESS, "ani")
    return account


@pytest.fixture
def relays() -> Iterator[list[CuttableRelay]]:
    started: list[CuttableRelay] = []
    yield started
    for relay in started:
        relay.stop()


@pytest.fixture
def err_log_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "json_cdr"
    folder.mkdir()
    return folder


@pytest.fixture
def cdr_platform(
    platform: Callable[..., Platform], relays: list[CuttableRelay], err_log_dir: Path
) -> Callable[..., Platform]:
    """A call of CALLER to FRIEND, both hanging up by themselves; the switch posts its CDRs to
    the portal with `password` (retries 2, 1 s apart, then `err_log_dir`)."""

    def start(password: str = CDR_PASSWORD) -> Platform:
        web_port = free_port()

        def relay_to(esl_port: int) -> int:
            relays.append(CuttableRelay(esl_port))
            return relays[-1].port

        return platform(
            {
                CALLER: {
                    "answer_after": 1,
                    "keys": [{"after": 1.0, "digits": f"{FRIEND}#"}],
                    "hangup_after": 9,
                },
                FRIEND: {"answer_after": 1, "hangup_after": 4},
            },
            web={"port": web_port, "secret": "s" * 40, "secure_cookies": False},
            cdr={"enabled": True, "password": CDR_PASSWORD},
            json_cdr={
                "urls": [f"http://127.0.0.1:{web_port}/api/v1/switch/cdr"],
                "cred": f"freeswitch:{password}",
                "retries": 2,
                "delay": 1,
                "timeout": 5,
                "err_log_dir": str(err_log_dir),
            },
            switch_port=relay_to,
        )

    return start


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    with gevent.Timeout(timeout, AssertionError(f"{what} did not happen")):
        while not (result := condition()):
            gevent.sleep(0.05)
    return result


def cut_while_bridged(p: Platform, relay: CuttableRelay) -> int:
    """Trigger the call, cut the controller's ESL connection once it is bridged."""
    p.trigger(CALLER, ANI_ACCESS)
    bridged = p.wait_request(lambda r: r.state == "bridged")
    relay.cut()
    wait_until(lambda: not p.service.nodes[0].connected, "the cut")
    return bridged.id


def post(p: Platform, uuid: str, body: bytes, password: str = CDR_PASSWORD) -> Answer:
    """POST a CDR to the portal as mod_json_cdr does (on gevent's sockets: the portal answers
    from this very process)."""
    port = p.service.web_server.server_port
    request = json_cdr.request_bytes(
        f"http://127.0.0.1:{port}/api/v1/switch/cdr", uuid, f"freeswitch:{password}", body
    )
    sock = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(request)
        answer = b""
        with gevent.Timeout(10):
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
            head, _, text = answer.partition(b"\r\n\r\n")
            status_line, *lines = head.decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines)
            while len(text) < int(headers["Content-Length"]):
                text += sock.recv(65536)
    finally:
        sock.close()
    return Answer(int(status_line.split()[1]), headers, json.loads(text))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    json: Any


def test_with_the_connection_up_the_cdr_that_comes_first_bills_and_the_call_ends_as_usual(
    cdr_platform, alice: Account
) -> None:
    """mod_json_cdr posts before CHANNEL_HANGUP_COMPLETE reaches ESL: the CDR bills the leg,
    the hangup event then finds it billed (and adds who hung up)."""
    p = cdr_platform()
    witness = SwitchRecord(p)
    try:
        p.trigger(CALLER, ANI_ACCESS)
        request = p.wait_request()
        p.wait_idle()
        legs = p.legs(request.id)
        wait_until(lambda: all(leg.uuid in witness.completed for leg in legs), "the hangups")
    finally:
        witness.connection.stop()
    assert (request.state, request.failure_cause) == ("completed", None)
    assert [[leg.billsec] for leg in legs] == [witness.completed[leg.uuid] for leg in legs]
    assert [leg.cost for leg in legs] == [cost(leg, leg.billsec) for leg in legs]
    assert all(leg.hangup_by for leg in legs)  # from the hangup events, after the CDRs billed
    stored = SwitchCdr.select().where(SwitchCdr.uuid.in_([leg.uuid for leg in legs]))
    assert [(c.outcome, c.deliveries) for c in stored] == [("billed", 1)] * 2
    assert Account.get_by_id(alice.id).balance == 10 - sum(leg.cost for leg in legs)
    assert billing.audit(alice).balanced


def test_legs_that_end_while_the_esl_connection_is_cut_are_billed_from_the_switchs_cdr(
    cdr_platform, relays: list[CuttableRelay], alice: Account
) -> None:
    p = cdr_platform()
    witness = SwitchRecord(p)
    try:
        request_id = cut_while_bridged(p, relays[0])
        legs = p.legs(request_id)
        uuids = [leg.uuid for leg in legs]
        billed = wait_until(
            lambda: all(leg.billed for leg in p.legs(request_id)) and p.legs(request_id),
            "billing from the CDRs",
        )
        assert not p.service.nodes[0].connected  # no hangup event could have billed them
        wait_until(lambda: all(uuid in witness.completed for uuid in uuids), "the hangups")
    finally:
        witness.connection.stop()
    switch_billsec = [witness.completed[uuid] for uuid in uuids]
    assert [[leg.billsec] for leg in billed] == switch_billsec
    assert all(leg.hangup_cause not in (LOST_CAUSE, None) for leg in billed)
    assert [leg.cost for leg in billed] == [cost(leg, leg.billsec) for leg in billed]
    assert all(leg.billsec > 0 for leg in billed)
    assert {
        (c.uuid, c.outcome, c.deliveries)
        for c in SwitchCdr.select().where(SwitchCdr.uuid.in_(uuids))
    } == {(uuid, "billed", 1) for uuid in uuids}

    relays[0].restore()  # the controller reconnects and learns its flow's legs are gone
    p.wait_request(lambda r: r.id == request_id and r.state not in requests.LIVE)
    p.wait_idle()
    assert [(leg.billsec, leg.cost) for leg in p.legs(request_id)] == [
        (leg.billsec, leg.cost) for leg in billed
    ]
    assert Account.get_by_id(alice.id).balance == 10 - sum(leg.cost for leg in billed)
    assert billing.audit(alice).balanced

    # mod_json_cdr delivers the same CDR again (a timeout it counted as failed): nothing moves.
    body = SwitchCdr.get(SwitchCdr.uuid == uuids[1]).body.encode()
    again = post(p, uuids[1], body)
    assert (again.status, again.json) == (
        200,
        {"uuid": uuids[1], "outcome": "duplicate", "deliveries": 2},
    )
    assert Account.get_by_id(alice.id).balance == 10 - sum(leg.cost for leg in billed)
    refused = post(p, uuids[1], body, password="wrong-password-0123456")
    assert (refused.status, refused.headers["WWW-Authenticate"]) == (
        401,
        'Basic realm="esl-callback switch CDR"',
    )
    malformed = post(p, uuids[1], body[:-1])
    assert malformed.status == 400
    assert malformed.json["error"]["message"].startswith(f"CDR {uuids[1]}: the CDR is not valid")
    assert SwitchCdr.get(SwitchCdr.uuid == uuids[1]).deliveries == 2


def test_cdrs_the_switch_kept_on_disk_bill_legs_closed_lost_once_imported(
    cdr_platform, relays: list[CuttableRelay], alice: Account, db: Database, err_log_dir: Path
) -> None:
    p = cdr_platform(password="not-the-controllers-password")  # every post refused: 401
    witness = SwitchRecord(p)
    try:
        request_id = cut_while_bridged(p, relays[0])
        uuids = [leg.uuid for leg in p.legs(request_id)]
        wait_until(
            lambda: all((err_log_dir / f"{uuid}.cdr.json").exists() for uuid in uuids),
            "the CDRs kept in err-log-dir",
        )
        wait_until(lambda: all(uuid in witness.completed for uuid in uuids), "the hangups")
    finally:
        witness.connection.stop()
    tries = [status for uuid, status in p.sim.json_cdr.posted if uuid in uuids]
    assert tries == [401] * 6  # each leg's CDR posted 3 times, refused, then kept on disk

    relays[0].restore()  # reconnected: the reconciler finds the legs gone, bills them nothing
    p.wait_request(lambda r: r.id == request_id and r.state not in requests.LIVE)
    p.wait_idle()
    assert {(leg.hangup_cause, leg.cost) for leg in p.legs(request_id)} == {(LOST_CAUSE, 0)}
    assert Account.get_by_id(alice.id).balance == 10

    for _ in range(2):  # imported twice: billed once
        result = CliRunner().invoke(main, ["cdr", "import", str(err_log_dir), "--database", db.url])
        assert result.exit_code == 0, result.output
    kept = len(list(err_log_dir.iterdir()))
    assert result.output.splitlines()[-1].startswith(f"{kept} CDRs imported")
    legs = p.legs(request_id)
    assert [[leg.billsec] for leg in legs] == [witness.completed[uuid] for uuid in uuids]
    assert all(leg.hangup_cause != LOST_CAUSE for leg in legs)
    assert [leg.cost for leg in legs] == [cost(leg, leg.billsec) for leg in legs]
    costs = sum(leg.cost for leg in legs)
    assert costs > 0
    assert Account.get_by_id(alice.id).balance == 10 - costs
    assert billing.audit(alice).balanced
    assert {c.outcome for c in SwitchCdr.select().where(SwitchCdr.uuid.in_(uuids))} == {"rebilled"}
