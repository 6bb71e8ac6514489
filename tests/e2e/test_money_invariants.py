"""The money invariants as a property: a seeded storm of callbacks of every kind, with random
cancels, hang-ups, failures and a controller restart (tests/e2e/callback_storm.py), then every
leg checked against the switch's own records. A bounded storm per database here; a bigger one
with scripts/callback-storm."""

from __future__ import annotations

import pytest
from callback_storm import run_storm

from esl_callback.db import Database

# One seed per database: the seeds differ, so the two runs cover different storms.
SEEDS = {"sqlite": 20261207, "postgresql": 7}


@pytest.mark.timeout(300)
def test_every_leg_is_billed_once_and_no_account_goes_below_its_floor(db: Database) -> None:
    seed = SEEDS["sqlite" if db.is_sqlite else "postgresql"]
    report = run_storm(db.url, seed, calls=30)

    assert report.legs >= 10, report.summary()  # the storm did dial
    assert report.restarted
    assert not report.violations, report.summary() + "\n" + "\n".join(report.violations)
