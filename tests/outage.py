"""The database out of reach, for real: another connection's write lock on the SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import pytest

from esl_callback.db import Database


def sqlite_only(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("the outage is another process's lock on the SQLite file")


@contextlib.contextmanager
def write_locked(db: Database) -> Iterator[None]:
    """The SQLite file write-locked by someone else (a backup tool, a second serve): the
    controller's writes wait out its busy timeout, then fail "database is locked"."""
    holder = sqlite3.connect(db.peewee.database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()
