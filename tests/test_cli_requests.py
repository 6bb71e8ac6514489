"""`esl-callback requests`: what the operator reads matches what the portal shows."""

import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from esl_callback import accounts
from esl_callback.callback import requests
from esl_callback.callback.requests import State
from esl_callback.cli import main
from esl_callback.db import Database, utcnow
from esl_callback.models import Leg


def test_requests_lists_legs_in_the_portals_words_and_says_how_each_was_asked_for(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    database = Database(url)
    database.init()
    alice = accounts.create_account("alice")
    by_operator = requests.create(
        trigger="cli", method="web", account=alice, source="4930111", destination="4940222"
    )
    requests.advance(by_operator.id, State.CALLING_SOURCE)
    requests.advance(by_operator.id, State.BRIDGED)
    requests.advance(by_operator.id, State.COMPLETED)
    now = utcnow()
    for leg, number in (("a", "4930111"), ("b", "4940222")):
        Leg.create(
            request=by_operator.id,
            leg=leg,
            uuid=f"uuid-{leg}",
            number=number,
            state="answered",  # the last mark before the CDR closed the leg
            answered_at=now,
            ended_at=now,
            billsec=30,
            hangup_cause="NORMAL_CLEARING",
            cost=Decimal("0.035"),
            billed=True,
        )
    requests.create(trigger="phone", method="pin", account=alice, source="4930111")
    requests.create(
        trigger="phone",
        method="ani",
        account=None,
        state=State.REJECTED,
        caller_id="4930999",
        called_number="18005550200",
        failure_cause="unknown_caller_id",
    )
    database.close()

    listed = CliRunner().invoke(main, ["requests", "--database", url], catch_exceptions=False)
    rejected, by_phone, completed = listed.output.splitlines()
    assert " ani " in rejected and "4930999 -> 18005550200" in rejected
    assert " cli " in completed and " web " not in completed
    assert "a:4930111:hung_up(NORMAL_CLEARING) b:4940222:hung_up(NORMAL_CLEARING)" in completed
    assert " pin " in by_phone
    data = json.loads(CliRunner().invoke(main, ["requests", "--json", "--database", url]).output)
    legs = data[2]["legs"]
    assert [(leg["state"], leg["cost"]) for leg in legs] == [("hung_up", "0.0350")] * 2
