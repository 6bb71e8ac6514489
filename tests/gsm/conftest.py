"""Fixtures for the GSM gateway agent: a fake modem on a pty, the agent, the real platform.

The agent never touches the platform's database, and the gateway API is tested on both
databases in tests/sms: here the platform runs on SQLite only, which keeps these tests quick.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sms"))

from gsm_helpers import CALLER, MODEM_NUMBER, Rig, settings_for
from platform_helpers import ANI_ACCESS, standard_rates
from sms_helpers import start_sms_platform

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.db import Database
from esl_callback.gateway_agent.fake_modem import FakeModem
from esl_callback.models import Account

assert MODEM_NUMBER == ANI_ACCESS


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only (see the module docstring)."""
    return f"sqlite:///{tmp_path / 'esl-callback.db'}"


@pytest.fixture
def alice(db: Database) -> Account:
    """Alice: 10.00 EUR, her mobile registered; the modem's number is caller-ID access."""
    standard_rates()
    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_access_number(ANI_ACCESS, "ani")
    return Account.get_by_id(account.id)


@pytest.fixture
def rig(
    db: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Rig]]:
    """Start platform (with `phones`), fake modem (options `fake`) and agent (its settings'
    sections as keywords, e.g. modem={...}); all stopped afterwards."""
    started: list[Rig] = []

    def start(
        phones: dict[str, Any] | None = None,
        *,
        fake: dict[str, Any] | None = None,
        agent: bool = True,
        **sections: Any,
    ) -> Rig:
        platform = start_sms_platform(db.url, phones or {}, sms={"numbers": [MODEM_NUMBER]})
        fake = FakeModem(tmp_path / "ttyGSM0", **(fake or {})).start()
        settings = settings_for(
            tmp_path / "ttyGSM0",
            platform.base_url.removesuffix("/api/v1"),
            tmp_path / "agent-queue.db",
            **sections,
        )
        running = Rig(platform, fake, settings)
        started.append(running)
        if agent:
            running.start_agent()
            running.wait_ready()
        return running

    yield start
    for running in started:
        running.save_transcript(request.node.name)
        running.stop_agent()
        running.modem.stop()
        running.platform.observer.connection.stop()
        running.platform.service.stop(timeout=2)
        running.platform.sim.stop()
