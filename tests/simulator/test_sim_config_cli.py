"""Simulator configuration, dialplan shorthands, XML export and the `esl-callback sim` command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from sim_client import EslClient

from esl_callback.cli import main
from esl_callback.simulator.config import ConfigError, from_mapping, load, parse_listen
from esl_callback.simulator.dialplan import Dialplan, DialplanError, phone_actions

ROOT = Path(__file__).resolve().parents[2]


def test_demo_config_loads() -> None:
    config = load()
    assert (config.listen_host, config.listen_port, config.password) == (
        "127.0.0.1",
        8021,
        "ClueCon",
    )
    assert config.dialplan.lookup("access", "18005550123") == [
        ("socket", "127.0.0.1:8084 async full")
    ]
    assert config.dialplan.lookup("access", "12345") is None
    assert config.dialplan.lookup("phones", "15550002004") == [("hangup", "USER_BUSY")]


@pytest.mark.parametrize(
    ("spec", "actions"),
    [
        ({"busy": True}, [("hangup", "USER_BUSY")]),
        ({"unreachable": True}, [("hangup", "SUBSCRIBER_ABSENT")]),
        ({"respond": 486}, [("respond", "486")]),
        ({"no_answer": True}, [("ring_ready", None), ("unset", "park_timeout"), ("park", None)]),
        (
            {"answer_after": 2, "keys": [{"after": 1, "digits": "12#"}], "hangup_after": 3},
            [
                ("ring_ready", None),
                ("sleep", "2000"),
                ("answer", None),
                ("sleep", "1000"),
                ("send_dtmf", "12#"),
                ("sleep", "3000"),
                ("hangup", None),
            ],
        ),
        (
            {"early_media": "tone_stream://%(1000,0,440)", "ring": False},
            [
                ("pre_answer", None),
                ("playback", "tone_stream://%(1000,0,440)"),
                ("unset", "park_timeout"),
                ("park", None),
            ],
        ),
        (
            {
                "answer_after": 0,
                "play": "ivr/ivr-welcome.wav",
                "hangup_after": 0,
                "hangup_cause": "CALL_REJECTED",
            },
            [
                ("ring_ready", None),
                ("answer", None),
                ("playback", "ivr/ivr-welcome.wav"),
                ("hangup", "CALL_REJECTED"),
            ],
        ),
        ({"actions": ["answer", "playback foo.wav"]}, [("answer", None), ("playback", "foo.wav")]),
    ],
)
def test_phone_shorthands_are_real_applications(spec, actions) -> None:
    assert phone_actions(spec) == actions


def test_captures_fill_actions_and_dp_match() -> None:
    plan = Dialplan.from_config(
        {"access": [{"name": "t", "expression": r"^1800(\d+)$", "actions": ["set x=$1"]}]}, None
    )
    assert plan.lookup("access", "18005550100") == [("set", "x=5550100")]


@pytest.mark.parametrize(
    "data",
    [
        {"esl": {"listen": "nonsense"}},
        {"esl": {"apply_inbound_acl": ["not-a-net"]}},
        {"dialplan": {"x": [{"name": "no expression"}]}},
        {"dialplan": {"x": [{"expression": "([bad"}]}},
        {"esl": "not a mapping"},
        {"database": {"url": "sqlite:///x.db"}, "web": {"port": 8080}},  # serve's configuration
        {"esl": {"listen": "127.0.0.1:8021", "pasword": "ClueCon"}},
        {"switch": {"max_session": 10}},
    ],
)
def test_bad_configs_are_refused(data) -> None:
    with pytest.raises((ConfigError, DialplanError)):
        from_mapping(data)


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:8021") == ("0.0.0.0", 8021)
    assert parse_listen("[::1]:8021") == ("::1", 8021)


def test_export_xml_writes_a_freeswitch_dialplan(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(
        "dialplan:\n  access:\n    - name: trig\n      expression: ^(1800\\d+)$\n"
        "      actions: ['socket 127.0.0.1:8084 async full']\n"
        "phones:\n  context: phones\n  lines:\n    '15550001001': {answer_after: 1}\n"
    )
    result = CliRunner().invoke(main, ["sim", "-c", str(config), "export-xml"])
    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.output.split("\n", 1)[1])
    contexts = {c.get("name"): c for c in root.iter("context")}
    assert set(contexts) == {"access", "phones"}
    (phone,) = contexts["phones"].iter("extension")
    condition = phone.find("condition")
    assert condition is not None
    assert condition.get("expression") == "^15550001001$"
    assert [(a.get("application"), a.get("data")) for a in condition.iter("action")] == [
        ("ring_ready", None),
        ("sleep", "1000"),
        ("answer", None),
        ("unset", "park_timeout"),
        ("park", None),
    ]
    out = tmp_path / "dialplan.xml"
    result = CliRunner().invoke(main, ["sim", "export-xml", "-c", str(config), "-o", str(out)])
    assert result.exit_code == 0
    assert '<action application="socket" data="127.0.0.1:8084 async full"/>' in out.read_text()


def test_sim_command_errors() -> None:
    result = CliRunner().invoke(main, ["sim", "-c", "/nonexistent/sim.yaml"])
    assert result.exit_code == 1
    assert "cannot load the simulator configuration" in result.output
    result = CliRunner().invoke(main, ["sim", "--listen", "nowhere"])
    assert result.exit_code == 2


def test_sim_command_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "esl_callback",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--password",
            "s3cret",
            "--speed",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"inbound ESL on 127\.0\.0\.1:(\d+) \(speed 10\)", line)
        assert found, line
        conn = EslClient("127.0.0.1", int(found.group(1)), password="s3cret")
        assert conn.api("global_getvar hold_music") == "local_stream://moh"
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_capacity_script_runs() -> None:
    """A small run of scripts/sim_capacity.py (the real figures need the default sizes)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "sim_capacity.py"),
            "--calls",
            "100",
            "--hold",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "originates: 100 answered calls" in result.stdout, result.stdout + result.stderr
    assert "held: 200 concurrent channels" in result.stdout
    assert "teardown: 200 channels hung up" in result.stdout
