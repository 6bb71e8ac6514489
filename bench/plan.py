"""The benchmark's world: numbers, the simulator's phones, the controller's configuration, data.

Every phone number is 13 digits: ``1555`` + a class digit + an account (4 digits, which is also
the account's PIN) + a serial (4 digits), so each call in flight has numbers of its own and its
events can be matched to it. Classes:

    1  caller, short call: answers, keys PIN# then 15552<account><serial>#
    4  caller, held call: the same, but keys 15553<account><serial>#
    2  destination, short call: answers, talks `talk_seconds`, hangs up
    3  destination, held call: answers and stays until the load hangs it up
    5  web source: answers and waits for the bridge

The phones are dialplan extensions with real FreeSWITCH applications (ring_ready, sleep, answer,
send_dtmf, park, hangup), reached through the gateway `bench` (one visible channel per leg).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.db import Database
from esl_callback.hashing import hash_api_token, hash_password, new_api_token
from esl_callback.models import Account, ApiToken, WebUser

ACCESS_NUMBER = "18005550100"
ACCESS_CONTEXT = "access"
GATEWAY = "bench"
SWITCH_PASSWORD = "bench-secret"
CALLER_SHORT, DEST_SHORT, DEST_HELD, CALLER_HELD, WEB_SOURCE = "1", "2", "3", "4", "5"
BALANCE = Decimal("1000000")


@dataclass(frozen=True)
class Timing:
    """How the phones behave, in seconds (the simulator runs in real time).

    A phone keys at fixed times after answering; digits that reach leg A while no prompt is
    collecting are lost, as on FreeSWITCH: a controller slower than that to start the next
    prompt fails the call.
    """

    ring: float = 0.2
    pin_after: float = 1.0  # keyed while the prompt plays, as people do
    destination_after: float = 2.0
    talk: float = 1.0


@dataclass(frozen=True)
class Ports:
    switch: int
    outbound: int
    web: int
    metrics: int


def number(kind: str, account: int, serial: int) -> str:
    return f"1555{kind}{account:04d}{serial:04d}"


def pin(account: int) -> str:
    return f"{account:04d}"


def destination_for(caller: str) -> str:
    """The destination a caller phone keys (its class decides short or held)."""
    kind = DEST_HELD if caller[4] == CALLER_HELD else DEST_SHORT
    return f"1555{kind}{caller[5:]}"


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def simulator_mapping(ports: Ports, timing: Timing) -> dict[str, Any]:
    """The simulator's YAML: trigger numbers to the controller's outbound socket, the phones."""
    ring = ["ring_ready", f"sleep {_ms(timing.ring)}", "answer"]

    def caller(destination_class: str) -> list[str]:
        return [
            *ring,
            f"sleep {_ms(timing.pin_after)}",
            "send_dtmf $1#",
            f"sleep {_ms(timing.destination_after)}",
            f"send_dtmf 1555{destination_class}$1$2#",
            "park",
        ]

    def phone(kind: str, actions: list[str]) -> dict[str, Any]:
        return {
            "name": f"class_{kind}",
            "expression": rf"^1555{kind}(\d{{4}})(\d{{4}})$",
            "actions": actions,
        }

    return {
        "esl": {"listen": f"127.0.0.1:{ports.switch}", "password": SWITCH_PASSWORD},
        "switch": {"max_sessions": 200_000, "sessions_per_second": 100_000},
        "sounds": {"default_seconds": 0.5},
        "gateways": {GATEWAY: {"context": "phones"}},
        "dialplan": {
            ACCESS_CONTEXT: [
                {
                    "name": "callback_trigger",
                    "expression": f"^{ACCESS_NUMBER}$",
                    "actions": [
                        f"socket 127.0.0.1:{ports.outbound} async full",
                        "hangup NORMAL_TEMPORARY_FAILURE",
                    ],
                }
            ],
            "phones": [
                phone(CALLER_SHORT, caller(DEST_SHORT)),
                phone(CALLER_HELD, caller(DEST_HELD)),
                phone(DEST_SHORT, [*ring, f"sleep {_ms(timing.talk)}", "hangup"]),
                phone(DEST_HELD, [*ring, "park"]),
                phone(WEB_SOURCE, [*ring, "park"]),
            ],
        },
    }


def controller_mapping(
    ports: Ports, database_url: str, log_file: str, max_calls: int
) -> dict[str, Any]:
    """`esl-callback serve`'s configuration: defaults, except what a benchmark must change."""
    return {
        "freeswitch": {
            "nodes": [{"name": "sim", "port": ports.switch, "password": SWITCH_PASSWORD}]
        },
        "outbound": {"port": ports.outbound, "max_sessions": max_calls},
        "database": {"url": database_url, "pool_size": 20},
        "web": {"port": ports.web, "secret": "bench-" * 8, "secure_cookies": False},
        "metrics": {"port": ports.metrics},
        "callback": {
            "delay_seconds": 0,  # the phones are free at once; 3 s by default
            "leg_a_retries": 0,
            "originate_timeout_seconds": 15,
            "announce_balance": False,
            "requests_per_minute": 10_000,
            "max_concurrent_calls": 10_000,
        },
        "routes": [
            {"prefix": "", "template": "sofia/gateway/{gateway}/{number}", "gateway": GATEWAY}
        ],
        "logging": {"level": "INFO", "file": log_file},
    }


@dataclass(frozen=True)
class WebLogin:
    account: int
    username: str
    token: str


def seed(database: Database, accounts_count: int, web_users: int) -> list[WebLogin]:
    """Rates, `accounts_count` accounts (PIN = index) with credit, web users with API tokens."""
    logins: list[WebLogin] = []
    password_hash = hash_password("bench-password")
    with database.peewee.connection_context():
        billing.import_rates(
            [RateRow(RateSnapshot("1555", Decimal("0.60"), Decimal(0), 1, 1), "bench", 2)],
            replace=True,
        )
        accounts.add_access_number(ACCESS_NUMBER, "pin", "bench PIN access")
        for index in range(accounts_count):
            with database.peewee.atomic():
                account = accounts.create_account(
                    f"bench{index:04d}", pin=pin(index), allow_any_source=index < web_users
                )
                billing.add_payment(account, BALANCE, "bench credit")
                if index < web_users:
                    logins.append(_web_login(account, password_hash))
    return logins


def _web_login(account: Account, password_hash: str) -> WebLogin:
    token = new_api_token()
    username = f"web{account.name}"
    user = WebUser.create(account=account, username=username, password_hash=password_hash)
    ApiToken.create(web_user=user, token_hash=hash_api_token(token), label="bench")
    return WebLogin(int(account.name[5:]), username, token)
