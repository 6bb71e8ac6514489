"""Controllers sharing a database: registration, leases, and who may take what over.

On SQLite (one controller) and PostgreSQL (any number), through `esl_callback.controllers`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from click.testing import CliRunner

from esl_callback import accounts, controllers
from esl_callback.callback import requests
from esl_callback.callback.requests import State
from esl_callback.cli import main
from esl_callback.db import Database, utcnow
from esl_callback.models import Account, CallbackRequest, Controller


def a_dead_pid() -> int:
    """The pid of a process that has exited (as one killed with kill -9 has)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    return int(child.stdout)


def as_if_killed(controller_id: str, pid: int) -> None:
    """The row a controller leaves when it dies: lease still running, no stop recorded."""
    Controller.update(pid=pid).where(Controller.id == controller_id).execute()


def lease_ran_out(controller_id: str) -> None:
    Controller.update(lease_until=utcnow() - timedelta(seconds=1)).where(
        Controller.id == controller_id
    ).execute()


def live_request(owner: str | None) -> int:
    account = Account.get_or_none(Account.name == "alice") or accounts.create_account("alice")
    request = requests.create(
        trigger="web", method="web", account=account,
        mode="source_first", source="15550001001", destination="15550002001", controller=owner,
    )  # fmt: skip
    requests.advance(request.id, State.CALLING_SOURCE)
    return request.id


def test_a_second_controller_on_sqlite_is_refused_with_a_pointer_to_postgresql(
    db: Database,
) -> None:
    controllers.register("host:8084", 15, sqlite=True)
    if not db.is_sqlite:
        controllers.register("host:8085", 15, sqlite=False)  # PostgreSQL takes any number
        return
    with pytest.raises(controllers.ControllerConflict, match="move the database to PostgreSQL"):
        controllers.register("host:8085", 15, sqlite=True)


def test_a_controller_killed_with_kill_9_starts_again_at_once_under_its_id(db: Database) -> None:
    first = controllers.register("host:8084", 15, sqlite=db.is_sqlite)
    as_if_killed("host:8084", a_dead_pid())

    again = controllers.register("host:8084", 15, sqlite=db.is_sqlite)

    assert again.epoch == first.epoch + 1
    with pytest.raises(controllers.LeaseLost):  # the old process, were it alive, is fenced
        controllers.heartbeat(first)
    controllers.heartbeat(again)


def test_an_id_held_by_a_running_process_is_refused(db: Database) -> None:
    controllers.register("host:8084", 15, sqlite=db.is_sqlite)
    as_if_killed("host:8084", os.getppid())  # a process that runs (this one's parent)

    with pytest.raises(controllers.ControllerConflict, match="give each serve its own"):
        controllers.register("host:8084", 15, sqlite=db.is_sqlite)


def test_a_controller_stopped_cleanly_leaves_sqlite_to_the_next_one(db: Database) -> None:
    first = controllers.register("host:8084", 15, sqlite=db.is_sqlite)
    controllers.unregister(first)

    controllers.register("host:8085", 15, sqlite=db.is_sqlite)

    assert [c.alive for c in controllers.listing()] == [False, True]


def test_a_lease_that_ran_out_fences_the_controller_unless_it_is_alone_on_sqlite(
    db: Database,
) -> None:
    identity = controllers.register("host:8084", 15, sqlite=db.is_sqlite)
    lease_ran_out("host:8084")
    if db.is_sqlite:
        controllers.heartbeat(identity)  # nobody takes over on SQLite: renewed
        return
    with pytest.raises(controllers.LeaseLost, match="other controllers may own its calls"):
        controllers.heartbeat(identity)


def test_only_a_dead_controllers_live_requests_are_taken_over_and_each_by_one_survivor(
    db: Database,
) -> None:
    if db.is_sqlite:
        pytest.skip("one controller on SQLite")
    for name in ("dead", "alive", "survivor-1", "survivor-2"):
        controllers.register(name, 15, sqlite=False)
    lease_ran_out("dead")
    dead_calls = [live_request("dead") for _ in range(3)]
    alive_call, unowned = live_request("alive"), live_request(None)
    ended = live_request("dead")
    requests.finish(ended, State.FAILED, failure_cause="X")

    first = controllers.claim_orphaned("survivor-1")
    second = controllers.claim_orphaned("survivor-2")

    assert (sorted(first), second) == (dead_calls, [])
    owners = {r.id: r.controller for r in CallbackRequest.select()}
    assert (owners[alive_call], owners[unowned], owners[ended]) == ("alive", None, "dead")


def test_a_hangup_of_a_live_controllers_call_is_not_for_another_to_bill(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("one controller on SQLite")
    controllers.register("owner", 15, sqlite=False)
    controllers.register("other", 15, sqlite=False)
    call = live_request("owner")

    assert not controllers.may_act_on(call, "other")
    lease_ran_out("owner")
    assert controllers.may_act_on(call, "other")  # claimed by the first to see it
    assert not controllers.may_act_on(call, "third")
    assert CallbackRequest.get_by_id(call).controller == "other"


def test_the_controllers_command_lists_every_controller_alive_dead_or_stopped_with_its_calls(
    db: Database,
) -> None:
    if db.is_sqlite:
        pytest.skip("one controller on SQLite")
    controllers.register("host-a:8084", 15, sqlite=False)
    controllers.register("host-b:8084", 15, sqlite=False)
    stopped = controllers.register("host-c:8084", 15, sqlite=False)
    controllers.unregister(stopped)
    lease_ran_out("host-b:8084")
    live_request("host-a:8084")
    live_request("host-b:8084")
    live_request("host-b:8084")

    result = CliRunner().invoke(main, ["controllers", "--database", db.url])
    listed = json.loads(
        CliRunner().invoke(main, ["controllers", "--database", db.url, "--json"]).output
    )

    assert result.exit_code == 0, result.output
    states = [line.split()[:2] for line in result.output.splitlines()]
    assert states == [["host-a:8084", "alive"], ["host-b:8084", "DEAD"], ["host-c:8084", "stopped"]]
    assert [(c["id"], c["live_requests"]) for c in listed] == [
        ("host-a:8084", 1), ("host-b:8084", 2), ("host-c:8084", 0),
    ]  # fmt: skip
