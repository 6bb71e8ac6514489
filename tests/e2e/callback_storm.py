"""A storm of callbacks of every kind, with cancels, hang-ups, failures and a restart, and the
money invariants checked afterwards against what the switch itself reported.

`run_storm(database_url, seed, calls)` seeds accounts (balances near zero among them), rates
and virtual phones from `seed`, starts the simulator and the controller, and fires `calls`
callbacks at random moments: phone triggers (PIN, caller ID, DID), web callbacks (source first
and simultaneous), SMS; random cancels (some repeated at once), callers who hang up, key
nothing or a wrong PIN, destinations busy, unanswered, failing at once or premium-rate, top-ups
while calls run; the controller is killed and restarted once in the middle. Once everything
has settled, `violations` lists every breach of:

* each leg the switch created and ended has exactly one CDR, billed, with the switch's billsec
  (a leg that ended while no controller listened is closed without its duration, as
  LOST_WHILE_DISCONNECTED);
* no request stays live, no hold stays open, no flow is left;
* no account is below its floor and `account audit` balances for every account;
* no number the dial policy refuses (deny_prefixes 1900) was ever dialled.

Used by tests/e2e/test_money_invariants.py (a bounded run) and scripts/callback-storm (as big
as asked; prints how many calls it covered).
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import gevent
from platform_helpers import ANI_ACCESS, PIN_ACCESS, Platform, standard_rates, start_platform

from esl_callback import accounts
from esl_callback.callback import billing, policy, requests
from esl_callback.callback.flow import LOST_CAUSE, FlowEnded
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.models import Account, CallbackRequest, Leg, Reservation
from esl_callback.sms import Inbound, SmsService
from esl_callback.switch.connection import InboundConnection

PREMIUM_PREFIX = "1900"
SMS_NUMBER = "18005550300"
KINDS = ("pin", "ani", "did", "web_source_first", "web_simultaneous", "sms")


@dataclass
class Cast:
    """Who takes part: accounts with their PINs and phones, destination phones."""

    accounts: list[Account] = field(default_factory=list)
    pins: dict[int, str] = field(default_factory=dict)  # account id -> PIN
    phones_of: dict[int, list[str]] = field(default_factory=dict)  # account id -> its numbers
    dids: dict[int, str] = field(default_factory=dict)  # account id -> its DID
    callers: list[str] = field(default_factory=list)  # every phone that may trigger
    destinations: list[str] = field(default_factory=list)  # numbers keyed or ordered
    phones: dict[str, dict[str, Any]] = field(default_factory=dict)  # the simulator's phones


@dataclass
class StormReport:
    """What a storm did and what it broke."""

    seed: int
    calls: int
    kinds: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    legs: int = 0
    cancels: int = 0
    restarted: bool = False
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items()))
        outcomes = ", ".join(f"{k} {n}" for k, n in self.outcomes.most_common())
        return (
            f"seed {self.seed}: {self.calls} callbacks ({kinds}); {self.legs} legs; "
            f"{self.cancels} cancels; restart {'yes' if self.restarted else 'no'}; "
            f"outcomes: {outcomes}; {len(self.violations)} violations"
        )


class SwitchRecord:
    """An independent ESL client: every callback leg the switch created and how it ended."""

    def __init__(self, platform: Platform) -> None:
        self.created: dict[str, str] = {}  # leg uuid -> number dialled
        self.completed: dict[str, list[int]] = {}  # leg uuid -> billsec of each HANGUP_COMPLETE
        self.connection = InboundConnection(
            name="storm-witness",
            host="127.0.0.1",
            port=platform.sim.port,
            password="test-secret",
            events=["CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"],
            on_event=self.record,
        ).start()
        assert self.connection.wait_connected(5)

    def record(self, event: Any, node: str) -> None:
        if not event.get("variable_callback_leg") or event.get("variable_loopback_leg") == "B":
            return  # not one of the controller's legs (a trigger, or a loopback's far end)
        uuid_ = event.get("Unique-ID") or ""
        if event.get("Event-Name") == "CHANNEL_CREATE":
            self.created[uuid_] = (event.get("Caller-Destination-Number") or "").split("/")[0]
        else:
            billsec = event.get("variable_billsec") or "0"
            self.completed.setdefault(uuid_, []).append(int(billsec) if billsec.isdigit() else 0)


def cast_for(rng: random.Random) -> Cast:
    """Accounts, phones and destinations drawn from `rng` (stored in the database)."""
    cast = Cast()
    destinations = {
        "15550020001": {"answer_after": 0.5, "hangup_after": 2},
        "15550020002": {"answer_after": 1, "hangup_after": 4},
        "15550020003": {"answer_after": 0.5, "hangup_after": 8},  # longer than small balances
        "15550020004": {"busy": True},  # fails at once
        "15550020005": {"no_answer": True},
        "15550020006": {"actions": ["hangup UNALLOCATED_NUMBER"]},
        "19005550001": {"answer_after": 0.5, "hangup_after": 30},  # premium: never to be rung
    }
    cast.phones.update(destinations)
    cast.destinations = list(destinations)
    balances = ["0", "0.02", "0.05", "0.20", "5", "100"]
    for index in range(6):
        pin = f"{4100 + index}"
        numbers = [f"155500100{index}{k}" for k in range(2)]
        account = accounts.create_account(
            f"storm{index}", pin=pin, default_callback_number=numbers[0]
        )
        accounts.add_caller_id(account, numbers[1])
        if balances[index] != "0":
            billing.add_payment(account, balances[index], "storm")
        if index == 5:
            accounts.update_account(account, credit_limit="0.50")
        did = f"188855500{index:02d}"
        accounts.add_did(did, account)
        cast.accounts.append(Account.get_by_id(account.id))
        cast.pins[account.id] = pin
        cast.phones_of[account.id] = numbers
        cast.dids[account.id] = did
        for number in numbers:
            cast.phones[number] = caller_phone(rng, pin, cast.destinations)
            cast.callers.append(number)
    for index in range(4):  # strangers: wrong PINs, silence, a premium-rate caller ID
        number = f"155500190{index:02d}"
        cast.phones[number] = caller_phone(rng, "9999", cast.destinations)
        cast.callers.append(number)
    cast.phones["19005550009"] = {"answer_after": 0.5, "hangup_after": 30}
    cast.callers.append("19005550009")
    accounts.add_access_number(PIN_ACCESS, "pin")
    accounts.add_access_number(ANI_ACCESS, "ani")
    return cast


def caller_phone(rng: random.Random, pin: str, destinations: list[str]) -> dict[str, Any]:
    """A phone that answers its callback and does one of the things callers do."""
    destination = rng.choice(destinations)
    behaviour = rng.choice(["pin_then_destination", "destination", "silent", "hangs_up", "busy"])
    if behaviour == "busy":
        return {"busy": True}
    spec: dict[str, Any] = {"answer_after": round(rng.uniform(0.3, 1.5), 1)}
    if behaviour == "pin_then_destination":
        spec["keys"] = [
            {"after": 0.8, "digits": f"{pin}#"},
            {"after": 2.5, "digits": f"{destination}#"},
        ]
    elif behaviour == "destination":
        spec["keys"] = [{"after": 0.8, "digits": f"{destination}#"}]
    if behaviour == "hangs_up" or rng.random() < 0.3:
        spec["hangup_after"] = round(rng.uniform(1, 8), 1)
    else:
        spec["hangup_after"] = 12  # bounds the storm: nobody stays on forever
    return spec


def start_storm_platform(database_url: str, cast: Cast) -> Platform:
    return start_platform(
        database_url,
        cast.phones,
        billing={"deny_prefixes": [PREMIUM_PREFIX], "max_call_seconds": 60},
        originate_timeout_seconds=4,
        max_concurrent_calls=3,
        max_unauthenticated_calls=6,
        unauthenticated_calls_per_caller_per_hour=50,
        pin_lockout_failures=50,
        requests_per_minute=1000,
        destination_attempts=2,
        pin_deadline_seconds=20,
    )


def fire(p: Platform, cast: Cast, rng: random.Random, kind: str) -> int | None:
    """Trigger one callback of `kind`; the request id when the trigger stored one."""
    account = rng.choice(cast.accounts)
    own = cast.phones_of[account.id]
    destination = rng.choice(cast.destinations)
    dialer = p.service.dialer
    try:
        if kind == "pin":
            p.trigger(rng.choice(cast.callers), PIN_ACCESS)
        elif kind == "ani":
            p.trigger(rng.choice(cast.callers), ANI_ACCESS)
        elif kind == "did":
            p.trigger("15559990000", cast.dids[account.id])
        elif kind == "sms":
            settings = p.service.settings
            sms_settings = dataclasses.replace(
                settings, sms=dataclasses.replace(settings.sms, enabled=True, numbers=(SMS_NUMBER,))
            )
            text = "CB" if rng.random() < 0.5 else f"CB {destination}"
            outcome = SmsService(p.db, sms_settings, dialer).receive(
                Inbound("gateway", rng.choice(own), SMS_NUMBER, text, uuid.uuid4().hex)
            )
            return outcome.request_id
        else:
            mode = "source_first" if kind == "web_source_first" else "simultaneous"
            return dialer.start_callback(account, rng.choice(own), destination, mode).id
    except (policy.Refused, FlowEnded):
        return None
    return None


def run_storm(database_url: str, seed: int, calls: int) -> StormReport:
    """Seed, start, storm, settle, check; the platform is stopped afterwards."""
    rng = random.Random(seed)
    report = StormReport(seed, calls)
    standard_rates()
    billing.import_rates(  # the premium line has a rate: only the policy keeps it from being rung
        [RateRow(RateSnapshot("1900", Decimal("3.00"), Decimal(0), 1, 1), "", 1)]
    )
    cast = cast_for(rng)
    p = start_storm_platform(database_url, cast)
    witness = SwitchRecord(p)
    try:
        restart_at = rng.randrange(calls // 3, 2 * calls // 3) if calls >= 6 else None
        cancellers: list[gevent.Greenlet] = []
        for index in range(calls):
            if index == restart_at:
                p.restart_controller()
                report.restarted = True
            if rng.random() < 0.08:  # a customer tops up while calls run
                topped = rng.choice(cast.accounts)
                amount = f"{rng.uniform(0.1, 2):.2f}"
                p.db.run(billing.add_payment, topped.id, amount, f"storm top-up {index}")
            kind = rng.choice(KINDS)
            report.kinds[kind] += 1
            before = newest_request_id(p)
            started = fire(p, cast, rng, kind)
            if rng.random() < 0.35:
                target = started or newest_request_id(p)
                if target and target > before:
                    repeats = rng.choice([1, 1, 2, 3])
                    report.cancels += repeats
                    delay = rng.uniform(0, 6)
                    for _ in range(repeats):
                        cancellers.append(gevent.spawn_later(delay, cancel, p, target))
            gevent.sleep(rng.uniform(0, 0.6))
        gevent.joinall(cancellers, timeout=30)
        settle(p, witness)
        report.violations = violations(p, witness)
        report.legs = p.db.run(lambda: Leg.select().count())
        report.outcomes = Counter(f"{r.state}:{r.failure_cause or '-'}" for r in p.requests())
    finally:
        witness.connection.stop()
        p.observer.connection.stop()
        p.service.stop(timeout=2)
        p.sim.stop()
    return report


def cancel(p: Platform, request_id: int) -> None:
    """The customer presses Cancel (on whichever controller runs now)."""
    p.service.dialer.cancel(request_id, "cancelled in the storm")


def newest_request_id(p: Platform) -> int:
    found = p.db.run(
        lambda: (
            CallbackRequest.select(CallbackRequest.id).order_by(CallbackRequest.id.desc()).first()
        )
    )
    return found.id if found is not None else 0


def settle(p: Platform, witness: SwitchRecord, timeout: float = 120) -> None:
    """Until the switch has no channel, the controller no flow, and every request ended."""

    def unsettled() -> str:
        live = p.db.run(
            lambda: [
                f"{r.id}:{r.state}"
                for r in CallbackRequest.select().where(CallbackRequest.state.in_(requests.LIVE))
            ]
        )
        parts = {
            "channels": sorted(ch.name for ch in p.sim.channels.values()),
            "flows": sorted(p.service.dialer.flows),
            "adopted": sorted(p.service.dialer.adopted),
            "live requests": live,
            "unreported hangups": sorted(set(witness.created) - set(witness.completed)),
        }
        return "; ".join(f"{name}: {value}" for name, value in parts.items() if value)

    deadline = gevent.get_hub().loop.now() + timeout
    while (left := unsettled()) and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.1)
    assert not left, f"the storm did not settle in {timeout:g} s: {left}"


def violations(p: Platform, witness: SwitchRecord) -> list[str]:
    """Every breach of the invariants (see the module's docstring)."""
    found: list[str] = []

    def check() -> None:
        legs = {leg.uuid: leg for leg in Leg.select()}
        for uuid_, billsecs in witness.completed.items():
            leg = legs.get(uuid_)
            if leg is None:
                found.append(f"leg {uuid_} ended on the switch but has no CDR")
                continue
            if len(billsecs) != 1:
                found.append(f"leg {uuid_}: {len(billsecs)} HANGUP_COMPLETE on the switch")
            if not leg.billed:
                found.append(f"leg {uuid_} ({leg.number}) is not billed")
            elif leg.hangup_cause != LOST_CAUSE and leg.billsec != billsecs[0]:
                found.append(f"leg {uuid_}: billed {leg.billsec} s, the switch said {billsecs[0]}")
        for uuid_, leg in legs.items():
            if not leg.billed:
                found.append(f"leg {uuid_} of request {leg.request_id} was never billed")
            if uuid_ not in witness.created and (leg.billsec or 0) > 0:
                found.append(f"leg {uuid_} billed {leg.billsec} s but never existed on the switch")
            if leg.number.startswith(PREMIUM_PREFIX):
                found.append(f"leg {uuid_} to {leg.number}: a number the policy refuses")
        for uuid_, number in witness.created.items():
            if number.startswith(PREMIUM_PREFIX):
                found.append(f"the switch dialled {number} ({uuid_}), which the policy refuses")
        live = CallbackRequest.select().where(CallbackRequest.state.in_(requests.LIVE))
        found.extend(f"request {r.id} is still {r.state}" for r in live)
        held = Reservation.select().where(Reservation.released_at.is_null())
        found.extend(f"request {h.request_id} still holds {h.amount}" for h in held)
        for account in Account.select():
            if account.balance < account.floor:
                found.append(f"account {account.name} at {account.balance}, below {account.floor}")
            audit = billing.audit(account)
            if not audit.balanced:
                found.append(f"account {account.name}: audit difference {audit.difference}")

    p.db.run(check)
    if p.service.dialer.flows:
        found.append(f"flows left: {sorted(p.service.dialer.flows)}")
    return found
