"""The agent's queue on disk (SQLite): what must reach the platform, in order, and what the
modem must still do once it has (delete the SMS from the SIM, send the reply).

- `outbox`: one row per call or SMS to report, with the id the platform's duplicate check uses
  (`key`: the call id, or the SMS's message id). `state` is `pending` until the platform accepted
  it (`delivered`) or refused it for good (`refused`, e.g. 422); an SMS from a sender outside
  `callers.allowed_prefixes` is `ignored` (kept, never posted). An SMS's reply waits in `reply`
  (`reply_state` pending, sent or failed).
- `parts`: every SMS part read from the modem (key: a hash of what the network delivered), its
  SIM index while it is on the SIM, and the message it became part of. A long message is joined
  once all its parts are here; the SIM copies are deleted only after the platform accepted it.
- `unreadable`: malformed PDUs, kept on the SIM and recorded once each.

Every change is one transaction, written with synchronous=FULL: a power cut loses nothing that
was acknowledged. The agent's threads share one connection under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esl_callback.gateway_agent import texts

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                -- call | sms
    key TEXT NOT NULL UNIQUE,          -- call_id / message_id sent to the platform
    sender TEXT NOT NULL,              -- '' for a withheld caller ID
    text TEXT,
    created REAL NOT NULL,
    state TEXT NOT NULL,               -- pending | delivered | refused | ignored
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL,
    answer TEXT,                       -- the platform's JSON answer
    reply TEXT,
    reply_state TEXT,                  -- NULL | pending | sent | failed
    reply_attempts INTEGER NOT NULL DEFAULT 0,
    reply_next REAL,
    reply_error TEXT
);
CREATE TABLE IF NOT EXISTS parts (
    key TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    reference INTEGER,                 -- NULL for a message of one part
    total INTEGER NOT NULL,
    number INTEGER NOT NULL,
    text TEXT NOT NULL,
    sim_index INTEGER,                 -- where it is on the SIM, NULL once deleted (or never)
    ignored INTEGER NOT NULL DEFAULT 0,
    received REAL NOT NULL,
    message_key TEXT                   -- the outbox row it became (part of)
);
CREATE TABLE IF NOT EXISTS unreadable (
    key TEXT PRIMARY KEY,
    raw TEXT NOT NULL,
    sim_index INTEGER,
    problem TEXT NOT NULL,
    seen REAL NOT NULL
);
"""
MISSING_PART = "[...]"
DONE_STATES = ("delivered", "refused", "ignored")


@dataclass(frozen=True)
class Item:
    """One row of the outbox."""

    id: int
    kind: str
    key: str
    sender: str
    text: str | None
    attempts: int
    reply: str | None = None
    reply_attempts: int = 0


class Outbox:
    """The queue file; every method is one transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self.connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10
        )
        self.connection.row_factory = sqlite3.Row
        with self.lock:
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    # -- what comes in ------------------------------------------------------------------------

    def add_call(self, sender: str) -> str:
        """Queue a rejected call; its call id."""
        call_id = "call-" + uuid.uuid4().hex
        with self.transaction() as db:
            db.execute(
                "INSERT INTO outbox (kind, key, sender, created, state) VALUES (?, ?, ?, ?, ?)",
                ("call", call_id, sender, time.time(), "pending"),
            )
        return call_id

    def add_part(self, part: texts.Part, *, ignored: bool = False) -> str | None:
        """Record a part read from the modem; the message key when it completed a message that
        is now queued (None: a part seen before, or a long message still incomplete)."""
        concat = part.concat
        with self.transaction() as db:
            known = db.execute("SELECT key FROM parts WHERE key = ?", (part.key,)).fetchone()
            if known is not None:
                db.execute(
                    "UPDATE parts SET sim_index = ? WHERE key = ?", (part.sim_index, part.key)
                )
                return None
            db.execute(
                "INSERT INTO parts (key, sender, reference, total, number, text, sim_index, "
                "ignored, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    part.key,
                    part.sender,
                    concat.reference if concat else None,
                    concat.total if concat else 1,
                    concat.number if concat else 1,
                    part.text,
                    part.sim_index,
                    int(ignored),
                    time.time(),
                ),
            )
            group = _group(db, part.sender, concat.reference if concat else None, part.key)
            numbers = {row["number"] for row in group}
            total = group[0]["total"]
            if len(numbers) < total:
                return None
            return _join(db, group, total)

    def join_expired(self, older_than: float) -> list[str]:
        """Queue the long messages whose parts did not all arrive in time, as far as they did
        (a missing part reads "[...]"); their message keys."""
        joined = []
        with self.transaction() as db:
            heads = db.execute(
                "SELECT DISTINCT sender, reference FROM parts WHERE message_key IS NULL "
                "AND reference IS NOT NULL AND received < ?",
                (time.time() - older_than,),
            ).fetchall()
            for head in heads:
                group = _group(db, head["sender"], head["reference"], None)
                joined.append(_join(db, group, group[0]["total"]))
        return joined

    def forget_sim_indexes(self) -> None:
        """Before the SIM is listed again: only what the listing shows is on the SIM."""
        with self.transaction() as db:
            db.execute("UPDATE parts SET sim_index = NULL WHERE sim_index IS NOT NULL")
            db.execute("UPDATE unreadable SET sim_index = NULL")

    def record_unreadable(self, raw: str, sim_index: int | None, problem: str) -> bool:
        """Record a malformed message; True the first time it is seen."""
        key = texts.message_id([raw])
        with self.transaction() as db:
            known = db.execute("SELECT 1 FROM unreadable WHERE key = ?", (key,)).fetchone()
            if known is not None:
                db.execute("UPDATE unreadable SET sim_index = ? WHERE key = ?", (sim_index, key))
                return False
            db.execute(
                "INSERT INTO unreadable (key, raw, sim_index, problem, seen) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, raw, sim_index, problem, time.time()),
            )
            return True

    # -- delivery -----------------------------------------------------------------------------

    def next_pending(self) -> Item | None:
        """The oldest item not delivered yet: the queue is delivered in order."""
        with self.lock:
            row = self.connection.execute(
                "SELECT * FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1"
            ).fetchone()
        return _item(row) if row is not None else None

    def delivered(self, item: Item, answer: dict[str, Any], reply: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = ?, answer = ?, reply = ?, "
                "reply_state = ?, reply_next = ?, attempts = attempts + 1 WHERE id = ?",
                (
                    time.time(),
                    json.dumps(answer),
                    reply,
                    "pending" if reply else None,
                    time.time() if reply else None,
                    item.id,
                ),
            )

    def attempt_failed(self, item: Item, error: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, item.id),
            )

    def refused(self, item: Item, error: str) -> None:
        """The platform refused the item for good: kept, never sent again."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'refused', attempts = attempts + 1, last_error = ? "
                "WHERE id = ?",
                (error, item.id),
            )

    # -- the modem's work after delivery ------------------------------------------------------

    def sim_deletions(self) -> list[tuple[str, int]]:
        """(part key, SIM index) of parts whose message is done with: to delete from the SIM."""
        with self.lock:
            rows = self.connection.execute(
                "SELECT p.key, p.sim_index FROM parts p JOIN outbox o ON o.key = p.message_key "
                f"WHERE p.sim_index IS NOT NULL AND o.state IN {DONE_STATES} ORDER BY p.sim_index"
            ).fetchall()
        return [(row["key"], row["sim_index"]) for row in rows]

    def off_sim(self, part_key: str) -> None:
        """The part is no longer on the SIM (deleted, or its index holds something else)."""
        with self.transaction() as db:
            db.execute("UPDATE parts SET sim_index = NULL WHERE key = ?", (part_key,))

    def replies_due(self) -> list[Item]:
        with self.lock:
            rows = self.connection.execute(
                "SELECT * FROM outbox WHERE reply_state = 'pending' AND reply_next <= ? "
                "ORDER BY id",
                (time.time(),),
            ).fetchall()
        return [_item(row) for row in rows]

    def reply_sent(self, item: Item) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET reply_state = 'sent', reply_attempts = reply_attempts + 1, "
                "reply_error = NULL WHERE id = ?",
                (item.id,),
            )

    def reply_failed(self, item: Item, error: str, retry_in: float | None) -> None:
        """A reply not sent: tried again in `retry_in` seconds, or given up (None)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET reply_state = ?, reply_attempts = reply_attempts + 1, "
                "reply_error = ?, reply_next = ? WHERE id = ?",
                (
                    "pending" if retry_in is not None else "failed",
                    error,
                    time.time() + retry_in if retry_in is not None else None,
                    item.id,
                ),
            )

    # -- figures ------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """Queue length and the rest, for /status and /metrics."""
        with self.lock:
            db = self.connection
            states = dict(
                db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
            )
            oldest = db.execute(
                "SELECT min(created) FROM outbox WHERE state = 'pending'"
            ).fetchone()[0]
            replies = dict(
                db.execute(
                    "SELECT reply_state, count(*) FROM outbox WHERE reply_state IS NOT NULL "
                    "GROUP BY reply_state"
                ).fetchall()
            )
            waiting_parts = db.execute(
                "SELECT count(*) FROM parts WHERE message_key IS NULL"
            ).fetchone()[0]
            on_sim = db.execute(
                "SELECT count(*) FROM parts WHERE sim_index IS NOT NULL"
            ).fetchone()[0]
            unreadable = db.execute("SELECT count(*) FROM unreadable").fetchone()[0]
        return {
            "queue_length": states.get("pending", 0),
            "oldest_waiting_seconds": round(time.time() - oldest, 1) if oldest else None,
            "delivered": states.get("delivered", 0),
            "refused": states.get("refused", 0),
            "ignored": states.get("ignored", 0),
            "replies_to_send": replies.get("pending", 0),
            "replies_sent": replies.get("sent", 0),
            "replies_failed": replies.get("failed", 0),
            "parts_waiting": waiting_parts,
            "parts_on_sim": on_sim,
            "unreadable": unreadable,
        }

    def items(self) -> list[dict[str, Any]]:
        """Every outbox row, oldest first (for tests and inspection)."""
        with self.lock:
            rows = self.connection.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [dict(row) for row in rows]


def _item(row: sqlite3.Row) -> Item:
    return Item(
        row["id"],
        row["kind"],
        row["key"],
        row["sender"],
        row["text"],
        row["attempts"],
        row["reply"],
        row["reply_attempts"],
    )


def _group(
    db: sqlite3.Connection, sender: str, reference: int | None, key: str | None
) -> list[sqlite3.Row]:
    """The parts not joined yet of the message the part `key` belongs to."""
    if reference is None:
        return db.execute("SELECT * FROM parts WHERE key = ?", (key,)).fetchall()
    return db.execute(
        "SELECT * FROM parts WHERE sender = ? AND reference = ? AND message_key IS NULL "
        "ORDER BY number, received",
        (sender, reference),
    ).fetchall()


def _join(db: sqlite3.Connection, group: list[sqlite3.Row], total: int) -> str:
    """Queue the message the parts make (in the same transaction); its key."""
    by_number: dict[int, sqlite3.Row] = {}
    for row in group:
        by_number.setdefault(row["number"], row)
    text = "".join(
        by_number[n]["text"] if n in by_number else MISSING_PART for n in range(1, total + 1)
    )
    key = texts.message_id([row["key"] for row in by_number.values()])
    first = group[0]
    state = "ignored" if first["ignored"] else "pending"
    db.execute(
        "INSERT OR IGNORE INTO outbox (kind, key, sender, text, created, state) "
        "VALUES ('sms', ?, ?, ?, ?, ?)",
        (key, first["sender"], text, time.time(), state),
    )
    db.execute(  # a part delivered twice by the network goes with it
        f"UPDATE parts SET message_key = ? WHERE key IN ({','.join('?' * len(group))})",
        (key, *[row["key"] for row in group]),
    )
    return key
