"""The fraud corpus: every way a callback can be triggered, against every known way to abuse it.

Paths: a call to the PIN access number, to the caller-ID access number, to a personal DID, a
gateway phone's call report, an SMS, a web callback, an operator's CLI callback, a number check.
Abuses: a premium-rate number (billing.deny_prefixes), a number abroad outside
billing.allow_prefixes, a caller ID locked out for wrong PINs, another account's caller ID
spoofed, an account with no money. For each pair the platform either dials nothing, refusing
with the cause named below, or dials only numbers nobody can profit from (the spoofed
customer's own phone). Each scenario runs on SQLite and PostgreSQL, all paths on one platform.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import gevent
import pytest
from platform_helpers import ANI_ACCESS, PIN_ACCESS
from sms_helpers import CALLER, SmsPlatform, post

from esl_callback import accounts, lockout
from esl_callback.callback import billing, requests
from esl_callback.models import Account, CallbackRequest, Leg, NumberVerification
from esl_callback.operator_client import OperatorClient, Refused
from esl_callback.web import auth

FRIEND = "15550002001"
MALLORY_PIN = "7000"
MALLORY_DID = "18885550009"
SECRET = "s" * 40
PATHS = ("pin", "ani", "did", "gateway", "sms", "web", "cli", "verification")


@dataclass(frozen=True)
class Outcome:
    """What one path did: the request it stored (if any), an HTTP answer (if any)."""

    request: CallbackRequest | None = None
    status: int | None = None
    body: Any = None


@dataclass(frozen=True)
class Scenario:
    """An abuse: the number the fraudster wants rung, how the platform is set up for it, and
    what each path must do (`refused` cause, or `only` numbers it may dial)."""

    name: str
    number: str  # the number each path asks to be called back on (or checked)
    fresh: str  # a number no account has yet, for the number check
    refused: dict[str, str] = field(default_factory=dict)  # path -> the request's cause
    only: dict[str, set[str]] = field(default_factory=dict)  # path -> numbers it may dial
    billing: dict[str, Any] = field(default_factory=dict)
    balance: str = "10"
    setup: Callable[[Account], None] = lambda mallory: None


def lock_out(number: str) -> Callable[[Account], None]:
    def setup(mallory: Account) -> None:
        for _ in range(5):
            lockout.record_failure("pin", f"cid:{number}")

    return setup


EVERY_PATH_REFUSES = dict.fromkeys(PATHS, "callback_number_denied")
SCENARIOS = [
    Scenario(
        "premium-rate number",
        number="19005550001",
        fresh="19005550002",
        billing={"deny_prefixes": ["1900"]},
        refused=EVERY_PATH_REFUSES,
    ),
    Scenario(
        "number abroad outside allow_prefixes",
        number="447700900123",
        fresh="447700900124",
        billing={"allow_prefixes": ["1"]},
        refused=EVERY_PATH_REFUSES,
    ),
    Scenario(
        "caller ID locked out for wrong PINs",
        number="15550001005",
        fresh="15550001006",
        setup=lock_out("15550001005"),
        # Logged-in customers (web, CLI, number check) do not key PINs: not theirs to guard.
        refused=dict.fromkeys(("pin", "ani", "did", "gateway", "sms"), "caller_locked_out"),
    ),
    Scenario(
        "another account's caller ID spoofed",
        number=CALLER,  # alice's phone, as the fraudster presents it
        fresh=CALLER,
        # Only alice's own phone rings, where the fraudster is not; web and CLI refuse it.
        only={key: {CALLER} for key in ("pin", "ani", "did", "gateway", "sms", "verification")},
        refused={"web": "forbidden", "cli": "forbidden"},
    ),
    Scenario(
        "no money",
        number="15550001007",
        fresh="15550001008",
        balance="0",
        # The PIN callback rings the caller before it knows who pays: that leg, nothing more.
        refused={
            **dict.fromkeys(PATHS, "balance_too_low"),
            "sms": "balance_too_low",
        },
        only={"pin": {"15550001007"}},
    ),
]


def phones(scenario: Scenario) -> dict[str, Any]:
    """The fraudster's number keys mallory's PIN and the destination; alice's phone (when
    spoofed) answers, knows no PIN, hangs up; the destination talks a moment."""
    return {
        scenario.number: {
            "answer_after": 1,
            "keys": [{"after": 1, "digits": f"{MALLORY_PIN}#"}, {"after": 2.5, "digits": FRIEND}],
            "hangup_after": 8,
        },
        CALLER: {"answer_after": 1, "hangup_after": 2},
        scenario.fresh: {"answer_after": 1, "hangup_after": 2},
        FRIEND: {"answer_after": 1, "hangup_after": 2},
    }


@pytest.fixture
def alice() -> Account:
    account = accounts.create_account("alice", pin="4711", default_callback_number=CALLER)
    billing.add_payment(account, "10", "voucher 1")
    accounts.add_did("18885550001", account)
    return account


def mallory_for(scenario: Scenario) -> tuple[Account, str]:
    """The fraudster's account (PIN, number, DID, web login) and its API token."""
    # Mallory's DID rings her own number; spoofing alice, she calls alice's DID instead.
    own = scenario.number if scenario.number != CALLER else "15550001099"
    mallory = accounts.create_account("mallory", pin=MALLORY_PIN, default_callback_number=own)
    if scenario.balance != "0":
        billing.add_payment(mallory, scenario.balance, "voucher m")
    accounts.add_did(MALLORY_DID, mallory)
    user = accounts.add_web_user(mallory, "mallory", "correct horse battery")
    scenario.setup(mallory)
    return Account.get_by_id(mallory.id), auth.issue_token(user.id)


class Paths:
    """Each trigger path asked to call `number` back, as the fraudster would ask."""

    def __init__(self, p: SmsPlatform, token: str) -> None:
        self.p = p
        self.token = token

    def newest(self, before: int, timeout: float = 40) -> CallbackRequest | None:
        """The request stored after id `before`, once it has ended (None: none was stored)."""
        with gevent.Timeout(timeout, AssertionError("the request did not end")):
            while True:
                found = self.p.db.run(
                    lambda: (
                        CallbackRequest.select()
                        .where(CallbackRequest.id > before)
                        .order_by(CallbackRequest.id)
                        .first()
                    )
                )
                if found is not None and found.state not in requests.LIVE:
                    return found
                gevent.sleep(0.05)

    def run(self, path: str, number: str, fresh: str) -> Outcome:
        before = self.p.db.run(max_id)
        if path in ("pin", "ani"):
            self.p.trigger(number, PIN_ACCESS if path == "pin" else ANI_ACCESS)
            return Outcome(self.newest(before))
        if path == "did":
            did = "18885550001" if number == CALLER else MALLORY_DID
            self.p.trigger("15550009999", did)
            return Outcome(self.newest(before))
        if path == "gateway":
            status, body = self.p.report_call(number, ANI_ACCESS, uuid.uuid4().hex)
            return Outcome(self.newest(before), status, body)
        if path == "sms":
            status, body = self.p.post_sms(number, "CB", uuid.uuid4().hex)
            stored = self.newest(before, timeout=40) if body.get("request_id") else None
            return Outcome(stored, status, body)
        if path == "web":
            status, body = post(
                f"{self.p.base_url}/requests",
                json_body={"source": number, "destination": FRIEND},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            return Outcome(self.stored(before, body), status, body)
        if path == "cli":
            client = OperatorClient(f"http://127.0.0.1:{self.p.web_port}", SECRET)
            try:
                body = gevent.get_hub().threadpool.apply(
                    client.start, ("mallory", number, FRIEND, "source_first", "cli")
                )
                status = 201
            except Refused as exc:  # the CLI's view of serve's error answer
                code = "forbidden" if exc.status == 403 else str(exc.status)
                status, body = exc.status, {"error": {"code": code, "field": exc.field}}
            return Outcome(self.stored(before, body), status, body)
        status, body = post(
            f"{self.p.base_url}/numbers/verifications",
            json_body={"number": fresh},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        if status == 201:
            self.await_verification(body["id"])
        return Outcome(self.stored(before, body), status, body)

    def stored(self, before: int, body: Any) -> CallbackRequest | None:
        """The request an API call stored, once ended (rejected ones are stored too)."""
        made = self.p.db.run(lambda: CallbackRequest.select().where(CallbackRequest.id > before))
        return self.newest(before) if made.exists() else None

    def await_verification(self, verification_id: int) -> None:
        with gevent.Timeout(40, AssertionError("the number check did not end")):
            while self.p.db.run(
                lambda: (
                    NumberVerification.get_by_id(verification_id).status
                    in (NumberVerification.PENDING, NumberVerification.CALLING)
                    and (
                        CallbackRequest.select()
                        .where(
                            CallbackRequest.id
                            == NumberVerification.get_by_id(verification_id).request_id,
                            CallbackRequest.state.in_(requests.LIVE),
                        )
                        .exists()
                    )
                )
            ):
                gevent.sleep(0.05)


def max_id() -> int:
    found = CallbackRequest.select(CallbackRequest.id).order_by(CallbackRequest.id.desc()).first()
    return found.id if found is not None else 0


def dialled_by(request: CallbackRequest | None) -> set[str]:
    if request is None:
        return set()
    return {leg.number for leg in Leg.select().where(Leg.request == request.id)}


def cause_of(outcome: Outcome) -> str | None:
    """The refusal a path answered: the stored request's cause, else the HTTP error's code."""
    if outcome.request is not None and outcome.request.failure_cause:
        return outcome.request.failure_cause
    if outcome.body and isinstance(outcome.body, dict):
        error = outcome.body.get("error") or {}
        return error.get("code") or outcome.body.get("action")
    return None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_no_path_dials_a_number_the_fraudster_profits_from(
    sms_platform: Callable[..., SmsPlatform], alice: Account, scenario: Scenario
) -> None:
    accounts.add_access_number(PIN_ACCESS, "pin")
    accounts.add_access_number(ANI_ACCESS, "ani")
    mallory, token = mallory_for(scenario)
    p = sms_platform(
        phones(scenario),
        billing=scenario.billing,
        speed=4,
        leg_a_retries=0,
        requests_per_minute=100,  # eight paths in a minute: the per-minute limit is not tested here
    )
    paths = Paths(p, token)
    problems: list[str] = []
    for path in PATHS:
        outcome = paths.run(path, scenario.number, scenario.fresh)
        dialled = dialled_by(outcome.request)
        if path in scenario.refused:
            expected = scenario.refused[path]
            allowed = scenario.only.get(path, set())
            if cause_of(outcome) != expected:
                problems.append(f"{path}: expected {expected}, got {cause_of(outcome)} {outcome}")
            if not dialled <= allowed:
                problems.append(f"{path}: dialled {sorted(dialled)}, allowed {sorted(allowed)}")
        elif path in scenario.only and not dialled <= scenario.only[path]:
            problems.append(f"{path}: dialled {sorted(dialled)} beyond {scenario.only[path]}")
        p.wait_idle(timeout=30)
    assert not problems, "\n".join(problems)
    # Whatever was dialled, no account paid for what it did not ask, or went below zero.
    for account in (mallory, alice):
        assert Account.get_by_id(account.id).balance >= 0
        assert billing.audit(account).balanced
    assert Account.get_by_id(mallory.id).balance <= Decimal(scenario.balance)
    assert not (
        NumberVerification.select()
        .where(NumberVerification.status == NumberVerification.VERIFIED)
        .exists()
    )
