"""`esl-callback demo` as a newcomer runs it: one process that prints where to go and who to log in
as, whose scripted phone callback (placed a few seconds after start) really connects, and whose
fake GSM modem, rung with the command it prints, gets the caller called back."""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ports import free_port

SCRIPTED_CALLER = "15550001001"  # alice's demo phone: keys PIN 1234, then 15550002001
SCRIPTED_DESTINATION = "15550002001"  # answers, talks 8 s, hangs up
ENDED = ("completed", "failed", "cancelled", "rejected")


def ended_request(
    database: Path, timeout: float, request_id: int = 1, states: tuple[str, ...] = ENDED
) -> tuple[str, str | None, str | None] | None:
    """(state, failure cause, destination) of a demo request once it is in one of `states`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if database.exists():
            with sqlite3.connect(database) as db:
                row = db.execute(
                    "SELECT state, failure_cause, destination FROM callback_request WHERE id = ?",
                    (request_id,),
                ).fetchone()
            if row is not None and row[0] in states:
                return row
        time.sleep(0.5)
    return None


def the_script_make_demo_runs() -> list[str]:
    """`.venv/bin/esl-callback`, as `make demo` runs it (the interpreter's, next to it)."""
    script = Path(sys.executable).parent / "esl-callback"
    return [str(script)] if script.exists() else [sys.executable, "-m", "esl_callback"]


def test_the_demo_prints_its_logins_and_its_scripted_phone_callback_connects(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    command = ["demo", "--web-port", str(port), "--directory", str(tmp_path / "demo")]
    demo = subprocess.Popen(
        [*the_script_make_demo_runs(), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert demo.stdout is not None
        banner = ""
        while "stop with Ctrl-C" not in banner:
            line = demo.stdout.readline()
            assert line, f"the demo stopped before it was ready:\n{banner}"
            banner += line
        assert f"open http://127.0.0.1:{port}/" in banner
        assert "login alice / demo-password" in banner
        assert f"esl-callback-desktop --server http://127.0.0.1:{port}  (same logins" in banner
        assert f"a demo phone call from {SCRIPTED_CALLER}" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as page:
            assert page.status == 200

        database = tmp_path / "demo" / "demo.db"
        assert ended_request(database, timeout=60) == ("completed", None, SCRIPTED_DESTINATION)
        with sqlite3.connect(database) as db:
            legs = db.execute(
                "SELECT leg, number, billed FROM leg WHERE request_id = 1 ORDER BY leg"
            ).fetchall()
        assert legs == [("a", SCRIPTED_CALLER, 1), ("b", SCRIPTED_DESTINATION, 1)]

        # The command it prints to watch the call works as printed, from another terminal
        # (another directory, no esl-callback.db there).
        watch = banner.split(" in another terminal with\n", 1)[1].splitlines()[0].strip()
        elsewhere = tmp_path / "another-terminal"
        elsewhere.mkdir()
        listed = subprocess.run(
            shlex.split(watch), cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith("     1 "), listed.stdout
        assert f"{SCRIPTED_CALLER} -> {SCRIPTED_DESTINATION}" in listed.stdout
        assert " completed " in listed.stdout

        # The line it prints makes the fake GSM modem ring: the agent reports the call and
        # the same phone is called back through the gateway's PIN access number.
        lines = banner.splitlines()
        ring = lines[next(i for i, line in enumerate(lines) if "make it ring:" in line) + 1]
        subprocess.run(shlex.split(ring.strip()), check=True, env=env, timeout=60)
        bridged = ended_request(database, 60, 2, ("bridged", *ENDED))
        assert bridged is not None and bridged[0] in ("bridged", "completed"), bridged
        with sqlite3.connect(database) as db:
            trigger = db.execute("SELECT trigger, method FROM callback_request WHERE id = 2")
            assert trigger.fetchone() == ("gateway", "pin")
        # Nothing in the log alarms a newcomer while all is well.
        log = (tmp_path / "demo" / "demo.log").read_text()
        for alarming in ("WARNING", "ERROR", "Traceback", "closing ESL connection"):
            assert alarming not in log, log

        # Ctrl-C: the demo promises nothing for its next start, which begins on a fresh database.
        demo.send_signal(signal.SIGINT)
        goodbye, _ = demo.communicate(timeout=30)
        assert demo.returncode == 0, goodbye
        assert "stopping the demo" in goodbye
        assert "taken over" not in goodbye
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=15)
