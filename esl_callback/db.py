"""Database from a URL, safe under gevent, with schema versions.

* `sqlite:///path.db` (default): one connection, WAL mode, used inline: a statement of the call
  path takes 15-40 µs, less than handing it to a thread and back (about 85 µs of CPU). SQLite
  calls do not yield to gevent, and `Database.run` holds a lock for the whole unit of work, so
  units never interleave on the shared connection: this process is a single writer, and
  BEGIN IMMEDIATE makes balance reservations atomic against other processes (the CLI). A
  process that holds the write lock for long (another writer, a checkpoint on a slow disk)
  pauses this one for that long, up to `busy_timeout`.
* `postgresql://user:pass@host:port/db`: a connection pool (`PostgresqlPool`: a connection idle
  for a while is pinged before it is used again); psycopg2 is made gevent-cooperative
  with psycogreen when the process runs under gevent, so `Database.run` executes inline and a slow
  query only parks its own greenlet.

Schema versions live in the `schema_version` table. A new database gets the current schema and
the latest version in one step; an older one is brought forward by the migrations in
`MIGRATIONS`, each applied once, in order, inside a transaction. A migration spells out the
schema it makes (SQL, migrator steps), never through the current models, which later commits
change: it must make the same tables on every database it ever runs on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import gevent
import peewee
from gevent.lock import RLock
from playhouse.migrate import SchemaMigrator, migrate
from playhouse.pool import PooledPostgresqlDatabase

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every model binds to this proxy; `Database` points it at the real connection.
database_proxy = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
}


# What a database that cannot be reached raises (the server stopped, the file locked by another
# process or its disk full), as opposed to a query it refuses.
UNREACHABLE: tuple[type[Exception], ...] = (peewee.OperationalError, peewee.InterfaceError)
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 30.0


def in_words(exc: BaseException) -> str:
    """A database error on one line (psycopg2's span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class DatabaseError(RuntimeError):
    """The database cannot be opened or used; the message says what to check."""


@dataclass(frozen=True)
class Migration:
    """One schema step: `apply(migrator, database)` brings version-1 to `version`."""

    version: int
    description: str
    apply: Callable[[SchemaMigrator, peewee.Database], None]


def _index_sms_by_sender(migrator: SchemaMigrator, database: peewee.Database) -> None:
    migrate(migrator.add_index("sms_message", ("source", "created_at"), False))


def _index_history_lookups(migrator: SchemaMigrator, database: peewee.Database) -> None:
    migrate(
        migrator.add_index("reservation", ("account_id", "released_at"), False),
        migrator.add_index("callback_request", ("account_id", "created_at"), False),
        migrator.add_index("callback_request", ("account_id", "state"), False),
        migrator.add_index("callback_request", ("trigger_uuid",), False),
        migrator.add_index("payment", ("account_id", "created_at"), False),
        # Not add_index: it looks columns up as attributes of a column factory, whose own
        # `node` attribute shadows a column of that name (it indexed "leg" instead).
        migrator.sql('CREATE INDEX "leg_node_billed" ON "leg" ("node", "billed")'),
    )


# The table of migration 4 exactly as it shipped (what peewee made of models.SpentToken then),
# so that a later change to the model cannot change what this migration creates: such a change
# is a migration of its own.
_SPENT_TOKEN_TABLE = {
    "sqlite": (
        'CREATE TABLE IF NOT EXISTS "spent_token" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"kind" VARCHAR(16) NOT NULL, "token" VARCHAR(64) NOT NULL, '
        '"expires_at" DATETIME NOT NULL)'
    ),
    "postgresql": (
        'CREATE TABLE IF NOT EXISTS "spent_token" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"kind" VARCHAR(16) NOT NULL, "token" VARCHAR(64) NOT NULL, '
        '"expires_at" TIMESTAMP NOT NULL)'
    ),
}
_SPENT_TOKEN_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "spent_token_expires_at" ON "spent_token" ("expires_at")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "spent_token_kind_token" ON "spent_token" ("kind", "token")',
)


def _dialect(database: peewee.Database) -> str:
    return "sqlite" if isinstance(database, peewee.SqliteDatabase) else "postgresql"


def _create_as_shipped(
    database: peewee.Database, tables: dict[str, str], indexes: tuple[str, ...] = ()
) -> None:
    """A migration's tables (in the database's dialect) and indexes, as they shipped."""
    for statement in (tables[_dialect(database)], *indexes):
        database.execute_sql(statement)


def _create_spent_tokens(migrator: SchemaMigrator, database: peewee.Database) -> None:
    _create_as_shipped(database, _SPENT_TOKEN_TABLE, _SPENT_TOKEN_INDEXES)


def _add_credit_limit_and_operator_cost(
    migrator: SchemaMigrator, database: peewee.Database
) -> None:
    migrate(
        migrator.add_column(
            "account",
            "credit_limit",
            peewee.DecimalField(max_digits=14, decimal_places=4, default=0),
        ),
        migrator.add_column(
            "leg",
            "operator_cost",
            peewee.DecimalField(max_digits=14, decimal_places=4, null=True),
        ),
    )


# The table of migration 6 as it shipped (see _SPENT_TOKEN_TABLE for why it is spelt out).
_VOUCHER_TABLE = {
    "sqlite": (
        'CREATE TABLE IF NOT EXISTS "voucher" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"code_hash" VARCHAR(64) NOT NULL, "batch" VARCHAR(64) NOT NULL, '
        '"amount" DECIMAL(14, 4) NOT NULL, "currency" VARCHAR(3) NOT NULL, '
        '"created_at" DATETIME NOT NULL, "expires_at" DATETIME, "voided_at" DATETIME, '
        '"redeemed_at" DATETIME, "account_id" INTEGER, "payment_id" INTEGER, '
        'FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE SET NULL, '
        'FOREIGN KEY ("payment_id") REFERENCES "payment" ("id") ON DELETE SET NULL)'
    ),
    "postgresql": (
        'CREATE TABLE IF NOT EXISTS "voucher" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"code_hash" VARCHAR(64) NOT NULL, "batch" VARCHAR(64) NOT NULL, '
        '"amount" NUMERIC(14, 4) NOT NULL, "currency" VARCHAR(3) NOT NULL, '
        '"created_at" TIMESTAMP NOT NULL, "expires_at" TIMESTAMP, "voided_at" TIMESTAMP, '
        '"redeemed_at" TIMESTAMP, "account_id" INTEGER, "payment_id" INTEGER, '
        'FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE SET NULL, '
        'FOREIGN KEY ("payment_id") REFERENCES "payment" ("id") ON DELETE SET NULL)'
    ),
}
_VOUCHER_INDEXES = (
    'CREATE UNIQUE INDEX IF NOT EXISTS "voucher_code_hash" ON "voucher" ("code_hash")',
    'CREATE INDEX IF NOT EXISTS "voucher_batch" ON "voucher" ("batch")',
    'CREATE INDEX IF NOT EXISTS "voucher_account_id" ON "voucher" ("account_id")',
    'CREATE INDEX IF NOT EXISTS "voucher_payment_id" ON "voucher" ("payment_id")',
)


def _create_vouchers(migrator: SchemaMigrator, database: peewee.Database) -> None:
    _create_as_shipped(database, _VOUCHER_TABLE, _VOUCHER_INDEXES)


def _add_time_zone_and_favourites(migrator: SchemaMigrator, database: peewee.Database) -> None:
    migrate(
        migrator.add_column("web_user", "time_zone", peewee.CharField(max_length=64, null=True)),
        migrator.add_column("phone_book_entry", "favourite", peewee.BooleanField(default=False)),
    )


# The tables of migration 8 as they shipped (see _SPENT_TOKEN_TABLE for why they are spelt out).
_MIGRATION_8_TABLES = {
    "sqlite": (
        'CREATE TABLE IF NOT EXISTS "api_token" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"web_user_id" INTEGER NOT NULL, "token_hash" VARCHAR(64) NOT NULL, '
        '"label" VARCHAR(64) NOT NULL, "created_at" DATETIME NOT NULL, "last_used_at" DATETIME, '
        'FOREIGN KEY ("web_user_id") REFERENCES "web_user" ("id") ON DELETE CASCADE)',
        'CREATE TABLE IF NOT EXISTS "phone_book_number" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"entry_id" INTEGER NOT NULL, "account_id" INTEGER NOT NULL, '
        '"label" VARCHAR(16) NOT NULL, "number" VARCHAR(20) NOT NULL, "position" INTEGER NOT NULL, '
        'FOREIGN KEY ("entry_id") REFERENCES "phone_book_entry" ("id") ON DELETE CASCADE, '
        'FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
    ),
    "postgresql": (
        'CREATE TABLE IF NOT EXISTS "api_token" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"web_user_id" INTEGER NOT NULL, "token_hash" VARCHAR(64) NOT NULL, '
        '"label" VARCHAR(64) NOT NULL, "created_at" TIMESTAMP NOT NULL, '
        '"last_used_at" TIMESTAMP, '
        'FOREIGN KEY ("web_user_id") REFERENCES "web_user" ("id") ON DELETE CASCADE)',
        'CREATE TABLE IF NOT EXISTS "phone_book_number" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"entry_id" INTEGER NOT NULL, "account_id" INTEGER NOT NULL, '
        '"label" VARCHAR(16) NOT NULL, "number" VARCHAR(20) NOT NULL, "position" INTEGER NOT NULL, '
        'FOREIGN KEY ("entry_id") REFERENCES "phone_book_entry" ("id") ON DELETE CASCADE, '
        'FOREIGN KEY ("account_id") REFERENCES "account" ("id") ON DELETE CASCADE)',
    ),
}
_MIGRATION_8_INDEXES = (
    'CREATE INDEX IF NOT EXISTS "api_token_web_user_id" ON "api_token" ("web_user_id")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "api_token_token_hash" ON "api_token" ("token_hash")',
    'CREATE INDEX IF NOT EXISTS "phone_book_number_entry_id" ON "phone_book_number" ("entry_id")',
    'CREATE INDEX IF NOT EXISTS "phone_book_number_account_id" ON "phone_book_number" '
    '("account_id")',
    'CREATE INDEX IF NOT EXISTS "phone_book_number_account_id_number" ON "phone_book_number" '
    '("account_id", "number")',
)


def _add_api_tokens_session_keys_and_more_numbers(
    migrator: SchemaMigrator, database: peewee.Database
) -> None:
    """Each user's API token moves to api_token (several per user from now on)."""
    for statement in (*_MIGRATION_8_TABLES[_dialect(database)], *_MIGRATION_8_INDEXES):
        database.execute_sql(statement)
    database.execute_sql(
        'INSERT INTO "api_token" ("web_user_id", "token_hash", "label", "created_at") '
        'SELECT "id", "api_token_hash", %s, %s FROM "web_user" '
        'WHERE "api_token_hash" IS NOT NULL'.replace("%s", database.param),
        ("App", utcnow()),
    )
    database.execute_sql('DROP INDEX IF EXISTS "web_user_api_token_hash"')
    database.execute_sql('ALTER TABLE "web_user" DROP COLUMN "api_token_hash"')
    migrate(
        migrator.add_column("web_user", "session_key", peewee.CharField(max_length=32, null=True)),
        migrator.add_column(
            "phone_book_entry", "label", peewee.CharField(max_length=16, default="")
        ),
    )


def _add_low_balance_alerts(migrator: SchemaMigrator, database: peewee.Database) -> None:
    migrate(
        migrator.add_column(
            "account",
            "low_balance_alert",
            peewee.DecimalField(max_digits=14, decimal_places=4, null=True),
        ),
        migrator.add_column(
            "account", "low_balance_alert_by", peewee.CharField(max_length=8, null=True)
        ),
        migrator.add_column("account", "alert_email", peewee.CharField(max_length=254, null=True)),
        migrator.add_column("account", "low_balance_alerted_at", peewee.DateTimeField(null=True)),
    )


# The table of migration 10 as it shipped (see _SPENT_TOKEN_TABLE for why it is spelt out).
_SWITCH_CDR_TABLE = {
    "sqlite": (
        'CREATE TABLE IF NOT EXISTS "switch_cdr" ("id" INTEGER NOT NULL PRIMARY KEY, '
        '"uuid" VARCHAR(64) NOT NULL, "core_uuid" VARCHAR(64), "request_id" INTEGER, '
        '"billsec" INTEGER NOT NULL, "hangup_cause" VARCHAR(64) NOT NULL, '
        '"outcome" VARCHAR(16) NOT NULL, "body" TEXT NOT NULL, "received_at" DATETIME NOT NULL, '
        '"deliveries" INTEGER NOT NULL, "last_received_at" DATETIME NOT NULL)'
    ),
    "postgresql": (
        'CREATE TABLE IF NOT EXISTS "switch_cdr" ("id" SERIAL NOT NULL PRIMARY KEY, '
        '"uuid" VARCHAR(64) NOT NULL, "core_uuid" VARCHAR(64), "request_id" INTEGER, '
        '"billsec" INTEGER NOT NULL, "hangup_cause" VARCHAR(64) NOT NULL, '
        '"outcome" VARCHAR(16) NOT NULL, "body" TEXT NOT NULL, "received_at" TIMESTAMP NOT NULL, '
        '"deliveries" INTEGER NOT NULL, "last_received_at" TIMESTAMP NOT NULL)'
    ),
}
_SWITCH_CDR_INDEXES = (
    'CREATE UNIQUE INDEX IF NOT EXISTS "switch_cdr_uuid" ON "switch_cdr" ("uuid")',
)


def _create_switch_cdrs(migrator: SchemaMigrator, database: peewee.Database) -> None:
    _create_as_shipped(database, _SWITCH_CDR_TABLE, _SWITCH_CDR_INDEXES)


# The table of migration 11 as it shipped (see _SPENT_TOKEN_TABLE for why it is spelt out).
_CONTROLLER_TABLE = {
    "sqlite": (
        'CREATE TABLE IF NOT EXISTS "controller" ("id" VARCHAR(64) NOT NULL PRIMARY KEY, '
        '"host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, "epoch" INTEGER NOT NULL, '
        '"lease_seconds" INTEGER NOT NULL, "started_at" DATETIME NOT NULL, '
        '"heartbeat_at" DATETIME NOT NULL, "lease_until" DATETIME NOT NULL, '
        '"stopped_at" DATETIME)'
    ),
    "postgresql": (
        'CREATE TABLE IF NOT EXISTS "controller" ("id" VARCHAR(64) NOT NULL PRIMARY KEY, '
        '"host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, "epoch" INTEGER NOT NULL, '
        '"lease_seconds" INTEGER NOT NULL, "started_at" TIMESTAMP NOT NULL, '
        '"heartbeat_at" TIMESTAMP NOT NULL, "lease_until" TIMESTAMP NOT NULL, '
        '"stopped_at" TIMESTAMP)'
    ),
}


def _add_controllers(migrator: SchemaMigrator, database: peewee.Database) -> None:
    _create_as_shipped(database, _CONTROLLER_TABLE)
    migrate(
        migrator.add_column(
            "callback_request", "controller", peewee.CharField(max_length=64, null=True)
        ),
        migrator.add_index("callback_request", ("controller",), False),
    )


# Later issues append here; never edit or reorder a migration that has shipped.
MIGRATIONS: list[Migration] = [
    Migration(2, "index SMS by sender and time (the per-sender rate limit)", _index_sms_by_sender),
    Migration(
        3, "index lookups that read all history (by account, node, trigger)", _index_history_lookups
    ),
    Migration(
        4, "spent tokens: ended web sessions and submitted one-use forms", _create_spent_tokens
    ),
    Migration(
        5,
        "accounts' credit limit; legs' operator cost (what no account paid)",
        _add_credit_limit_and_operator_cost,
    ),
    Migration(6, "vouchers: prepaid cards redeemed once", _create_vouchers),
    Migration(7, "web users' time zone; phone-book favourites", _add_time_zone_and_favourites),
    Migration(
        8,
        "API tokens with their last use; session keys; phone-book entries with several numbers",
        _add_api_tokens_session_keys_and_more_numbers,
    ),
    Migration(9, "accounts' low-balance alerts (e-mail or SMS)", _add_low_balance_alerts),
    Migration(
        10, "switch CDRs: what mod_json_cdr posted, one row per channel", _create_switch_cdrs
    ),
    Migration(11, "controllers and the requests each owns", _add_controllers),
]
BASELINE_VERSION = 1


def masked_url(url: str) -> str:
    """A database URL with any password masked, for logs and error messages."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@", 1)
    return url


def latest_version(migrations: list[Migration] | None = None) -> int:
    """The schema version the code expects."""
    steps = MIGRATIONS if migrations is None else migrations
    return max([BASELINE_VERSION, *(m.version for m in steps)])


def open_peewee(url: str, pool_size: int = 10) -> peewee.Database:
    """Build (not connect) the peewee database for a URL, or raise DatabaseError."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        if not path or path == ":memory:":
            raise DatabaseError(
                f"database.url {url!r}: give a file, e.g. sqlite:///esl-callback.db "
                "(an in-memory database would be private to one connection)"
            )
        # BEGIN IMMEDIATE: a transaction takes the write lock up front, so two writers never
        # both read a balance and then both spend it.
        # thread_safe=False: one connection for the process. Under gevent's monkey patching a
        # thread-local one would be a connection per greenlet.
        return peewee.SqliteDatabase(
            path,
            pragmas=SQLITE_PRAGMAS,
            check_same_thread=False,
            timeout=5,
            lock_type="IMMEDIATE",
            thread_safe=False,
        )
    if parsed.scheme in ("postgresql", "postgres"):
        if not parsed.path.strip("/"):
            raise DatabaseError(f"database.url {url!r}: name the database, e.g. .../esl_callback")
        return PostgresqlPool(
            unquote(parsed.path.strip("/")),
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or None,
            port=parsed.port or 5432,
            max_connections=pool_size,
            stale_timeout=300,
            timeout=30,
        )
    raise DatabaseError(
        f"database.url {url!r}: unsupported scheme {parsed.scheme!r}; "
        "use sqlite:///FILE or postgresql://USER@HOST/DB"
    )


class PostgresqlPool(PooledPostgresqlDatabase):
    """peewee's PostgreSQL pool, pinging only connections that were idle a while.

    peewee sends `SELECT 1` every time it hands out a pooled connection, to discard one the
    server dropped while it sat in the pool: a round trip more for every unit of work, some
    twenty per callback. A connection given back less than `ALIVE_BYPASS_SECONDS` ago is
    handed out unpinged (as HikariCP does for 500 ms): a server that went away within that
    window also breaks the queries in flight, pinged or not.
    """

    ALIVE_BYPASS_SECONDS = 0.5

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._returned: dict[int, float] = {}  # connection key -> when it came back to the pool

    def _is_closed(self, conn: Any) -> bool:
        returned = self._returned.pop(self.conn_key(conn), None)
        if returned is not None and time.monotonic() - returned < self.ALIVE_BYPASS_SECONDS:
            return bool(conn.closed)
        return super()._is_closed(conn)

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        super()._close(conn, close_conn)
        if not close_conn and not conn.closed:  # back in the pool
            self._returned[self.conn_key(conn)] = time.monotonic()


def make_psycopg2_cooperative() -> None:
    """Let psycopg2 wait on gevent instead of blocking the process (call once, under gevent)."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


class Database:
    """The application's database: connection policy, transactions and schema versions."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.peewee = open_peewee(url, pool_size)
        self.is_sqlite = isinstance(self.peewee, peewee.SqliteDatabase)
        self._sqlite_lock = RLock()
        database_proxy.initialize(self.peewee)

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for logs and error messages."""
        return masked_url(self.url)

    def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run `fn(*args, **kwargs)`, one unit of database work, as no other greenlet's runs.

        SQLite: on the process's one connection, under a lock, so that units never interleave.
        PostgreSQL: on a pooled connection of this greenlet; psycogreen lets other greenlets run
        while it waits for the server.
        """
        if self.is_sqlite:
            with self._sqlite_lock:
                self.peewee.connect(reuse_if_open=True)
                return fn(*args, **kwargs)
        with self.peewee.connection_context():
            return fn(*args, **kwargs)

    def run_until_done(self, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`run`, tried again while the database cannot be reached, for what must not be lost
        (a CDR, the end of a request): the caller waits, with backoff, saying once what it
        waits for and once when it is written. `fn` must be one transaction or idempotent.
        """
        delay, waited = RETRY_FIRST_SECONDS, 0.0
        while True:
            try:
                done = self.run(fn, *args, **kwargs)
            except UNREACHABLE as exc:
                if not waited:
                    log.error(
                        "database %s unreachable (%s): %s is kept and written when it answers",
                        self.display_url,
                        in_words(exc),
                        what,
                    )
                gevent.sleep(delay)
                waited += delay
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if waited:
                log.warning("database %s answers again: %s written", self.display_url, what)
            return done

    def check(self) -> None:
        """Connect once and run a trivial query, or raise DatabaseError saying what to check."""
        try:
            self.peewee.connect(reuse_if_open=True)
            self.peewee.execute_sql("SELECT 1")
        except peewee.OperationalError as exc:
            raise DatabaseError(
                f"cannot open database {self.display_url}: {in_words(exc)} "
                "(is the server running, the URL right, the file writable?)"
            ) from exc
        finally:
            self.close()

    def close(self) -> None:
        """Close the connections this object opened (SQLite's, this thread's, the pool's)."""
        if not self.peewee.is_closed():
            self.peewee.close()
        if isinstance(self.peewee, PooledPostgresqlDatabase):
            self.peewee.close_all()

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int | None:
        """The stored schema version, or None for a database that was never initialised."""
        with self.peewee.connection_context():
            if not self.peewee.table_exists(SchemaVersion._meta.table_name):
                return None
            row = SchemaVersion.select(peewee.fn.MAX(SchemaVersion.version)).scalar()
            return int(row) if row is not None else None

    def init(self, migrations: list[Migration] | None = None) -> list[str]:
        """Create the schema on an empty database, or upgrade an existing one. Idempotent."""
        from esl_callback.models import ALL_MODELS

        if self.schema_version() is not None:
            return self.upgrade(migrations)
        with self.peewee.connection_context(), self.peewee.atomic():
            self.peewee.create_tables([SchemaVersion, *ALL_MODELS])
            version = latest_version(migrations)
            SchemaVersion.create(version=version, description="initial schema")
        return [f"created schema version {version}"]

    def upgrade(self, migrations: list[Migration] | None = None) -> list[str]:
        """Apply the migrations newer than the stored version; return what was done."""
        steps = sorted(MIGRATIONS if migrations is None else migrations, key=lambda m: m.version)
        current = self.schema_version()
        if current is None:
            raise DatabaseError(
                f"{self.display_url} has no esl-callback schema; run `esl-callback db init` first"
            )
        done = []
        with self.peewee.connection_context():
            migrator = SchemaMigrator.from_database(self.peewee)
            for step in steps:
                if step.version <= current:
                    continue
                with self.peewee.atomic():
                    step.apply(migrator, self.peewee)
                    SchemaVersion.create(version=step.version, description=step.description)
                done.append(f"applied {step.version}: {step.description}")
                current = step.version
        return done or [f"schema is up to date (version {current})"]


def utcnow() -> datetime:
    """Timezone-naive UTC now: every timestamp in the database is UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class SchemaVersion(peewee.Model):
    """One row per applied schema version."""

    version = peewee.IntegerField(primary_key=True)
    description = peewee.TextField()
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database_proxy
        table_name = "schema_version"
