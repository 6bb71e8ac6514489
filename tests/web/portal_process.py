"""A running portal for the browser tests, in its own process (Playwright and gevent stay apart).

    python tests/web/portal_process.py DIRECTORY [--switch] [--alone-config FILE]

Seeds a SQLite database in DIRECTORY with the accounts below, serves the portal on a free port
and prints its URL. With --switch it also runs the FreeSWITCH simulator (virtual phones below)
and the controller (`service.Service`: inbound ESL, outbound server, dialer), so that callbacks
placed in the browser really ring. With --alone-config it writes the configuration of a portal
run alone (`esl-callback web -c FILE`: the same database and secret, on a port of its own,
placing calls through this one) and prints that portal's URL on a second line. Runs until
terminated.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from datetime import timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from esl_callback import accounts  # noqa: E402
from esl_callback.callback import billing  # noqa: E402
from esl_callback.callback.rating import RateRow, RateSnapshot  # noqa: E402
from esl_callback.config import settings_from_mapping  # noqa: E402
from esl_callback.db import Database  # noqa: E402
from esl_callback.web import create_app, serve_web  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for `ports`
from ports import free_port  # noqa: E402
from web_alone_config import write_web_alone_config  # noqa: E402

PASSWORD = "portal password"
SOURCE = "15550001001"  # alice's phone: answers after 1 s and stays on the line
ANSWERS = "15550002001"  # answers after 2 s, talks 5 s, hangs up
BUSY = "15550002004"
SILENT = "15550002003"  # rings and never answers
CAROL = "15550001003"  # carol's phone: answers after 1 s and stays on the line

PHONES = {
    SOURCE: {"answer_after": 1},
    CAROL: {"answer_after": 1},
    ANSWERS: {"answer_after": 2, "hangup_after": 5},
    BUSY: {"busy": True},
    SILENT: {"no_answer": True},
}


def seed(url: str) -> None:
    database = Database(url)
    database.init()
    billing.import_rates(
        [RateRow(RateSnapshot("1", Decimal("0.12"), Decimal(0), 1, 1), "North America", 0)],
        replace=True,
    )
    for name, number, paid in (("alice", SOURCE, "10"), ("bob", "15550001002", "5")):
        account = accounts.create_account(name, default_callback_number=number)
        billing.add_payment(account, paid, f"voucher {name.upper()}-2025")
        accounts.add_web_user(account, name, PASSWORD)
    seed_carol()
    database.close()


def seed_carol() -> None:
    """carol: a low balance, favourites, two past calls, a personal number; access numbers."""
    from esl_callback.callback.requests import State, create
    from esl_callback.db import utcnow
    from esl_callback.models import Leg, PhoneBookEntry

    carol = accounts.create_account("carol", default_callback_number=CAROL)
    billing.add_payment(carol, "0.685", "voucher CAROL-2025")
    accounts.add_web_user(carol, "carol", PASSWORD)
    accounts.add_access_number("18005550100", "pin")
    accounts.add_access_number("18005550111", "ani")
    accounts.add_did("15550009001", carol)
    for name, number, favourite in (
        ("Mary Jones", ANSWERS, True),
        ("Dentist", BUSY, False),
        ("Grandpa Joe", SILENT, True),
    ):
        PhoneBookEntry.create(account=carol, name=name, number=number, favourite=favourite)
    start = utcnow() - timedelta(hours=3)
    for destination, state, billsec, cause in (
        (ANSWERS, State.COMPLETED, 83, "NORMAL_CLEARING"),
        (BUSY, State.FAILED, 0, "USER_BUSY"),
    ):
        request = create(
            trigger="web",
            method="web",
            account=carol,
            mode="source_first",
            source=CAROL,
            destination=destination,
            state=state,
        )
        answered = start if billsec else None
        for role, number in (("a", CAROL), ("b", destination)):
            Leg.create(
                request=request,
                leg=role,
                uuid=f"seed-{request.id}-{role}",
                number=number,
                state="hung_up",
                created_at=start,
                answered_at=answered if role == "b" else start,
                ended_at=start + timedelta(seconds=billsec + 5),
                billsec=billsec if role == "b" else billsec + 5,
                hangup_cause=cause,
                billed=True,
                cost=Decimal("0.0996") if billsec and role == "b" else Decimal(0),
            )
        start += timedelta(hours=1)


SECRET = "p" * 40


def settings_for(directory: Path, switch_port: int | None) -> object:
    data: dict = {
        "database": {"url": f"sqlite:///{directory / 'portal.db'}"},
        "web": {"secret": SECRET, "secure_cookies": False, "port": free_port()},
        "callback": {"delay_seconds": 0, "leg_a_retries": 0, "originate_timeout_seconds": 15},
        "routes": [{"prefix": "", "template": "loopback/{number}/phones"}],
        "logging": {"level": "INFO"},
        "metrics": {"enabled": False},  # 9464 may be taken (a serve on this machine): fatal
        "sms": {"enabled": True, "numbers": ["+1 555 000 9999"]},
    }
    if switch_port is not None:
        data["freeswitch"] = {"nodes": [{"name": "sim", "port": switch_port}]}
        data["outbound"] = {"port": free_port()}
    return settings_from_mapping(data, environ={})


def start_switch() -> int:
    from esl_callback.simulator.config import from_mapping
    from esl_callback.simulator.core import Simulator

    config = from_mapping({"phones": {"context": "phones", "lines": PHONES}})
    simulator = Simulator(config, listen=("127.0.0.1", 0)).start()
    return simulator.port


def write_alone_config(path: Path, database_url: str, controller_url: str) -> str:
    """The configuration of `esl-callback web` beside this portal; its URL."""
    port = free_port()
    write_web_alone_config(path, database_url, port, SECRET, controller_url)
    return f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--switch", action="store_true")
    parser.add_argument("--alone-config", type=Path)
    args = parser.parse_args()
    logging.basicConfig(
        filename=args.directory / "portal.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    switch_port = start_switch() if args.switch else None
    settings = settings_for(args.directory, switch_port)
    seed(settings.database.url)
    if args.switch:
        from esl_callback.service import Service

        server = Service(settings).start().web_server  # serve runs the portal itself
    else:
        app = create_app(settings, Database(settings.database.url), None)
        server = serve_web(app, "127.0.0.1", settings.web.port)
    url = f"http://127.0.0.1:{server.server_port}"
    print(url, flush=True)
    if args.alone_config is not None:
        print(write_alone_config(args.alone_config, settings.database.url, url), flush=True)
    sys.stdout.close()
    gevent.wait()


if __name__ == "__main__":
    main()
