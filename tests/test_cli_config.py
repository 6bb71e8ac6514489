"""`esl-callback config check|show` and the loader `serve` uses: messages and exit codes."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from esl_callback.cli.config_cmd import config, load_settings_or_exit
from esl_callback.cli.web_cmd import web
from esl_callback.config import Settings, settings_from_mapping

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
freeswitch:
  nodes:
    - name: fs1
      password: s3cret-esl
web:
  secret: k3Jx9vQ2mL7pR4tW8yZ1aB5cD6eF0gH2
"""
BAD = """\
freeswitch:
  nodes:
    - name: fs1
      port: abc
web:
  prot: 8080
"""
# The example's gateway token is public; a test that checks the example sets its own.
GATEWAY_TOKEN = "cli-test-gateway-token-0123456789"
BAD_LINES = [
    'freeswitch.nodes[0].port: expected an integer 1-65535, got "abc" (line 4)',
    'web.prot: unknown key (did you mean "port"?) (line 6)',
]


@pytest.fixture(autouse=True)
def no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("ESL_CALLBACK_"):
            monkeypatch.delenv(name)
    yield


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_check_of_a_good_file_says_ok_and_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = CliRunner().invoke(config, ["check", path])
    assert result.exit_code == 0
    assert result.output == f"{path}: OK\n"


def test_check_prints_every_error_on_its_own_line_and_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    result = CliRunner().invoke(config, ["check", path])
    assert result.exit_code == 1
    assert result.output.splitlines() == [*BAD_LINES, f"{path}: 2 errors"]


def test_check_reports_contradictions_in_the_same_run_as_invalid_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "web:\n  port: 8084\nnumbers:\n  min_length: 12\n  max_length: 8\n"
        "callback:\n  delay_seconds: abc\n",
    )
    result = CliRunner().invoke(config, ["check", path])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "web.port: same as outbound.port (8084); the two servers need their own (line 1)",
        "numbers.max_length: must not be below min_length (line 5)",
        'callback.delay_seconds: expected a number of seconds 0-300, got "abc" (line 7)',
        f"{path}: 3 errors",
    ]


def test_check_prints_warnings_and_still_passes(tmp_path: Path) -> None:
    path = write(tmp_path, "web:\n  secret: k3Jx9vQ2mL7pR4tW8yZ1aB5cD6eF0gH2\n")
    result = CliRunner().invoke(config, ["check", path])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("warning: freeswitch.nodes[0].password: is FreeSWITCH's default")
    assert lines[-1] == f"{path}: OK"


def test_check_strict_fails_on_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    result = CliRunner().invoke(config, ["check", "--strict", path])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"{path}: 2 warning(s), failing because of --strict"


def test_check_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    result = CliRunner().invoke(config, ["check", path])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"{path}: file not found", f"{path}: 1 error"]


def test_check_applies_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    env = {"ESL_CALLBACK_DATABASE_URL": "oracle://x"}
    result = CliRunner().invoke(config, ["check", path], env=env)
    assert result.exit_code == 1
    assert result.output.startswith("database.url (from ESL_CALLBACK_DATABASE_URL): expected")


def test_show_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "database:\n  url: postgresql://cb:db-pass@db/cb\n")
    result = CliRunner().invoke(config, ["show", path], env={"ESL_CALLBACK_WEB_SECRET": "x" * 40})
    assert result.exit_code == 0
    for secret in ("s3cret-esl", "db-pass", "x" * 40):
        assert secret not in result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["freeswitch"]["nodes"][0]["password"] == "********"
    assert shown["web"]["secret"] == "********"
    assert shown["database"]["url"] == "postgresql://cb:********@db/cb"
    assert shown["outbound"]["port"] == 8084


def test_show_without_a_file_prints_defaults_that_load_back() -> None:
    result = CliRunner().invoke(config, ["show"])
    assert result.exit_code == 0
    shown = yaml.safe_load(result.stdout)
    shown["freeswitch"]["nodes"][0]["password"] = "ClueCon"  # masked in the output
    assert settings_from_mapping(shown, {}) == Settings.default()
    assert "warning: freeswitch.nodes[0].password" in result.stderr


def test_show_refuses_a_bad_file_like_check(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    result = CliRunner().invoke(config, ["show", path])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [*BAD_LINES, f"{path}: 2 errors"]
    assert result.stdout == ""


def test_serve_loader_prints_the_check_messages_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(SystemExit) as exited:
        load_settings_or_exit(path)
    assert exited.value.code == 1
    check = CliRunner().invoke(config, ["check", path])
    assert capsys.readouterr().err == check.output


def test_serve_loader_returns_settings_and_warns_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings_or_exit(write(tmp_path, "web:\n  port: 9090\n"))
    assert settings.web.port == 9090
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "warning: web.secret: not set" in captured.err


def test_python_m_esl_callback_config_check_exit_codes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESL_CALLBACK_")}
    command = [sys.executable, "-m", "esl_callback", "config", "check"]
    bad = subprocess.run(
        [*command, write(tmp_path, BAD)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.splitlines()[:2] == BAD_LINES
    example = subprocess.run(
        [*command, str(ROOT / "config.example.yaml")],
        capture_output=True,
        text=True,
        env={**env, "ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN": GATEWAY_TOKEN},
        cwd=ROOT,
    )
    assert example.returncode == 0, example.stderr
    assert example.stdout.splitlines()[-1] == f"{ROOT / 'config.example.yaml'}: OK"


def test_check_refuses_the_example_files_gateway_token_and_says_how_to_make_one() -> None:
    """The example's token is public: with it anyone could report calls and SMS."""
    example = str(ROOT / "config.example.yaml")
    result = CliRunner().invoke(config, ["check", example])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "sms.gateways[0].token: is the example token of config.example.yaml, which anyone can "
        "read: generate one (e.g. `python3 -c 'import secrets; print(secrets.token_hex(32))'`) "
        "and set it here (or in ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN) and in the gateway",
        f"{example}: 1 error",
    ]


def test_the_portal_run_alone_warns_only_about_what_it_uses(tmp_path: Path) -> None:
    config_file = tmp_path / "portal.yaml"
    config_file.write_text("web:\n  secret: short\n")  # FreeSWITCH keeps its default ClueCon
    result = CliRunner().invoke(web, ["-c", str(config_file)])
    assert result.exit_code == 1
    assert "web.secret: only 5 characters" in result.output  # a warning about the portal
    assert "web.controller_url: not set" in result.output  # why it cannot start
    assert "ClueCon" not in result.output  # the switch is serve's business, not the portal's


def test_check_reports_a_log_file_in_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"logging:\n  file: {tmp_path / 'no-such-dir' / 'x.log'}\n")
    result = CliRunner().invoke(config, ["check", str(path)])
    assert result.exit_code == 1
    assert "logging.file: cannot write" in result.output and "does not exist" in result.output
    assert f"{path}: 1 error" in result.output


def test_serve_with_an_unopenable_log_file_fails_with_the_reason(tmp_path: Path) -> None:
    from esl_callback.cli.serve_cmd import serve

    path = tmp_path / "config.yaml"
    path.write_text(f"logging:\n  file: {tmp_path / 'no-such-dir' / 'x.log'}\n")
    result = CliRunner().invoke(serve, ["-c", str(path)])
    assert (result.exit_code, result.exception.__class__) == (1, SystemExit)
    assert "error: logging.file: cannot open" in result.output
