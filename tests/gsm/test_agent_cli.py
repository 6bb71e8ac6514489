"""`esl-callback gateway-agent --check / --status` and `esl-callback fake-modem`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from gsm_helpers import CALLER
from ports import free_port

from esl_callback.cli.gateway_agent_cmd import fake_modem, gateway_agent
from esl_callback.gateway_agent.fake_modem import FakeModem

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "agent-cli-test-token-0123456789"


@pytest.fixture(autouse=True)
def no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ESL_CALLBACK_"):
            monkeypatch.delenv(name)


def check(path: Path, **env: str):
    return CliRunner().invoke(gateway_agent, ["-c", str(path), "--check"], env=env)


def test_the_example_is_refused_for_its_public_token_and_passes_with_a_token_of_its_own() -> None:
    example = ROOT / "agent.example.yaml"

    refused = check(example)
    accepted = check(example, ESL_CALLBACK_AGENT_TOKEN=TOKEN)

    assert refused.exit_code == 1
    assert "platform.token: is the example token of config.example.yaml" in refused.output
    assert (accepted.exit_code, accepted.output) == (0, f"{example}: OK\n")


def test_every_problem_is_reported_with_its_key_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "platform:\n"
        "  url: ftp://x\n"
        "  token: short\n"
        "modem:\n"
        "  port: ttyUSB0\n"
        "  baudrate: 1234\n"
        "  own_number: 18005550400\n"
        "  pinn: '1234'\n"
        "queue:\n"
        "  retry_min_seconds: 10\n"
        "  retry_max_seconds: 5\n"
    )

    result = check(path)

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "platform.url: expected an http:// or https:// address without a path, such as "
        'https://host:8080, got "ftp://x" (line 2)',
        "platform.token: expected a token of at least 16 printable ASCII characters, got "
        '"********" (line 3)',
        'modem.port: expected a device path such as /dev/ttyUSB0, got "ttyUSB0" (line 5)',
        "modem.baudrate: expected one of: 9600, 19200, 38400, 57600, 115200, 230400, 460800, "
        "921600, got 1234 (line 6)",
        'modem.own_number: expected a phone number in quotes, e.g. "+18005550400" (unquoted, '
        "YAML reads it as an integer: a leading + or 0 is lost or read as octal), got "
        "18005550400 (line 7)",
        'modem.pinn: unknown key (did you mean "pin"?) (line 8)',
        "queue.retry_max_seconds: must not be below retry_min_seconds (line 11)",
        f"{path}: 7 errors",
    ]


def test_status_without_a_running_agent_says_so_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"platform: {{url: 'http://127.0.0.1:1', token: {TOKEN}}}\n"
        "modem: {port: /dev/null, own_number: '+18005550400'}\n"
        "status: {port: 1}\n"
    )

    result = CliRunner().invoke(gateway_agent, ["-c", str(path), "--status"])

    assert result.exit_code == 1
    assert "no agent answers at http://127.0.0.1:1/status" in result.output


def test_status_prints_modem_signal_queue_and_counts_of_the_running_agent(
    rig, alice, tmp_path: Path
) -> None:
    r = rig()
    r.modem.ring(f"+{CALLER}")
    r.platform.wait_request()
    r.wait_queue_empty()
    path = tmp_path / "agent.yaml"
    path.write_text(
        f"platform: {{url: 'http://127.0.0.1:1', token: {TOKEN}}}\n"
        "modem: {port: /dev/null, own_number: '+18005550400'}\n"
        f"status: {{port: {r.agent.status_server.port}}}\n"
    )

    result = CliRunner().invoke(gateway_agent, ["-c", str(path), "--status"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "modem:    ready; signal -73 dBm (rssi 20/31); home network"
    assert lines[1] == "platform: reachable"
    assert lines[2].startswith("queue:    0 waiting, 0 replies to send, 1 delivered, 0 refused")
    assert lines[3].startswith("counts:   1 calls, 0 SMS")


def test_the_fake_modem_commands_ring_send_and_list_through_its_control_socket(
    tmp_path: Path,
) -> None:
    modem = FakeModem(tmp_path / "tty").start()
    modem.clip = True
    modem.serve_control(tmp_path / "control")
    control = ["--control", str(tmp_path / "control")]
    try:
        rang = CliRunner().invoke(fake_modem, ["ring", f"+{CALLER}", *control])
        texted = CliRunner().invoke(fake_modem, ["sms", f"+{CALLER}", "BAL", *control])
        listed = CliRunner().invoke(fake_modem, ["sent", *control])
    finally:
        modem.stop()

    assert rang.output == f"ringing from +{CALLER}\n"
    assert texted.output == f"SMS from +{CALLER} stored at SIM index 1\n"
    assert (listed.exit_code, listed.output) == (0, "")
    assert f'+CLIP: "+{CALLER}",145,"",,"",0' in "\n".join(modem.transcript)


def test_the_systemd_unit_runs_the_agent_unprivileged_in_dialout_after_checking_its_file(
    tmp_path: Path,
) -> None:
    unit = (ROOT / "scripts" / "esl-callback-agent.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0].isupper()
    )
    config = tmp_path / "agent.yaml"
    config.write_text((ROOT / "agent.example.yaml").read_text())

    check_args = settings["ExecStartPre"].split()[1:]
    assert check_args == ["gateway-agent", "-c", "/etc/esl-callback-agent/agent.yaml", "--check"]
    assert settings["ExecStart"].split()[1:] == check_args[:-1]
    environment = {"ESL_CALLBACK_AGENT_TOKEN": TOKEN}
    result = CliRunner().invoke(gateway_agent, ["-c", str(config), "--check"], env=environment)
    assert result.exit_code == 0, result.output
    assert (settings["User"], settings["SupplementaryGroups"]) == ("eslagent", "dialout")
    assert "DeviceAllow=char-ttyUSB rw" in unit and "DeviceAllow=char-ttyACM rw" in unit


def test_the_agent_command_runs_until_sigterm_and_keeps_what_it_queued(tmp_path: Path) -> None:
    """`esl-callback gateway-agent -c agent.yaml` as systemd runs it, the platform out of
    reach: a call is rejected and queued; SIGTERM stops it and the queue file keeps the call."""
    modem = FakeModem(tmp_path / "tty").start()
    status_port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"platform: {{url: 'http://127.0.0.1:{free_port()}', token: {TOKEN}}}\n"
        f"modem: {{port: '{tmp_path / 'tty'}', own_number: '+18005550400', poll_seconds: 1}}\n"
        f"queue: {{path: '{tmp_path / 'queue.db'}', retry_min_seconds: 0.1}}\n"
        f"status: {{port: {status_port}}}\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    agent = subprocess.Popen(
        [sys.executable, "-m", "esl_callback", "gateway-agent", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )
    try:
        polled(status_port, lambda s: s["modem"]["state"] == "ready")
        modem.ring(f"+{CALLER}")
        polled(status_port, lambda s: s["queue"]["queue_length"] == 1)
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
        modem.stop()

    assert agent.returncode == 0, output
    assert "gateway agent running: modem" in output
    assert f"call from +{CALLER} rejected unanswered, queued as call-" in output
    assert "stopping: what is queued stays in" in output
    with sqlite3.connect(tmp_path / "queue.db") as queue:
        rows = queue.execute("SELECT kind, sender, state FROM outbox").fetchall()
    assert rows == [("call", f"+{CALLER}", "pending")]
    assert modem.hangups == 1


def polled(port: int, condition, timeout: float = 30) -> dict:
    """The agent's /status once `condition` holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as page:
                status = json.loads(page.read())
            if condition(status):
                return status
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "the agent's status did not get there"
        time.sleep(0.1)
