#!/usr/bin/env python3
"""Billing's cost per callback as an account's history grows, on SQLite.

For each size, a fresh database gets one account with that many past callbacks (their holds
released, as after a finished call), then authorises and releases ``--calls`` new ones and prints
the CPU per authorisation. With the holds indexed by (account, released_at) the cost stays flat;
without, every authorisation read all the holds the account ever had, under the write lock.

    .venv/bin/python scripts/account_history.py [--past 0,10000,100000] [--calls 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from esl_callback.callback import billing, requests
from esl_callback.db import Database, database_proxy, utcnow
from esl_callback.models import Account, Rate, Reservation

LEG_A, DESTINATION = "15550001001", "15550002001"


def authorise_cost(directory: Path, past: int, calls: int) -> float:
    """Microseconds of CPU per authorisation of an account with `past` finished callbacks."""
    database = Database(f"sqlite:///{directory / f'history-{past}.db'}")
    database.init()
    try:
        Rate.create(prefix="1", price_per_minute="0.0100", updated_at=utcnow())
        account = Account.create(name="big", balance="1000000")
        old = requests.create(trigger="cli", method="web", account=account, source=LEG_A)
        now = utcnow()
        row = {"account": account.id, "request": old.id, "amount": 1, "released_at": now}
        with database_proxy.atomic():
            for start in range(0, past, 500):
                Reservation.insert_many([row] * min(500, past - start)).execute()
        new = [
            requests.create(trigger="cli", method="web", account=account, source=LEG_A)
            for _ in range(calls)
        ]
        settings = billing.DefaultBilling()
        began = time.process_time()
        for request in new:
            with database_proxy.atomic():
                billing.authorise(account, request, LEG_A, DESTINATION, settings)
            billing.release_reservations(request)
        return (time.process_time() - began) / calls * 1e6
    finally:
        database.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--past", default="0,10000,100000", help="past callbacks, comma-separated")
    parser.add_argument("--calls", type=int, default=300, help="authorisations timed per size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.past.split(",")]
    print("| Past callbacks of the account | CPU per authorisation (µs) |")
    print("|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        for past in sizes:
            cost = authorise_cost(Path(directory), past, args.calls)
            print(f"| {past:,} | {cost:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
