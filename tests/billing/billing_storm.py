"""Many greenlets hitting billing at once in one process, set up the way the controller runs.

    python billing_storm.py URL authorise ACCOUNT_ID LEG_A DEST MAX_SECONDS REQUEST_ID...
    python billing_storm.py URL close UUID COUNT
    python billing_storm.py URL redeem CODE ACCOUNT_ID...
    python billing_storm.py URL race UUID COUNT

gevent is monkey-patched before anything imports peewee (so each greenlet has its own
connection) and psycopg2 is made cooperative; every call goes through `Database.run`. The
process prints `ready`, waits for a line on stdin, then starts all its greenlets at once (so
several processes hit the database together) and prints one JSON line per call.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from billing_helpers import switch_cdr_text  # noqa: E402

from esl_callback import vouchers  # noqa: E402
from esl_callback.callback import billing, switch_cdr  # noqa: E402
from esl_callback.config import Settings  # noqa: E402
from esl_callback.db import Database, make_psycopg2_cooperative  # noqa: E402

SETTINGS = Settings.default()


def authorise_all(database: Database, args: list[str]) -> list[dict]:
    account_id, leg_a, destination, max_seconds, *request_ids = args

    def one(request_id: str) -> dict:
        auth = database.run(
            billing.authorise,
            int(account_id),
            int(request_id),
            leg_a,
            destination,
            billing.DefaultBilling(),
            max_seconds=int(max_seconds),
        )
        return {"request": auth.request_id, "refusal": auth.refusal, "reserved": str(auth.reserved)}

    return run_together([lambda r=r: one(r) for r in request_ids])


def close_all(database: Database, args: list[str]) -> list[dict]:
    uuid, count = args
    hangup = billing.Hangup(uuid=uuid, cause="NORMAL_CLEARING", billsec=90)

    def one() -> dict:
        bill = database.run(billing.close_leg, hangup, billing.DefaultBilling())
        return {"cost": str(bill.cost), "duplicate": bill.duplicate}

    return run_together([one] * int(count))


def race_all(database: Database, args: list[str]) -> list[dict]:
    """The three ways a leg gets closed, at once: its hangup event (billsec 90), the
    reconciler finding it gone (LOST_WHILE_DISCONNECTED, billsec 0) and the switch's CDR
    (billsec 90), in turn."""
    uuid, count = args
    event = billing.Hangup(uuid=uuid, cause="NORMAL_CLEARING", billsec=90)
    lost = billing.Hangup(uuid=uuid, cause=billing.LOST_CAUSE, billsec=0)
    cdr = switch_cdr.parse(switch_cdr_text(uuid, 90), uuid)

    def close(hangup: billing.Hangup) -> dict:
        bill = database.run(billing.close_leg, hangup, billing.DefaultBilling())
        return {"by": hangup.cause, "cost": str(bill.cost), "duplicate": bill.duplicate}

    def post() -> dict:
        done = database.run(switch_cdr.apply, cdr, billing.DefaultBilling())
        return {"by": "cdr", "outcome": done.outcome}

    ways = [lambda: close(event), lambda: close(lost), post]
    return run_together([ways[i % 3] for i in range(int(count))])


def redeem_all(database: Database, args: list[str]) -> list[dict]:
    code, *account_ids = args

    def one(account_id: str) -> dict:
        try:
            done = database.run(vouchers.redeem, int(account_id), code, (), SETTINGS.billing)
        except vouchers.Refused as refused:
            return {"account": int(account_id), "refused": refused.reason}
        return {"account": int(account_id), "payment": done.payment_id}

    return run_together([lambda a=a: one(a) for a in account_ids])


def run_together(calls: list) -> list[dict]:
    jobs = [gevent.spawn(call) for call in calls]
    gevent.joinall(jobs, raise_error=True)
    return [job.value for job in jobs]


def main() -> None:
    url, mode, *args = sys.argv[1:]
    database = Database(url, pool_size=len(args) + 2)
    if not database.is_sqlite:
        make_psycopg2_cooperative()
    print("ready", flush=True)
    sys.stdin.readline()
    modes = {
        "authorise": authorise_all,
        "close": close_all,
        "redeem": redeem_all,
        "race": race_all,
    }
    results = modes[mode](database, args)
    database.close()
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
