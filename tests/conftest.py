"""Shared fixtures: a real database on SQLite and on a throwaway PostgreSQL cluster."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from esl_callback.db import Database

ROOT = Path(__file__).resolve().parent.parent
THROWAWAY_POSTGRES = ROOT / "scripts" / "throwaway-postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL cluster started for this test session and removed afterwards."""
    started = subprocess.run(
        [str(THROWAWAY_POSTGRES), "start"], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        pytest.fail(f"cannot start the test PostgreSQL: {started.stderr.strip()}")
    directory, url = started.stdout.split()
    try:
        yield url
    finally:
        subprocess.run([str(THROWAWAY_POSTGRES), "stop", directory], check=False)


def reset_postgres(url: str) -> None:
    """Drop everything in the public schema so each test starts from an empty database."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, once on a SQLite file and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'esl-callback.db'}"
    url = request.getfixturevalue("postgres_server")
    reset_postgres(url)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """An initialised database (current schema) on SQLite and on PostgreSQL."""
    database = Database(database_url)
    database.init()
    database.peewee.connect(reuse_if_open=True)
    try:
        yield database
    finally:
        database.close()
