"""An SMS reaches every controller connected to the switch (each gets the MESSAGE event):
exactly one acts on it and answers, by the unique (channel, message id) of its stored row.

PostgreSQL only: SQLite serves one controller (a second is refused at start).
"""

from __future__ import annotations

import dataclasses

import gevent
import pytest
from ports import free_port
from sms_helpers import CALLER, SMS_NUMBER

from esl_callback.callback import requests
from esl_callback.db import Database
from esl_callback.models import CallbackRequest
from esl_callback.service import Service

FRIEND = "15550002001"


def second_controller(settings: object) -> Service:
    """Another controller on the same switch and database: its own outbound socket and id,
    no portal."""
    second = dataclasses.replace(
        settings,
        outbound=dataclasses.replace(settings.outbound, port=free_port()),
        web=dataclasses.replace(settings.web, enabled=False),
        metrics=dataclasses.replace(settings.metrics, port=free_port()),
        controller=dataclasses.replace(settings.controller, id="second"),
    )
    service = Service(second).start()
    for node in service.nodes:
        assert node.wait_connected(10), "the second controller did not connect"
    return service


def test_an_sms_reaching_two_controllers_is_acted_on_and_answered_once(
    sms_platform, alice, db: Database
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite serves one controller")
    phones = {CALLER: {"answer_after": 0.5}, FRIEND: {"answer_after": 0.5, "hangup_after": 1}}
    p = sms_platform(phones, sms={"rate_limit_per_minute": 100})
    second = second_controller(p.service.settings)
    sent = {f"bal-{i}": "BAL" for i in range(6)} | {"cb-1": FRIEND}
    try:
        for tag, text in sent.items():
            p.sim.receive_sms(CALLER, SMS_NUMBER, text, tag=tag)
        replies = wait_until(
            "a reply to each SMS", lambda: len(replies_to(p, CALLER)) >= 7 and replies_to(p, CALLER)
        )
        request = p.wait_request(lambda r: r.state not in requests.LIVE)
    finally:
        second.stop(timeout=2)

    # One row each: the one controller that stored it acted on it.
    handled = [(m.message_id.rsplit("tag=", 1)[-1], m.action) for m in p.incoming(CALLER)]
    assert sorted(handled) == sorted(
        [(f"bal-{i}", "balance") for i in range(6)] + [("cb-1", "callback_to")]
    )
    assert sorted(replies) == sorted(
        ["Your balance is 10.00 EUR."] * 6
        + [f"OK, we are calling you back on +{CALLER} now, then +{FRIEND}."]
    )
    assert request.state == "completed"
    assert p.db.run(lambda: CallbackRequest.select().count()) == 1


def replies_to(p, number: str) -> list[str]:
    """The SMS the switch sent to `number` (the controllers' `chat` replies)."""
    return [m.body for m in p.sim.outbox if m.recipient.split("@")[0] == number]


def wait_until(what: str, condition):
    with gevent.Timeout(30, AssertionError(f"timed out waiting for {what}")):
        while not (found := condition()):
            gevent.sleep(0.05)
    return found
