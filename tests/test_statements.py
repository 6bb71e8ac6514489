"""Statements compiled once: the same rows and conversions as peewee, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import time
from datetime import datetime
from decimal import Decimal

import pytest
from peewee import EXCLUDED

from esl_callback import accounts
from esl_callback.callback import requests
from esl_callback.db import Database
from esl_callback.models import Account, Leg
from esl_callback.statements import Insert, ListStatement, Statement, Upsert


@pytest.fixture
def leg(db: Database) -> Leg:
    account = accounts.create_account("alice", pin="4711")
    request = requests.create(trigger="web", method="web", account=account, source="4930111")
    return Leg.create(request=request, leg="a", uuid="leg-1", number="4930111")


def test_a_slot_in_a_comparison_is_converted_like_the_field_it_is_compared_with(leg: Leg) -> None:
    by_request = Statement(lambda s: Leg.select(Leg.uuid).where(Leg.request == s.request))
    assert by_request.rows(request=leg.request) == [("leg-1",)]  # a model instance, as peewee
    assert by_request.rows(request=leg.request_id) == [("leg-1",)]


def test_updated_values_and_selected_rows_round_trip_with_their_types(leg: Leg) -> None:
    answered = datetime(2026, 11, 26, 1, 2, 3, 456789)
    close = Statement(
        lambda s: Leg.update(
            {Leg.cost: s(Leg.cost), Leg.billed: s(Leg.billed), Leg.answered_at: s(Leg.answered_at)}
        ).where(Leg.uuid == s.uuid)
    )
    assert close.execute(uuid="leg-1", cost=Decimal("0.1234"), billed=True, answered_at=answered)

    read = Statement(
        lambda s: Leg.select(Leg.cost, Leg.billed, Leg.answered_at).where(Leg.uuid == s.uuid)
    )
    assert read.first(uuid="leg-1") == (Decimal("0.1234"), True, answered)
    assert read.first(uuid="no-such-leg") is None
    stored = Leg.get(Leg.uuid == "leg-1")  # what peewee itself reads back
    assert (stored.cost, stored.billed, stored.answered_at) == (Decimal("0.1234"), True, answered)


def test_objects_are_model_instances_with_every_selected_field_and_nothing_dirty(leg: Leg) -> None:
    found = Statement(lambda s: Leg.select().where(Leg.uuid == s.uuid)).object(Leg, uuid="leg-1")
    assert isinstance(found, Leg)
    assert (found.id, found.request_id, found.number, found.state) == (
        leg.id,
        leg.request_id,
        "4930111",
        "dialing",
    )
    assert found.dirty_fields == []


def test_a_statement_is_built_once_however_often_it_runs(leg: Leg) -> None:
    builds = []

    def build(s):
        builds.append(1)
        return Leg.select(Leg.id).where(Leg.uuid == s.uuid)

    statement = Statement(build)
    for _ in range(3):
        statement.rows(uuid="leg-1")
    assert len(builds) == 1


def test_a_missing_value_is_refused_by_name_before_anything_runs(leg: Leg) -> None:
    mark = Statement(lambda s: Leg.update(state=s(Leg.state)).where(Leg.uuid == s.uuid))
    with pytest.raises(TypeError, match="needs a value for 'state'"):
        mark.execute(uuid="leg-1")
    assert Leg.get_by_id(leg.id).state == "dialing"


def test_an_insert_fills_defaults_per_row_and_returns_the_new_id(db: Database) -> None:
    insert = Insert(Account)
    first = insert.create(name="bob", pin_hash="h1")
    time.sleep(0.001)
    second = insert.create(name="carol", pin_hash="h2", balance=Decimal("2.5"))
    assert first.id != second.id
    stored = {a.name: a for a in Account.select()}
    assert stored["bob"].id == first.id and stored["carol"].id == second.id
    assert (stored["bob"].status, stored["bob"].balance) == ("active", Decimal("0"))
    assert stored["carol"].balance == Decimal("2.5")
    # Callable defaults are evaluated for each row, not frozen into the compiled statement.
    assert stored["bob"].created_at < stored["carol"].created_at


def test_a_list_statement_binds_lists_of_any_length_each_compiled_once(db: Database) -> None:
    for name in ("bob", "carol", "dave"):
        accounts.create_account(name)
    builds = []

    def build(s, names):
        builds.append(len(names))
        return Account.select().where(Account.name.in_(names), Account.status == s.status)

    named = ListStatement(build)
    assert named.object(Account, ["bob"], status="active").name == "bob"
    assert named.object(Account, ["nobody", "carol"], status="active").name == "carol"
    assert named.object(Account, ["carol", "dave"], status="disabled") is None
    assert builds == [1, 2]  # one compiled statement per length


def test_an_upsert_inserts_a_new_row_or_applies_its_conflict_clause_to_the_one_there(
    leg: Leg,
) -> None:
    rate_once = Upsert(
        Leg,
        lambda query: query.on_conflict(
            conflict_target=[Leg.uuid],
            update={Leg.rate_prefix: EXCLUDED.rate_prefix},
            where=Leg.rate_prefix.is_null(),
        ),
    )
    row = {"request": leg.request_id, "leg": "a", "uuid": "leg-1", "number": "4930111"}
    assert rate_once.store(**{**row, "leg": "b", "uuid": "leg-2", "rate_prefix": "1"})
    new = Leg.get(Leg.uuid == "leg-2")
    assert (new.rate_prefix, new.state) == ("1", "dialing")  # defaults filled in

    assert rate_once.store(**row, rate_prefix="49")
    assert not rate_once.store(**row, rate_prefix="4")  # the clause's WHERE leaves it alone
    assert Leg.get_by_id(leg.id).rate_prefix == "49"
    assert Leg.select().count() == 2


CALL_PATH_MODULES = (
    "esl_callback.accounts",
    "esl_callback.lockout",
    "esl_callback.callback.billing",
    "esl_callback.callback.dialer",
    "esl_callback.callback.requests",
    "esl_callback.callback.triggers",
)


def test_no_compiled_statement_of_the_call_path_reads_a_whole_table(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    database.init()
    try:
        found = {
            f"{module}.{name}": statement
            for module in CALL_PATH_MODULES
            for name, statement in vars(importlib.import_module(module)).items()
            if isinstance(statement, Statement)
        }
        assert len(found) >= 15
        for name, statement in found.items():
            sql = statement.sql
            plan = database.peewee.execute_sql(f"EXPLAIN QUERY PLAN {sql}", [1] * sql.count("?"))
            scans = [row[3] for row in plan if row[3].startswith("SCAN")]
            assert not scans, f"{name} scans: {scans}"
    finally:
        database.close()
