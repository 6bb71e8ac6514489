"""`esl-callback call` end to end: the real command, in its own process, against a running serve.

The platform is the simulator and the controller with its web portal on, as `serve` runs them;
the command reads a configuration file pointing at that portal, exactly as an operator's would,
and is run as `python -m esl_callback call ...`. Each test that needs a serve runs on SQLite and
on PostgreSQL (the `db` fixture).

The test process runs the platform in gevent without monkey patching, so everything that waits
here (the command, plain HTTP requests) waits cooperatively: gevent.subprocess, gevent's pool.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
from gevent import subprocess
from platform_helpers import Platform
from ports import free_port

from esl_callback import accounts, operator
from esl_callback.callback import billing
from esl_callback.models import Account
from esl_callback.web import auth

SECRET = "operator-test-secret-0123456789abcdef"
SOURCE = "15550001001"  # alice's phone, registered on her account
NOT_HERS = "15550001002"
FRIEND = "15550002001"
BUSY = "15550002004"
SILENT = "15550002003"  # rings and never answers
API = "/api/v1/operator/requests"

PHONES = {
    SOURCE: {"answer_after": 1},
    NOT_HERS: {"answer_after": 1},
    FRIEND: {"answer_after": 1, "hangup_after": 3},
    BUSY: {"busy": True},
    SILENT: {"no_answer": True},
}


@pytest.fixture
def alice() -> Account:
    account = accounts.create_account("alice", default_callback_number=SOURCE)
    billing.add_payment(account, "10", "voucher 1")
    return account


def start_serve(platform: Any, tmp_path: Path, secret: str = SECRET) -> tuple[Platform, Path]:
    """The platform with its portal on, and a configuration file the command reads."""
    port = free_port()
    web = {"bind": "127.0.0.1", "port": port, "secret": SECRET, "secure_cookies": False}
    p = platform(PHONES, web=web)
    return p, write_config(tmp_path, port, secret)


def write_config(tmp_path: Path, port: int, secret: str = SECRET) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f'web:\n  bind: 127.0.0.1\n  port: {port}\n  secret: "{secret}"\n')
    return config


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    return env


def command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "esl_callback", "call", "-c", str(config), *args]


def run_call(config: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the command to its end (cooperatively: the platform keeps running meanwhile)."""
    return subprocess.run(
        command(config, *args),
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=cli_env(),
        timeout=45,
    )


def start_call(config: Path, *args: str) -> subprocess.Popen:
    """Start the command in the background, for a test to press Ctrl-C (SIGINT) in it."""
    return subprocess.Popen(
        command(config, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=cli_env(),
        # A shell without job control starts background children with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def index_of(lines: list[str], *words: str, start: int = 0) -> int:
    """The first line from `start` containing all `words`."""
    for i in range(start, len(lines)):
        if all(word in lines[i] for word in words):
            return i
    raise AssertionError(f"no line with {words} after line {start}:\n" + "\n".join(lines))


def balance() -> Decimal:
    return Account.get(Account.name == "alice").balance


def assert_billed(p: Platform, mode: str) -> None:
    request = p.wait_request()
    assert (request.state, request.trigger, request.mode) == ("completed", "cli", mode)
    assert (request.source, request.destination) == (SOURCE, FRIEND)
    leg_a, leg_b = p.legs(request.id)
    assert leg_a.billed and leg_b.billed
    assert leg_a.cost > 0 and leg_b.cost > 0
    assert balance() == Decimal("10") - leg_a.cost - leg_b.cost


# -- callbacks that run ---------------------------------------------------------------------


def test_a_source_first_callback_prints_each_step_and_exits_0(platform, alice, tmp_path) -> None:
    p, config = start_serve(platform, tmp_path)

    result = run_call(config, SOURCE, FRIEND, "--account", "alice")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    ringing = index_of(lines, f"source {SOURCE}: ringing")
    answered = index_of(lines, f"source {SOURCE}: answered", start=ringing)
    called = index_of(lines, f"destination {FRIEND}: ringing", start=answered)
    bridged = index_of(lines, "connected", f"destination {FRIEND}: bridged", start=called)
    done = index_of(lines, "completed", f"destination {FRIEND}: hung up", start=bridged)
    assert done == len(lines) - 1 and "cost" in lines[done] and " s · " in lines[done]
    assert len(lines) == len(set(lines))  # one line per change, no repeats
    assert_billed(p, "source_first")
    p.wait_idle()


def test_a_simultaneous_callback_with_json_output(platform, alice, tmp_path) -> None:
    p, config = start_serve(platform, tmp_path)

    result = run_call(
        config, SOURCE, FRIEND, "-a", str(alice.id), "--mode", "simultaneous", "--json"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    final = json.loads(result.stdout)  # only the final status on stdout; the lines on stderr
    assert (final["state"], final["mode"], final["final"]) == ("completed", "simultaneous", True)
    assert [leg["status"] for leg in final["legs"]] == ["hung_up", "hung_up"]
    assert Decimal(final["balance"]) == balance()
    assert "completed" in result.stderr.splitlines()[-1]
    assert_billed(p, "simultaneous")


def test_a_busy_destination_is_reported_and_exits_1(platform, alice, tmp_path) -> None:
    p, config = start_serve(platform, tmp_path)

    result = run_call(config, SOURCE, BUSY, "--account", "alice")

    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert "failed" in last and f"destination {BUSY}: busy" in last
    assert p.wait_request().state == "failed"
    p.wait_idle()


def test_ctrl_c_hangs_up_both_legs_and_exits_1(platform, alice, tmp_path) -> None:
    p, config = start_serve(platform, tmp_path)
    process = start_call(config, SOURCE, SILENT, "--account", "alice")
    seen = []
    with gevent.Timeout(20, AssertionError(f"the destination never rang: {seen}")):
        while not seen or f"destination {SILENT}: ringing" not in seen[-1]:
            seen.append(process.stdout.readline())
            assert seen[-1], f"the command ended early: {seen}"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)

    assert process.returncode == 1, out + err
    assert "cancelling, hanging up both legs" in err
    assert out.splitlines()[-1].startswith(f"request {p.wait_request().id}: cancelled")
    assert p.wait_request().state == "cancelled"
    p.wait_idle()


def test_ctrl_c_before_serve_answers_says_the_callback_may_have_started(tmp_path) -> None:
    """A serve that takes the request and has not answered yet: the command cannot know
    whether the callback started, and says where to look."""
    port = free_port()
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    process = start_call(write_config(tmp_path, port), SOURCE, FRIEND, "--account", "alice")
    try:
        with gevent.Timeout(20, AssertionError("the command never connected")):
            taken, _ = listener.accept()
            while b"\r\n\r\n" not in taken.recv(65536, socket.MSG_PEEK):  # the whole POST
                gevent.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        listener.close()

    assert process.returncode == 130, out + err
    assert out == ""
    assert (
        f"interrupted before esl-callback serve at http://127.0.0.1:{port} answered: "
        "the callback may have started; see `esl-callback requests --live`"
    ) in err
    assert "Traceback" not in err


# -- refusals: exit 2, nothing dialed -------------------------------------------------------


def test_refusals_exit_2_with_a_clear_message_and_nothing_is_dialed(
    platform, alice, tmp_path
) -> None:
    p, config = start_serve(platform, tmp_path)

    unknown = run_call(config, SOURCE, FRIEND, "--account", "mallory")
    bad_number = run_call(config, SOURCE, "123&park()", "--account", "alice")
    not_hers = run_call(config, NOT_HERS, FRIEND, "--account", "alice")
    bad_mode = run_call(config, SOURCE, FRIEND, "--account", "alice", "--mode", "both")

    assert unknown.returncode == 2
    assert "no account named 'mallory' (see `esl-callback account list`)" in unknown.stderr
    assert bad_number.returncode == 2
    assert "error: DESTINATION: That number has '&' in it" in bad_number.stderr
    assert not_hers.returncode == 2
    assert f"{NOT_HERS} is not one of account alice's numbers" in not_hers.stderr
    assert f"esl-callback callerid add alice {NOT_HERS}" in not_hers.stderr
    assert bad_mode.returncode == 2 and "--mode" in bad_mode.stderr
    for result in (unknown, bad_number, not_hers, bad_mode):
        assert result.stdout == ""
    assert p.requests() == []
    assert p.sim.stats.since_startup == 0  # no channel was ever created
    assert balance() == Decimal("10")


def test_without_a_running_serve_it_says_what_to_do_and_exits_2(tmp_path) -> None:
    port = free_port()
    result = run_call(write_config(tmp_path, port), SOURCE, FRIEND, "--account", "alice")
    assert result.returncode == 2
    assert (
        f"cannot reach esl-callback serve at http://127.0.0.1:{port} "
        "(is `esl-callback serve` running with this config?)"
    ) in result.stderr


def test_a_configuration_with_another_secret_is_refused(platform, alice, tmp_path) -> None:
    p, config = start_serve(platform, tmp_path, secret="not-the-secret-serve-runs-with")

    result = run_call(config, SOURCE, FRIEND, "--account", "alice")

    assert result.returncode == 2
    assert "refused the operator credential" in result.stderr
    assert "web.secret differs" in result.stderr
    assert p.requests() == []


# -- the endpoint itself --------------------------------------------------------------------


def http(
    url: str, method: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    """A plain HTTP request from a real thread, so that the serve in this process answers."""

    def send() -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), json.loads(exc.read())

    return gevent.get_hub().threadpool.apply(send)


def test_the_operator_endpoint_refuses_wrong_stale_replayed_and_user_credentials(
    platform, alice, tmp_path
) -> None:
    p, _ = start_serve(platform, tmp_path)
    base = f"http://127.0.0.1:{p.service.settings.web.port}"
    # An unknown account: accepted credentials get 404, refused ones 401; nothing is dialed.
    body = json.dumps({"account": "mallory", "destination": FRIEND}).encode()
    json_type = {"Content-Type": "application/json"}

    def post(authorization: str | None, sent: bytes = body) -> tuple[int, dict, Any]:
        headers = dict(json_type, **({"Authorization": authorization} if authorization else {}))
        return http(base + API, "POST", sent, headers)

    def signed(secret: str = SECRET, now: float | None = None, signed_body: bytes = body) -> str:
        return operator.sign(secret, "POST", API, signed_body, now=now)

    user = accounts.add_web_user(alice, "alice", "a long password")
    token = p.db.run(auth.issue_token, user.id)
    good = signed()

    status, headers, error = post(None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Operator")
    assert post(f"Bearer {token}")[0] == 401  # a web user is not the operator
    status, _, error = post(signed(secret="x" * 40))
    assert (status, error["error"]["code"]) == (401, "unauthorised")
    assert "web.secret differs" in error["error"]["message"]
    status, _, error = post(signed(now=time.time() - 120))
    assert status == 401 and "stale" in error["error"]["message"]
    status, _, error = post(signed(now=time.time() + 120))
    assert status == 401 and "stale" in error["error"]["message"]
    other_body = json.dumps({"account": "alice", "destination": FRIEND}).encode()
    assert post(signed(signed_body=body), other_body)[0] == 401  # signed for another body
    mangled = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert post(mangled)[0] == 401

    status, _, error = post(good)
    assert (status, error["error"]["field"]) == (404, "account")
    status, _, error = post(good)  # the same credential again
    assert status == 401 and "already used" in error["error"]["message"]

    assert p.requests() == []
    assert p.sim.stats.since_startup == 0


def test_a_callback_billing_refuses_exits_2_saying_why_and_nothing_is_dialed(
    platform, alice, tmp_path
) -> None:
    p, config = start_serve(platform, tmp_path)

    result = run_call(config, SOURCE, "4930123456", "--account", "alice")

    assert result.returncode == 2, result.stderr
    assert "failed (no price for this destination)" in result.stdout
    (request,) = p.requests()
    assert (request.state, request.failure_cause) == ("failed", "no_rate_destination")
    assert p.sim.stats.since_startup == 0  # no channel was ever created
    assert balance() == Decimal("10")
