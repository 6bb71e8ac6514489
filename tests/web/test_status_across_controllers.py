"""A portal served by one controller follows and cancels a callback another controller runs
(both on one PostgreSQL and one switch): LISTEN/NOTIFY carries the changes and the cancel.

PostgreSQL only: SQLite serves one controller (a second is refused at start).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import gevent
import pytest
from ports import free_port
from web_helpers import (
    ALICE_PHONE,
    FRIEND,
    PHONES,
    SILENT,
    EventReader,
    User,
    WebPlatform,
    legs_seen,
    seen_in_order,
    wait_until_ended,
)

from esl_callback.callback import status
from esl_callback.db import Database
from esl_callback.models import Account
from esl_callback.service import Service


@pytest.fixture
def two_controllers(
    web_db: Database, platform_with: Callable[..., WebPlatform]
) -> Iterator[tuple[WebPlatform, Service]]:
    """The portal's controller, and a second one (no portal) on the same switch."""
    if web_db.is_sqlite:
        pytest.skip("SQLite serves one controller")
    phones = {  # (simulated seconds; the simulator runs 10 times faster)
        **PHONES,
        ALICE_PHONE: {"answer_after": 15},
        FRIEND: {"answer_after": 2, "hangup_after": 50},
    }
    portal = platform_with(phones)
    settings = portal.service.settings
    second = Service(
        dataclasses.replace(
            settings,
            outbound=dataclasses.replace(settings.outbound, port=free_port()),
            web=dataclasses.replace(settings.web, enabled=False),
            controller=dataclasses.replace(settings.controller, id="second"),
        )
    ).start()
    for node in second.nodes:
        assert node.wait_connected(10), "the second controller did not connect"
    yield portal, second
    for request_id in list(second.dialer.flows):
        second.dialer.cancel(request_id, "the test ended")
    second.stop(timeout=2)


def placed_by(service: Service, user: User, destination: str) -> int:
    """A callback the other controller places (as its own portal or API would)."""
    account = service.db.run(Account.get_by_id, user.account.id)
    request = service.dialer.start_callback(account, ALICE_PHONE, destination, "source_first")
    return request.id


def test_the_portal_streams_each_change_of_a_call_another_controller_runs(
    two_controllers, alice: User
) -> None:
    portal, second = two_controllers
    client = portal.client()
    request_id = placed_by(second, alice, FRIEND)

    stream = client.get(f"/api/v1/requests/{request_id}/events", headers=alice.auth, buffered=False)
    snapshots = EventReader(stream).until_end(timeout=60)

    # Without the notices the stream would only look again every 15 s (sse.HEARTBEAT_SECONDS),
    # after this call (about 8 s) ended, and never see it connected.
    seen_in_order(
        legs_seen(snapshots),
        "source:ringing",
        "source:bridged destination:bridged",
        "source:hung_up destination:hung_up",
    )
    assert snapshots[-1]["state"] == "completed"


def test_the_portal_cancels_a_call_another_controller_runs(two_controllers, alice: User) -> None:
    portal, second = two_controllers
    client = portal.client()
    request_id = placed_by(second, alice, SILENT)
    with gevent.Timeout(30, AssertionError("the source never answered")):
        while status.snapshot(request_id)["state"] != "calling_destination":
            gevent.sleep(0.05)

    response = client.post(f"/api/v1/requests/{request_id}/cancel", headers=alice.auth)

    assert response.status_code == 200, response.json
    assert wait_until_ended(request_id, timeout=30)["state"] == "cancelled"
    assert not second.dialer.flows
