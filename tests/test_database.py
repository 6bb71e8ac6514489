"""The database layer on SQLite and PostgreSQL: schema versions, exact money, hashed PINs."""

from collections.abc import Callable
from decimal import Decimal

import gevent
import peewee
import psycopg2
import pytest
from playhouse.migrate import migrate

from esl_callback import accounts, models
from esl_callback.callback import billing, requests
from esl_callback.callback.reconcile import open_legs_on
from esl_callback.db import (
    Database,
    DatabaseError,
    Migration,
    database_proxy,
    latest_version,
    utcnow,
)
from esl_callback.hashing import hash_api_token
from esl_callback.models import Account, ApiToken, BaseModel, CallbackRequest, SpentToken, WebUser
from esl_callback.web import auth, history
from esl_callback.web.sms_api import reported_call


def test_init_twice_keeps_the_schema_and_its_rows(db: Database) -> None:
    accounts.create_account("alice")
    assert db.init() == [f"schema is up to date (version {latest_version()})"]
    assert Account.select().count() == 1


def test_upgrade_applies_new_migrations_once_and_keeps_every_row(db: Database) -> None:
    accounts.create_account("alice", default_callback_number="4930123456")
    notes = peewee.TextField(default="")
    version = latest_version() + 1
    step = Migration(
        version=version,
        description="accounts get notes",
        apply=lambda migrator, _db: migrate(migrator.add_column("account", "notes", notes)),
    )
    assert db.upgrade([step]) == [f"applied {version}: accounts get notes"]
    assert db.upgrade([step]) == [f"schema is up to date (version {version})"]
    assert db.schema_version() == version
    cursor = db.peewee.execute_sql("SELECT name, notes, default_callback_number FROM account")
    assert cursor.fetchall() == [("alice", "", "4930123456")]


def test_a_failing_migration_leaves_the_version_and_data_as_they_were(db: Database) -> None:
    accounts.create_account("alice")

    def broken(migrator: object, database: peewee.Database) -> None:
        database.execute_sql("UPDATE account SET name = 'changed'")
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError):
        db.upgrade([Migration(version=latest_version() + 1, description="broken", apply=broken)])
    assert db.schema_version() == latest_version()
    assert Account.get().name == "alice"


HISTORY_INDEXES = [
    ("reservation", ("account_id", "released_at")),
    ("callback_request", ("account_id", "created_at")),
    ("callback_request", ("account_id", "state")),
    ("callback_request", ("trigger_uuid",)),
    ("payment", ("account_id", "created_at")),
    ("leg", ("node", "billed")),
]
MIGRATION_3 = "applied 3: index lookups that read all history (by account, node, trigger)"
MIGRATION_4 = "applied 4: spent tokens: ended web sessions and submitted one-use forms"
MIGRATION_5 = "applied 5: accounts' credit limit; legs' operator cost (what no account paid)"
MIGRATION_6 = "applied 6: vouchers: prepaid cards redeemed once"
MIGRATION_7 = "applied 7: web users' time zone; phone-book favourites"
MIGRATION_8 = (
    "applied 8: API tokens with their last use; session keys; phone-book entries with several "
    "numbers"
)
MIGRATION_9 = "applied 9: accounts' low-balance alerts (e-mail or SMS)"
MIGRATION_10 = "applied 10: switch CDRs: what mod_json_cdr posted, one row per channel"
# After 6: every upgrade below applies them too.
MIGRATION_11 = "applied 11: controllers and the requests each owns"
LATER = [MIGRATION_7, MIGRATION_8, MIGRATION_9, MIGRATION_10, MIGRATION_11]


def drop_version_5_columns(db: Database) -> None:
    """Take away what migrations 5 and 6 add, as a database made before them lacks it."""
    drop_version_6_table(db)
    db.peewee.execute_sql("ALTER TABLE account DROP COLUMN credit_limit")
    db.peewee.execute_sql("ALTER TABLE leg DROP COLUMN operator_cost")


def drop_version_6_table(db: Database) -> None:
    drop_version_7_columns(db)
    db.peewee.execute_sql("DROP TABLE voucher")


def drop_version_7_columns(db: Database) -> None:
    drop_version_8_changes(db)
    db.peewee.execute_sql("ALTER TABLE web_user DROP COLUMN time_zone")
    db.peewee.execute_sql("ALTER TABLE phone_book_entry DROP COLUMN favourite")


def drop_version_8_changes(db: Database) -> None:
    """Take away what migration 8 adds, and give back the API token column it moves away."""
    drop_version_9_columns(db)
    for statement in (
        "DROP TABLE api_token",
        "DROP TABLE phone_book_number",
        "ALTER TABLE web_user DROP COLUMN session_key",
        "ALTER TABLE phone_book_entry DROP COLUMN label",
        "ALTER TABLE web_user ADD COLUMN api_token_hash VARCHAR(128)",
        'CREATE UNIQUE INDEX "web_user_api_token_hash" ON "web_user" ("api_token_hash")',
    ):
        db.peewee.execute_sql(statement)


def drop_version_9_columns(db: Database) -> None:
    drop_version_10_table(db)
    for column in ALERT_COLUMNS:
        db.peewee.execute_sql(f"ALTER TABLE account DROP COLUMN {column}")


ALERT_COLUMNS = (
    "low_balance_alert",
    "low_balance_alert_by",
    "alert_email",
    "low_balance_alerted_at",
)


def drop_version_10_table(db: Database) -> None:
    drop_version_11_table_and_column(db)
    db.peewee.execute_sql("DROP TABLE switch_cdr")


def drop_version_11_table_and_column(db: Database) -> None:
    db.peewee.execute_sql("DROP TABLE controller")
    db.peewee.execute_sql("DROP INDEX callback_request_controller")
    db.peewee.execute_sql("ALTER TABLE callback_request DROP COLUMN controller")


def history_indexes(db: Database) -> list[bool]:
    """Which of HISTORY_INDEXES the database has."""
    return [
        columns in {tuple(i.columns) for i in db.peewee.get_indexes(table)}
        for table, columns in HISTORY_INDEXES
    ]


def drop_history_indexes(db: Database) -> None:
    for table, columns in HISTORY_INDEXES:
        db.peewee.execute_sql(f"DROP INDEX {table}_{'_'.join(columns)}")


def sms_indexes(db: Database) -> set[tuple[str, ...]]:
    return {tuple(index.columns) for index in db.peewee.get_indexes("sms_message")}


def test_a_version_1_database_gets_the_sms_sender_index_and_keeps_its_rows(db: Database) -> None:
    accounts.create_account("alice")
    assert ("source", "created_at") in sms_indexes(db)  # a new database has it from the start
    db.peewee.execute_sql("DROP INDEX sms_message_source_created_at")
    drop_history_indexes(db)
    drop_version_5_columns(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 1")  # as a version-1 install
    assert db.upgrade() == [
        "applied 2: index SMS by sender and time (the per-sender rate limit)",
        MIGRATION_3,
        MIGRATION_4,
        MIGRATION_5,
        MIGRATION_6,
        *LATER,
    ]
    assert ("source", "created_at") in sms_indexes(db)
    assert db.schema_version() == latest_version()
    assert Account.get().name == "alice"


def test_a_version_2_database_gets_the_indexes_of_history_sized_lookups(db: Database) -> None:
    assert all(history_indexes(db))  # a new database has them
    drop_history_indexes(db)
    drop_version_5_columns(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 2")
    assert not any(history_indexes(db))
    assert db.upgrade() == [MIGRATION_3, MIGRATION_4, MIGRATION_5, MIGRATION_6, *LATER]
    assert all(history_indexes(db))


def spent_token_schema(db: Database) -> tuple[list, list, list]:
    """spent_token's columns, primary key and indexes (with their SQL), as the database says."""
    return (
        db.peewee.get_columns("spent_token"),
        db.peewee.get_primary_keys("spent_token"),
        sorted(db.peewee.get_indexes("spent_token")),
    )


def as_version_3(db: Database) -> None:
    db.peewee.execute_sql("DROP TABLE spent_token")
    drop_version_5_columns(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 3")


class SpentTokenChangedLater(BaseModel):
    """SpentToken as a later commit might change it: a wider column, a new column, a new index."""

    kind = peewee.CharField(max_length=32)
    token = peewee.CharField(max_length=64, index=True)
    expires_at = peewee.DateTimeField(index=True)
    note = peewee.TextField(null=True)

    class Meta:
        table_name = "spent_token"
        indexes = ((("kind", "token"), True),)


def test_a_version_3_database_gets_the_table_of_spent_tokens_db_init_makes(db: Database) -> None:
    made_by_init = spent_token_schema(db)
    as_version_3(db)
    assert db.upgrade() == [MIGRATION_4, MIGRATION_5, MIGRATION_6, *LATER]
    assert SpentToken.select().count() == 0
    assert spent_token_schema(db) == made_by_init


def test_migration_4_creates_the_table_it_shipped_with_whatever_the_model_says_now(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = spent_token_schema(db)
    as_version_3(db)
    monkeypatch.setattr(models, "SpentToken", SpentTokenChangedLater)
    assert db.upgrade() == [MIGRATION_4, MIGRATION_5, MIGRATION_6, *LATER]
    assert spent_token_schema(db) == shipped


def test_a_version_4_database_gets_credit_limits_and_operator_costs_and_keeps_its_money(
    db: Database,
) -> None:
    alice = accounts.create_account("alice")
    billing.add_payment(alice, "12.50", "voucher 1")
    drop_version_5_columns(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 4")
    assert db.upgrade() == [MIGRATION_5, MIGRATION_6, *LATER]
    account = Account.get()
    assert (account.balance, account.credit_limit, account.floor) == (
        Decimal("12.5"),
        Decimal(0),
        Decimal(0),
    )
    assert "operator_cost" in {column.name for column in db.peewee.get_columns("leg")}


def voucher_schema(db: Database) -> tuple[list, list, list, list]:
    """voucher's columns, primary key, indexes and foreign keys, as the database says."""
    return (
        db.peewee.get_columns("voucher"),
        db.peewee.get_primary_keys("voucher"),
        sorted(db.peewee.get_indexes("voucher")),
        sorted(db.peewee.get_foreign_keys("voucher")),
    )


def test_a_version_5_database_gets_the_voucher_table_db_init_makes(db: Database) -> None:
    made_by_init = voucher_schema(db)
    drop_version_6_table(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 5")
    assert db.upgrade() == [MIGRATION_6, *LATER]
    assert voucher_schema(db) == made_by_init


def columns_of(db: Database, *tables: str) -> dict[str, list]:
    return {table: sorted(db.peewee.get_columns(table)) for table in tables}


def test_a_version_6_database_gets_time_zones_and_favourites_as_db_init_makes_them(
    db: Database,
) -> None:
    made_by_init = columns_of(db, "web_user", "phone_book_entry")
    alice = accounts.create_account("alice")
    accounts.add_web_user(alice, "alice", "a long password")
    drop_version_7_columns(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 6")
    assert db.upgrade() == LATER
    assert columns_of(db, "web_user", "phone_book_entry") == made_by_init
    assert [(u.username, u.time_zone) for u in WebUser.select()] == [("alice", None)]


def schema_of(db: Database, *tables: str) -> dict[str, tuple[list, list, list]]:
    """Each table's columns, indexes and foreign keys, as the database says."""
    return {
        table: (
            sorted(db.peewee.get_columns(table)),
            sorted(db.peewee.get_indexes(table)),
            sorted(db.peewee.get_foreign_keys(table)),
        )
        for table in tables
    }


def test_a_version_7_database_keeps_its_api_tokens_and_gets_the_schema_db_init_makes(
    db: Database,
) -> None:
    tables = ("web_user", "phone_book_entry", "api_token", "phone_book_number")
    made_by_init = schema_of(db, *tables)
    alice = accounts.create_account("alice")
    accounts.add_web_user(alice, "alice", "a long password")
    accounts.add_web_user(alice, "alice2", "a long password")
    drop_version_8_changes(db)
    db.peewee.execute_sql(
        "UPDATE web_user SET api_token_hash = " + db.peewee.param + " WHERE username = 'alice'",
        (hash_api_token("the app's token"),),
    )
    db.peewee.execute_sql("UPDATE schema_version SET version = 7")

    assert db.upgrade() == [MIGRATION_8, MIGRATION_9, MIGRATION_10, MIGRATION_11]

    assert schema_of(db, *tables) == made_by_init
    assert auth.user_for_token("the app's token").username == "alice"
    assert [(t.web_user.username, t.label) for t in ApiToken.select()] == [("alice", "App")]


def test_a_version_8_database_gets_low_balance_alerts_as_db_init_makes_them(
    db: Database,
) -> None:
    made_by_init = columns_of(db, "account")
    alice = accounts.create_account("alice")
    billing.add_payment(alice, "2.50", "opening")
    drop_version_9_columns(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 8")
    assert db.upgrade() == [MIGRATION_9, MIGRATION_10, MIGRATION_11]
    assert columns_of(db, "account") == made_by_init
    alice = Account.get()
    assert (alice.balance, alice.low_balance_alert, alice.low_balance_alert_by) == (
        Decimal("2.50"),
        None,
        None,
    )


def switch_cdr_schema(db: Database) -> tuple[list, list, list]:
    """switch_cdr's columns, primary key and indexes, as the database says."""
    return (
        db.peewee.get_columns("switch_cdr"),
        db.peewee.get_primary_keys("switch_cdr"),
        sorted(db.peewee.get_indexes("switch_cdr")),
    )


def test_a_version_9_database_gets_the_switch_cdr_table_db_init_makes(db: Database) -> None:
    made_by_init = switch_cdr_schema(db)
    drop_version_10_table(db)
    db.peewee.execute_sql("UPDATE schema_version SET version = 9")
    assert db.upgrade() == [MIGRATION_10, MIGRATION_11]
    assert switch_cdr_schema(db) == made_by_init


def test_upgrade_of_an_empty_database_says_to_run_init(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(DatabaseError, match="run `esl-callback db init` first"):
            database.upgrade()
    finally:
        database.close()


def test_balance_arithmetic_is_exact(db: Database) -> None:
    account = accounts.create_account("alice")
    with database_proxy.atomic():
        for _ in range(10):
            Account.update(balance=Account.balance + Decimal("0.1")).where(
                Account.id == account.id
            ).execute()
        Account.update(balance=Account.balance - Decimal("0.3")).where(
            Account.id == account.id
        ).execute()
    balance = Account.get_by_id(account.id).balance
    assert isinstance(balance, Decimal)
    assert balance == Decimal("0.7")


def test_changing_an_account_never_writes_back_a_stale_balance(db: Database) -> None:
    stale = accounts.create_account("alice")
    Account.update(balance=Decimal("12.5")).where(Account.id == stale.id).execute()
    accounts.update_account(stale, max_concurrent_calls=3)
    fresh = Account.get_by_id(stale.id)
    assert (fresh.balance, fresh.max_concurrent_calls) == (Decimal("12.5"), 3)


def test_pin_is_stored_hashed_and_finds_its_account(db: Database) -> None:
    account = accounts.create_account("alice", pin="4711")
    stored = Account.get_by_id(account.id).pin_hash
    assert "4711" not in stored
    assert len(stored) == 64
    assert accounts.find_account_by_pin("4711").id == account.id
    assert accounts.find_account_by_pin("4712") is None


def test_two_accounts_cannot_share_a_pin(db: Database) -> None:
    accounts.create_account("alice", pin="4711")
    with pytest.raises(accounts.AccountError, match="already in use"):
        accounts.create_account("bob", pin="4711")


def test_run_executes_a_unit_of_work_and_returns_its_result(db: Database) -> None:
    accounts.create_account("alice")
    assert db.run(lambda: Account.get(Account.name == "alice").name) == "alice"


def test_units_of_work_of_two_greenlets_never_interleave(db: Database) -> None:
    """Even a unit that yields inside its transaction finishes before another one starts."""
    if not db.is_sqlite:
        pytest.skip("PostgreSQL: under serve each greenlet has its own pooled connection")
    steps: list[str] = []

    def unit(name: str) -> None:
        with database_proxy.atomic():
            steps.append(f"{name} begins")
            accounts.create_account(name)
            gevent.sleep(0.01)  # e.g. a log handler that waits
            steps.append(f"{name} ends")

    gevent.joinall(
        [gevent.spawn(db.run, unit, name) for name in ("alice", "bob")], raise_error=True
    )
    assert steps == ["alice begins", "alice ends", "bob begins", "bob ends"]
    assert Account.select().count() == 2


def test_an_unreachable_postgresql_server_is_reported_with_what_to_check() -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseError, match=r"cannot open database .*is the server running"):
        database.check()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://x/y", "unsupported scheme 'mysql'"),
        ("sqlite:///:memory:", "give a file"),
        ("postgresql://user@host/", "name the database"),
    ],
)
def test_bad_database_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        Database(url)


def last_statement(url: str, pid: int) -> str:
    """What the server's backend `pid` ran last, as another session sees it."""
    with psycopg2.connect(url) as admin, admin.cursor() as cur:
        cur.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
        return cur.fetchone()[0]


def backend_pid(database: Database) -> int:
    return database.run(lambda: database.peewee.connection().get_backend_pid())


def test_a_pooled_connection_used_moments_ago_is_handed_out_without_a_ping(
    postgres_server: str,
) -> None:
    database = Database(postgres_server)
    try:
        database.run(lambda: database.peewee.execute_sql("SELECT 'last work'"))
        pid = backend_pid(database)
        database.run(lambda: None)  # taken from the pool and given back at once
        assert last_statement(postgres_server, pid) == "SELECT 'last work'"

        database.peewee.ALIVE_BYPASS_SECONDS = 0  # now every connection has idled too long
        database.run(lambda: None)
        assert last_statement(postgres_server, pid) == "SELECT 1"
    finally:
        database.close()


def test_a_connection_the_server_dropped_while_idle_is_replaced(postgres_server: str) -> None:
    database = Database(postgres_server)
    database.peewee.ALIVE_BYPASS_SECONDS = 0.05
    try:
        dropped = backend_pid(database)
        with psycopg2.connect(postgres_server) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (dropped,))
        gevent.sleep(0.1)
        assert database.run(lambda: database.peewee.execute_sql("SELECT 2").fetchone()) == (2,)
        assert backend_pid(database) != dropped
    finally:
        database.close()


def plans_of(database: Database, unit: Callable[[], object]) -> list[str]:
    """The query plan of every statement `unit` sends to SQLite (values expanded by the trace)."""
    sent: list[str] = []
    connection = database.peewee.connection()
    connection.set_trace_callback(sent.append)
    try:
        unit()
    finally:
        connection.set_trace_callback(None)
    queries = [sql for sql in sent if sql.split()[0] in ("SELECT", "UPDATE", "DELETE")]
    return [row[3] for sql in queries for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}")]


def test_an_accounts_history_page_is_read_in_order_not_sorted_from_all_its_calls(
    tmp_path,
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    database.init()
    try:
        page = history.requests_query(7, history.HistoryFilter(None, None, "")).limit(20)
        plan = plans_of(database, lambda: list(page))
    finally:
        database.close()

    assert plan == ["SEARCH t1 USING INDEX callback_request_account_id_created_at (account_id=?)"]


@pytest.mark.parametrize(
    ("lookup", "index"),
    [
        pytest.param(
            lambda: requests.live_count(7),
            "callback_request_account_id_state",
            id="an account's live calls",
        ),
        pytest.param(
            lambda: reported_call("trigger-1"),
            "callback_request_trigger_uuid",
            id="a gateway trigger reported again",
        ),
        pytest.param(
            lambda: open_legs_on("fs1", utcnow()), "leg_node_billed", id="a node's unbilled legs"
        ),
    ],
)
def test_lookups_made_for_each_call_read_only_what_they_need(tmp_path, lookup, index) -> None:
    database = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    database.init()
    try:
        plans = plans_of(database, lookup)
    finally:
        database.close()

    assert any(f"INDEX {index} " in plan for plan in plans), plans  # or COVERING INDEX
    assert not [plan for plan in plans if plan.startswith("SCAN")], plans


def test_a_version_10_database_gets_controllers_as_db_init_makes_them_and_its_requests_no_owner(
    db: Database,
) -> None:
    made_by_init = columns_of(db, "controller", "callback_request")
    indexes_by_init = {tuple(i.columns) for i in db.peewee.get_indexes("callback_request")}
    alice = accounts.create_account("alice")
    drop_version_11_table_and_column(db)
    db.peewee.execute_sql(
        "INSERT INTO callback_request (account_id, trigger, method, mode, state, caller_id, "
        "called_number, attempts, created_at, updated_at) VALUES "
        f"({alice.id}, 'web', 'web', 'source_first', 'bridged', '', '', 0, "
        "'2026-12-07 10:00:00', '2026-12-07 10:00:00')"
    )
    db.peewee.execute_sql("UPDATE schema_version SET version = 10")
    assert db.upgrade() == [MIGRATION_11]
    assert columns_of(db, "controller", "callback_request") == made_by_init
    assert {tuple(i.columns) for i in db.peewee.get_indexes("callback_request")} == indexes_by_init
    assert [r.controller for r in CallbackRequest.select()] == [None]  # any controller's
