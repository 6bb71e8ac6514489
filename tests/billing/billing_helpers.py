"""Rate rows and settings shared by the billing tests (import as `billing_helpers`)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from esl_callback.callback import billing
from esl_callback.callback.rating import RateRow, RateSnapshot

SETTINGS = billing.DefaultBilling()


def rate(
    prefix: str, price: str, connect_fee: str = "0", increment: int = 60, minimum: int = 60
) -> RateRow:
    snapshot = RateSnapshot(prefix, Decimal(price), Decimal(connect_fee), increment, minimum)
    return RateRow(rate=snapshot, description=f"rate {prefix}", line=0)


def set_rates(*rows: RateRow) -> None:
    """Replace the rate table."""
    billing.import_rates(rows, replace=True)


def switch_cdr_text(uuid: str, billsec: int, cause: str = "NORMAL_CLEARING", **more: str) -> str:
    """A CDR as mod_json_cdr posts it (encode-values: every variable URL-encoded), with the
    variables billing reads; `more` adds variables."""
    variables = {
        "uuid": uuid,
        "callback_request_id": "1",
        "hangup_cause": cause,
        "answer_uepoch": "1796669313927055" if billsec else "0",
        "end_uepoch": "1796669321907024",
        "end_stamp": "2026-12-07%2018%3A48%3A41",
        "billsec": str(billsec),
        **more,
    }
    document = {"core-uuid": "dc24fd9b-33b6-4a81-ac3d-9146e92a3648", "switchname": "vm"}
    return json.dumps({**document, "variables": variables}, separators=(",", ":"))


STORM = Path(__file__).with_name("billing_storm.py")


def storm(url: str, mode: str, fixed: list[str], spread: list[str], processes: int) -> list[dict]:
    """Run billing_storm.py in `processes` processes, `spread` shared out among them; the
    processes start their calls together. One result per call."""
    children = [
        subprocess.Popen(
            [sys.executable, str(STORM), url, mode, *fixed, *spread[i::processes]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for child in children:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    return results
