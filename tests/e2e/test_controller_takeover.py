"""Several controllers on one PostgreSQL and one switch (#27, first step): each acts on its own
calls only, and the calls of one that died are taken over by a survivor and billed once, with
the switch's billsec.

Real processes where it matters: the controller killed with kill -9 is an `esl-callback serve`
subprocess; the survivor runs in the test's process; the switch is the simulator.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import gevent.event
import pytest
import yaml
from callback_storm import SwitchRecord
from platform_helpers import (
    ACCESS_CONTEXT,
    ANI_ACCESS,
    controller_settings,
    simulator_config,
    standard_rates,
)
from ports import free_port

from esl_callback import accounts, metrics
from esl_callback.callback import billing, requests
from esl_callback.config import settings_to_dict
from esl_callback.db import Database
from esl_callback.models import Account, CallbackRequest, Controller, Leg
from esl_callback.service import Service
from esl_callback.simulator import Simulator

CALLER = "15550001001"
OTHER_CALLER = "15550001002"
FRIEND = "15550002001"
LEASE = 3  # seconds: the shortest the configuration allows


@pytest.fixture
def postgres(db: Database) -> Database:
    if db.is_sqlite:
        pytest.skip("SQLite serves one controller (a second is refused: tests/test_controllers.py)")
    return db


@pytest.fixture
def alice(postgres: Database) -> Account:
    """Alice and Bob, called back by caller ID (a call holds all of its account's balance)."""
    account = accounts.create_account("alice", default_callback_number=CALLER)
    billing.add_payment(account, "20", "voucher 1")
    bob = accounts.create_account("bob", default_callback_number=OTHER_CALLER)
    billing.add_payment(bob, "20", "voucher 1")
    accounts.add_access_number(ANI_ACCESS, "ani")
    standard_rates()
    return account


def wait_until(what: str, condition: Callable[[], Any], timeout: float = 60) -> Any:
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while not (found := condition()):
            gevent.sleep(0.05)
    return found


def request_of(db: Database, caller: str) -> CallbackRequest | None:
    return db.run(
        lambda: (
            CallbackRequest.select()
            .where(CallbackRequest.caller_id == caller)
            .order_by(CallbackRequest.id.desc())
            .first()
        )
    )


def ended_request(db: Database, caller: str) -> CallbackRequest:
    """The newest request of `caller`, once it has ended."""
    return wait_until(
        f"the callback of {caller} to end",
        lambda: (r := request_of(db, caller)) is not None and r.state not in requests.LIVE and r,
    )


def legs_of(db: Database, request_id: int) -> list[Leg]:
    return db.run(requests.legs_of, request_id)


CDR_PASSWORD = "cdr-password-for-the-tests-0123"


def settings_for(
    db: Database,
    sim: Simulator,
    outbound_port: int,
    controller_id: str,
    web_port: int | None = None,
) -> Any:
    """A controller of the simulator; with `web_port`, its portal there takes the switch's
    CDRs."""
    web = {"port": web_port, "secret": "s" * 40, "secure_cookies": False} if web_port else None
    cdr = {"enabled": True, "password": CDR_PASSWORD} if web_port else None
    settings = controller_settings(
        db.url, [sim.port], outbound_port, web=web, cdr=cdr, originate_timeout_seconds=30
    )
    return dataclasses.replace(
        settings,
        controller=dataclasses.replace(settings.controller, id=controller_id, lease_seconds=LEASE),
    )


def start_service(settings: Any, on_reconciled: gevent.event.Event | None = None) -> Service:
    """A controller in this process; `on_reconciled` set once it reconciled with the switch."""
    service = Service(settings)
    if on_reconciled is not None:
        reconcile = service.dialer.reconcile

        def reconcile_and_tell(node: Any, up_since: Any) -> None:
            reconcile(node, up_since)
            on_reconciled.set()

        service.dialer.reconcile = reconcile_and_tell  # type: ignore[method-assign]
    service.start()
    for node in service.nodes:
        assert node.wait_connected(10), "controller did not connect to the simulator"
    return service


@pytest.fixture
def simulator() -> Iterator[Callable[..., tuple[Simulator, int]]]:
    """A simulator whose access numbers go to a new outbound port (returned with it)."""
    started: list[Simulator] = []

    def start(
        phones: dict[str, Any], json_cdr: dict[str, Any] | None = None
    ) -> tuple[Simulator, int]:
        port = free_port()
        sim = Simulator(simulator_config(port, phones, 1.0, json_cdr=json_cdr)).start()
        started.append(sim)
        return sim, port

    yield start
    for sim in started:
        sim.stop()


def test_a_controller_starting_leaves_another_ones_ringing_call_alone(
    alice, postgres, simulator
) -> None:
    sim, port_a = simulator(
        {
            CALLER: {"answer_after": 6, "keys": [{"after": 1.0, "digits": f"{FRIEND}#"}]},
            FRIEND: {"answer_after": 1, "hangup_after": 2},
        }
    )
    first = start_service(settings_for(postgres, sim, port_a, "first"))
    second = None
    try:
        sim.place_call(CALLER, ANI_ACCESS, ACCESS_CONTEXT)
        wait_until(
            "leg A ringing",
            lambda: (r := request_of(postgres, CALLER)) is not None and r.state == "calling_source",
        )
        reconciled = gevent.event.Event()
        second = start_service(settings_for(postgres, sim, free_port(), "second"), reconciled)
        assert reconciled.wait(30), "the second controller never reconciled"
        assert request_of(postgres, CALLER).state == "calling_source"  # still ringing then

        request = ended_request(postgres, CALLER)
        assert (request.state, request.failure_cause) == ("completed", None)
        assert request.controller == "first"
        assert all(leg.billed and leg.billsec > 0 for leg in legs_of(postgres, request.id))
    finally:
        for service in (second, first):
            if service is not None:
                service.stop(timeout=2)


def write_config(directory: Path, settings: Any) -> Path:
    config = directory / "serve.yaml"
    config.write_text(yaml.safe_dump(settings_to_dict(settings, masked=False)))
    return config


def test_a_killed_controllers_calls_are_taken_over_and_billed_once_with_the_switchs_billsec(
    alice, postgres, simulator, tmp_path
) -> None:
    web_ports = [free_port(), free_port()]  # the first controller's portal, the survivor's
    sim, port_a = simulator(
        {
            CALLER: {"answer_after": 1, "keys": [{"after": 1.0, "digits": f"{FRIEND}#"}]},
            FRIEND: {"answer_after": 1, "hangup_after": 8},
            OTHER_CALLER: {"answer_after": 120},  # still ringing when its controller dies
        },
        json_cdr={  # a leg that ends while no controller follows it is billed from its CDR
            "urls": [f"http://127.0.0.1:{port}/api/v1/switch/cdr" for port in web_ports],
            "cred": f"freeswitch:{CDR_PASSWORD}",
            "retries": 2,
            "delay": 1,
            "timeout": 5,
            "err_log_dir": str(tmp_path / "json_cdr"),
        },
    )
    switch = SwitchRecord(SimpleNamespace(sim=sim))  # what the switch says of every leg
    log = (tmp_path / "first.log").open("wb")
    settings = settings_for(postgres, sim, port_a, "first", web_ports[0])
    serve = [sys.executable, "-m", "esl_callback", "serve"]
    config = write_config(tmp_path, settings)
    first = subprocess.Popen([*serve, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
    survivor = None
    try:
        wait_until("the first controller on the switch", lambda: switch_connected(settings))
        sim.place_call(CALLER, ANI_ACCESS, ACCESS_CONTEXT)
        bridged = wait_until(
            "the first call bridged",
            lambda: (r := request_of(postgres, CALLER)) is not None and r.state == "bridged" and r,
        )
        sim.place_call(OTHER_CALLER, ANI_ACCESS, ACCESS_CONTEXT)
        ringing = wait_until(
            "the second call ringing",
            lambda: (
                (r := request_of(postgres, OTHER_CALLER)) is not None
                and r.state == "calling_source"
                and legs_of(postgres, r.id)
                and r
            ),
        )

        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        survivor = start_service(settings_for(postgres, sim, free_port(), "survivor", web_ports[1]))

        ended = [
            wait_until(
                f"request {r.id} to end",
                lambda r=r: (
                    (x := postgres.run(CallbackRequest.get_by_id, r.id)).state not in requests.LIVE
                    and x
                ),
            )
            for r in (bridged, ringing)
        ]
        wait_until("no channel left", lambda: not sim.channels)
        assert [r.controller for r in ended] == ["survivor", "survivor"]
        assert ended[0].state == "completed"
        assert ended[1].state == "failed"
        for request in ended:
            for leg in legs_of(postgres, request.id):
                assert leg.billed, f"leg {leg.leg} of request {request.id} not billed"
                assert leg.hangup_cause != "LOST_WHILE_DISCONNECTED"
                reported = wait_until(  # the witness reads its events at its own pace
                    f"the switch's hangup of leg {leg.uuid}",
                    lambda leg=leg: switch.completed.get(leg.uuid),
                    timeout=15,
                )
                assert [leg.billsec] == reported  # one hangup, its billsec
        friend_leg = legs_of(postgres, bridged.id)[1]
        assert friend_leg.billsec >= 7  # the whole call, not 0
        assert all(billing.audit(a).balanced for a in postgres.run(lambda: list(Account.select())))
    finally:
        if first.poll() is None:
            first.kill()
        if survivor is not None:
            survivor.stop(timeout=2)
        switch.connection.stop()
        log.close()


def switch_connected(settings: Any) -> bool:
    """Whether serve says (on its /metrics, as `esl-callback status` reads it) that it is
    connected to the switch."""
    try:
        snapshot = metrics.scrape(f"http://127.0.0.1:{settings.metrics.port}/metrics", 2)
    except OSError:
        return False  # not serving yet
    return snapshot.by_label(f"{metrics.PREFIX}_node_connected", "node").get("sim") == 1


def test_each_controller_is_sent_only_its_own_legs_events(alice, postgres, simulator) -> None:
    sim, port_a = simulator(
        {
            CALLER: {"answer_after": 1, "keys": [{"after": 1.0, "digits": f"{FRIEND}#"}]},
            FRIEND: {"answer_after": 1, "hangup_after": 1},
        }
    )
    first = start_service(settings_for(postgres, sim, port_a, "first"))
    second = Service(settings_for(postgres, sim, free_port(), "second"))
    seen_by_second: list[str] = []
    dispatch = second.router.dispatch

    def recording(event: Any, node: str = "") -> None:
        seen_by_second.append(event.get("Event-Name") or "")
        dispatch(event, node)

    second.router.dispatch = recording  # type: ignore[method-assign]
    second.start()
    try:
        assert second.nodes[0].wait_connected(10)
        sim.place_call(CALLER, ANI_ACCESS, ACCESS_CONTEXT)
        request = ended_request(postgres, CALLER)
        assert request.state == "completed"
        assert request.controller == "first"
        assert not [name for name in seen_by_second if name.startswith("CHANNEL_")]
    finally:
        second.stop(timeout=2)
        first.stop(timeout=2)


def test_a_controller_whose_lease_was_taken_stops_without_touching_its_calls_and_exits_3(
    alice, postgres, simulator, tmp_path
) -> None:
    sim, port_a = simulator(
        {
            CALLER: {"answer_after": 1, "keys": [{"after": 1.0, "digits": f"{FRIEND}#"}]},
            FRIEND: {"answer_after": 1, "hangup_after": 30},
        }
    )
    settings = settings_for(postgres, sim, port_a, "fenced")
    log = tmp_path / "fenced.log"
    with log.open("wb") as out:
        serve = [sys.executable, "-m", "esl_callback", "serve", "-c"]
        process = subprocess.Popen(
            [*serve, str(write_config(tmp_path, settings))], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until("the controller on the switch", lambda: switch_connected(settings))
        sim.place_call(CALLER, ANI_ACCESS, ACCESS_CONTEXT)
        wait_until(
            "the call bridged",
            lambda: (r := request_of(postgres, CALLER)) is not None and r.state == "bridged",
        )
        # Another process registers under the same id (as a restart elsewhere would).
        postgres.run(
            lambda: (
                Controller.update(epoch=Controller.epoch + 1)
                .where(Controller.id == "fenced")
                .execute()
            )
        )

        assert process.wait(30) == 3
        assert "lost its lease" in log.read_text()
        assert len(sim.channels) >= 2  # both legs still up: it hung up nothing
        assert request_of(postgres, CALLER).state == "bridged"
    finally:
        if process.poll() is None:
            process.kill()
