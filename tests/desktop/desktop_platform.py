"""A real platform for the desktop client's tests: `esl-callback sim` and `esl-callback serve`,
each in a process of its own, as a customer's client meets them (import as `desktop_platform`).

The SQLite database is seeded first (rates, accounts with their phones and web logins); the
simulator's virtual phones (below) answer, talk, are busy or never answer, in real time; serve
dials them over real sockets and serves the portal and its JSON API on a free port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for `ports`
from ports import free_port

from esl_callback import accounts
from esl_callback.callback import billing
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.db import Database

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "desktop password"
ESL_PASSWORD = "test-secret"
STARTUP_SECONDS = 60.0

# The virtual phones, E.164 digits (country code 49); timings in seconds.
FRIEND = "49402222222"  # answers after 1 s, talks 3 s, hangs up
BUSY = "4940333333"  # always busy
SILENT = "4940444444"  # rings and never answers
DENIED = "4919000111"  # the dial policy refuses 4919... (billing.deny_prefixes)
NO_RATE = "33123456789"  # no rate for France
# Each customer has a phone of their own that answers after 1 s and stays on the line.
CUSTOMERS = {
    "alice": ("4930111101", "10"),
    "bob": ("4930111102", "10"),
    "carol": ("4930111103", "10"),
    "dave": ("4930111104", "10"),
    "erin": ("4930111105", "10"),
    "frank": ("4930111106", "10"),
    "poor": ("4930111107", "0.05"),
    "locked": ("4930111108", "10"),
    "tls": ("4930111109", "10"),
    "links": ("4930111110", "10"),
    "keys": ("4930111111", "10"),
    "gina": ("4930111112", "10"),
    "hank": ("4930111113", "10"),
}
PHONES = {
    FRIEND: {"answer_after": 1, "hangup_after": 3},
    BUSY: {"busy": True},
    SILENT: {"no_answer": True},
    **{phone: {"answer_after": 1} for phone, _ in CUSTOMERS.values()},
}


@dataclass
class Platform:
    """The running processes and where to reach the portal."""

    url: str
    directory: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def phone_of(self, username: str) -> str:
        return CUSTOMERS[username][0]

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.directory / 'desktop.db'}"

    def cli(self, *args: str) -> str:
        """Run `esl-callback ARGS --database ...` (an operator's command) and return its output."""
        done = subprocess.run(
            [sys.executable, "-m", "esl_callback", *args, "--database", self.database_url],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def log(self) -> str:
        path = self.directory / "serve.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def seed(database_url: str) -> None:
    """Rates (0.60 EUR a minute to Germany, by the second) and the customers with their logins."""
    database = Database(database_url)
    database.init()
    billing.import_rates(
        [RateRow(RateSnapshot("49", Decimal("0.60"), Decimal(0), 1, 1), "Germany", 1)],
        replace=True,
    )
    for name, (phone, paid) in CUSTOMERS.items():
        account = accounts.create_account(name, default_callback_number=phone)
        billing.add_payment(account, paid, f"voucher {name}")
        accounts.add_web_user(account, name, PASSWORD)
    database.close()


def serve_config(directory: Path, database_url: str, switch_port: int, web_port: int) -> Path:
    config = {
        "database": {"url": database_url},
        "freeswitch": {
            "nodes": [
                {"name": "sim", "host": "127.0.0.1", "port": switch_port, "password": ESL_PASSWORD}
            ],
            "reconnect_min_seconds": 0.2,
            "reconnect_max_seconds": 1,
        },
        "outbound": {"port": free_port()},
        "web": {
            "bind": "127.0.0.1",
            "port": web_port,
            "secret": "d" * 40,
            "secure_cookies": False,
            "login_max_failures": 3,
            "login_lockout_seconds": 600,
        },
        "metrics": {"enabled": False},
        "numbers": {"country_code": "49", "min_length": 7},
        "callback": {
            "delay_seconds": 0,
            "leg_a_retries": 0,
            "originate_timeout_seconds": 20,
            "requests_per_minute": 30,
        },
        "billing": {"deny_prefixes": ["4919"], "warning_seconds_before_hangup": 0},
        "routes": [{"prefix": "", "template": "loopback/{number}/phones"}],
        "logging": {"level": "INFO", "file": str(directory / "serve.log")},
    }
    path = directory / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sim_config(directory: Path) -> Path:
    path = directory / "sim.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "esl": {"listen": "127.0.0.1:8021", "password": ESL_PASSWORD},
                "phones": {"context": "phones", "lines": PHONES},
            }
        )
    )
    return path


def environment() -> dict[str, str]:
    """This process's environment for esl-callback's commands: this checkout's code, no
    ESL_CALLBACK_* settings from the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(*args: str, log: Path) -> subprocess.Popen:
    """`esl-callback ARGS` in a process of its own, output to `log`."""
    env = environment()
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "esl_callback", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=log.parent,
        )


def wait_for(ready: object, what: str, processes: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready():  # type: ignore[operator]
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            output = "\n".join(f"--- {log.name}\n{log.read_text()}" for log in logs if log.exists())
            raise RuntimeError(f"{what} did not happen:\n{output}")
        time.sleep(0.1)  # polling a process that starts on its own; no test waits on this


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(directory: Path) -> Platform:
    """Seed the database, start the simulator and serve side by side (serve connects again until
    the simulator listens); the platform once serve is connected to it."""
    directory.mkdir(parents=True, exist_ok=True)
    switch_port, web_port = free_port(), free_port()
    sim_log, serve_log = directory / "sim.out", directory / "serve.out"
    platform = Platform(f"http://127.0.0.1:{web_port}", directory)
    database_url = platform.database_url
    seed(database_url)
    sim = command(
        "sim", "-c", str(sim_config(directory)), "--listen", f"127.0.0.1:{switch_port}",
        log=sim_log,
    )  # fmt: skip
    platform.processes.append(sim)
    try:
        config = serve_config(directory, database_url, switch_port, web_port)
        serve = command("serve", "-c", str(config), log=serve_log)
        platform.processes.append(serve)
        logs = [sim_log, serve_log, directory / "serve.log"]
        wait_for(
            lambda: "sim: connected to" in platform.log() and answers(platform.url + "/login"),
            "serve's start and its connection to the simulator",
            platform.processes,
            logs,
        )
    except BaseException:
        platform.stop()
        raise
    return platform
