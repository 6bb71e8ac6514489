"""The demo installation: the simulator's demo phones, accounts that use them, rates, logins.

`esl-callback demo` runs simulator + controller + portal with this data on a fresh SQLite file.
The numbers match the simulator's built-in demo phones (esl_callback/simulator/demo.yaml).
"""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.callback.rating import RateRow, RateSnapshot

PIN_ACCESS = "18005550100"
ANI_ACCESS = "18005550200"
ALICE_DID = "18885550001"
GATEWAY_NUMBER = "18005550400"  # the fake GSM modem's SIM: a PIN access number, and SMS number
GATEWAY_NAME = "demo-modem"
PASSWORD = "demo-password"


def seed() -> list[dict[str, str]]:
    """Create the demo data (on an initialised, empty database); returns the web logins."""
    billing.import_rates(
        [
            RateRow(RateSnapshot("1", Decimal("0.0200"), Decimal("0"), 60, 60), "USA/Canada", 2),
            RateRow(RateSnapshot("1555", Decimal("0.0500"), Decimal("0.0100"), 6, 30), "Demo", 3),
        ],
        replace=True,
    )
    accounts.add_access_number(PIN_ACCESS, "pin", "demo PIN access")
    accounts.add_access_number(ANI_ACCESS, "ani", "demo caller-ID access")
    accounts.add_access_number(GATEWAY_NUMBER, "pin", "demo GSM gateway phone")
    logins = []
    for name, pin, phone, credit in (
        ("alice", "1234", "15550001001", "25.00"),
        ("bob", "5678", "15550001002", "5.00"),
    ):
        account = accounts.create_account(name, pin=pin, default_callback_number=phone)
        billing.add_payment(account, credit, f"demo voucher {name}")
        accounts.add_web_user(account, name, PASSWORD)
        logins.append({"username": name, "password": PASSWORD, "pin": pin, "phone": phone})
    accounts.add_did(ALICE_DID, accounts.find_account("alice"))
    return logins


def agent_mapping(folder: Path, web_port: int, token: str, status_port: int) -> dict[str, Any]:
    """The gateway agent's configuration for the demo: the fake modem in `folder`."""
    return {
        "platform": {"url": f"http://127.0.0.1:{web_port}", "token": token},
        "modem": {
            "port": str((folder / "fake-modem-tty").absolute()),
            "own_number": GATEWAY_NUMBER,
        },
        "queue": {"path": str((folder / "gateway-agent.db").resolve())},
        "status": {"port": status_port},
    }


def simulator_mapping(outbound_port: int) -> dict[str, Any]:
    """The simulator's demo configuration, its trigger numbers sent to our outbound port."""
    text = resources.files("esl_callback.simulator").joinpath("demo.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    data["esl"]["listen"] = "127.0.0.1:0"
    for extension in data["dialplan"]["access"]:
        extension["expression"] = r"^(1800555\d{4}|1888555\d{4})$"
        extension["actions"] = [
            f"socket 127.0.0.1:{outbound_port} async full",
            "hangup NORMAL_TEMPORARY_FAILURE",
        ]
    return data
