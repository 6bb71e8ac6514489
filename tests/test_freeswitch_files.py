"""`esl-callback freeswitch files`: FreeSWITCH's files written from the configuration, so that an
address or a secret is set once (the dialplan's socket address follows `outbound`, the event
socket and fs_cli follow the node), and the files shipped in freeswitch/ and dialplan/ are what
it writes for the default configuration."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from esl_callback import fsfiles
from esl_callback.cli import main
from esl_callback.config import ConfigError, settings_from_mapping

ROOT = Path(__file__).resolve().parent.parent
SECRET = "0f3c9a7be21d4c55a8e6b1f09d2c7e44ab13f5c6d7e8f9a0b1c2d3e4f5a6b7c8"
SHIPPED = sorted(
    str(path.relative_to(ROOT))
    for top in ("freeswitch", "dialplan")
    for path in (ROOT / top).rglob("*")
    if path.is_file()
)


@pytest.fixture(autouse=True)
def no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("ESL_CALLBACK_"):
            monkeypatch.delenv(name)
    yield


def settings(**sections: Any) -> Any:
    node = {"name": "fs1", "password": SECRET, **sections.pop("node", {})}
    return settings_from_mapping({"freeswitch": {"nodes": [node]}, **sections}, environ={})


def files(settings: Any, **options: Any) -> dict[str, str | None]:
    result = fsfiles.render(settings, **options)
    return {written.file.path: written.text for written in result.files}


def socket_actions(text: str) -> list[str]:
    root = ET.fromstring(text)
    return [a.get("data", "") for a in root.iter("action") if a.get("application") == "socket"]


def params(text: str) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in ET.fromstring(text).iter("param")}


def fs_cli_login(text: str) -> dict[str, str]:
    """fs_cli's reading of fs_cli.conf: `var => value` lines, `;` and `#` lines skipped."""
    pairs = {}
    for line in text.splitlines():
        if line and line[0] not in ";#[" and "=>" in line:
            name, value = line.split("=>", 1)
            pairs[name.strip()] = value.strip()
    return pairs


# -- the shipped files are the defaults ---------------------------------------------------------


def test_the_shipped_files_are_what_it_writes_for_the_default_configuration() -> None:
    written = files(settings_from_mapping(None, environ={}), placeholders=True)
    shipped = {file.shipped: file.path for file in fsfiles.FILES if file.shipped}
    assert sorted(shipped) == SHIPPED, "every shipped file is written, and nothing else shipped"
    for repository_path, conf_path in shipped.items():
        assert written[conf_path] == (ROOT / repository_path).read_text(), (
            f"{repository_path} differs from what `esl-callback freeswitch files --placeholders` "
            f"writes as {conf_path}: change the template in esl_callback/fsconf/ and write it again"
        )


def test_no_template_marker_is_left_in_any_file() -> None:
    for text in files(
        settings(
            node={"user": fsfiles.DIRECTORY_USER},
            sms={"numbers": ["+4930100300"]},
            cdr={"enabled": True, "password": CDR_PASSWORD},
        )
    ).values():
        assert text is not None and "{{" not in text and "}}" not in text


# -- addresses follow the configuration ---------------------------------------------------------


def test_the_dialplan_socket_follows_outbound_port() -> None:
    default = files(settings())["dialplan/public/00_esl-callback.xml"]
    moved = files(settings(outbound={"port": 9084}))["dialplan/public/00_esl-callback.xml"]
    assert default is not None and moved is not None
    assert set(socket_actions(default)) == {"127.0.0.1:8084 async full"}
    assert socket_actions(moved) == ["127.0.0.1:9084 async full"] * 2


def test_the_dialplan_socket_is_the_advertised_address_when_there_is_one() -> None:
    text = files(
        settings(outbound={"bind": "0.0.0.0", "port": 8090, "advertise": "10.0.0.7:8090"})
    )["dialplan/public/00_esl-callback.xml"]
    assert text is not None and socket_actions(text) == ["10.0.0.7:8090 async full"] * 2


def test_the_event_socket_and_fs_cli_take_the_nodes_address_and_password() -> None:
    written = files(settings(node={"host": "10.0.0.5", "port": 8022}))
    event_socket = written["autoload_configs/event_socket.conf.xml"]
    fs_cli = written["fs_cli.conf"]
    assert event_socket is not None and fs_cli is not None
    assert params(event_socket)["listen-ip"] == "10.0.0.5"
    assert params(event_socket)["listen-port"] == "8022"
    assert params(event_socket)["password"] == SECRET
    assert params(event_socket)["apply-inbound-acl"] == "esl_controller"
    assert fs_cli_login(fs_cli) == {"host": "10.0.0.5", "port": "8022", "password": SECRET}
    for text in written.values():
        assert text is None or "CHANGE-ME" not in text


def test_a_password_is_written_as_xml_reads_it_back() -> None:
    password = "p<a>s&s\"w'ord"
    written = files(settings(node={"password": password}))
    text = written["autoload_configs/event_socket.conf.xml"]
    assert text is not None and params(text)["password"] == password


def test_a_password_the_preprocessor_would_expand_is_refused() -> None:
    with pytest.raises(fsfiles.FilesError, match=r"\$\$"):
        files(settings(node={"password": "abc$${domain}def"}))


def test_a_password_anyone_can_read_is_refused_unless_placeholders_are_asked_for() -> None:
    default = settings_from_mapping(None, environ={})
    with pytest.raises(fsfiles.FilesError) as refused:
        files(default)
    assert refused.value.messages[0].startswith("freeswitch.nodes[0].password: is FreeSWITCH's")
    text = files(default, placeholders=True)["autoload_configs/event_socket.conf.xml"]
    assert text is not None and params(text)["password"] == fsfiles.PLACEHOLDER_PASSWORD


# -- userauth: the directory user ---------------------------------------------------------------


def test_with_userauth_the_directory_user_has_the_nodes_password_and_fs_cli_its_own() -> None:
    tokens = iter(["event-socket-" + "1" * 40, "sip-never-used-" + "2" * 40])
    written = fsfiles.render(
        settings(node={"user": fsfiles.DIRECTORY_USER}), token=lambda: next(tokens)
    )
    texts = {w.file.path: w.text for w in written.files}
    directory, event_socket = (
        texts["directory/esl-callback.xml"],
        texts["autoload_configs/event_socket.conf.xml"],
    )
    fs_cli = texts["fs_cli.conf"]
    assert directory is not None and event_socket is not None and fs_cli is not None
    user = params(directory)
    assert user["esl-password"] == SECRET
    assert user["password"] == "sip-never-used-" + "2" * 40
    assert params(event_socket)["password"] == "event-socket-" + "1" * 40
    assert fs_cli_login(fs_cli)["password"] == "event-socket-" + "1" * 40


def test_the_random_passwords_are_new_each_time() -> None:
    userauth = settings(node={"user": fsfiles.DIRECTORY_USER})
    first, second = files(userauth), files(userauth)
    path = "directory/esl-callback.xml"
    assert params(first[path] or "")["password"] != params(second[path] or "")["password"]
    assert len(params(first[path] or "")["password"]) >= 32


def test_without_userauth_no_directory_user_is_written() -> None:
    result = fsfiles.render(settings())
    (directory,) = [w for w in result.files if w.file is fsfiles.DIRECTORY]
    assert directory.text is None and "user is not set" in directory.note


def test_another_userauth_login_is_refused() -> None:
    with pytest.raises(fsfiles.FilesError, match=r"nodes\[0\]\.user: is esl@example\.com"):
        files(settings(node={"user": "esl@example.com"}))


# -- SMS ----------------------------------------------------------------------------------------


def test_the_chatplan_takes_the_sms_numbers_as_e164_digits() -> None:
    written = files(
        settings(numbers={"country_code": "49"}, sms={"numbers": ["030100300", "+49 30 100 400"]})
    )
    text = written["chatplan/esl-callback.xml"]
    assert text is not None
    (condition,) = ET.fromstring(text).iter("condition")
    assert condition.get("field") == "to_user"
    assert condition.get("expression") == r"^\+?(4930100300|4930100400)$"


def test_no_chatplan_without_sms_numbers() -> None:
    assert files(settings())["chatplan/esl-callback.xml"] is None


# -- the ACL ------------------------------------------------------------------------------------


def acl(text: str | None) -> list[str]:
    assert text is not None
    root = ET.fromstring(f"<snippet>{text}</snippet>")
    return [node.get("cidr", "") for node in root.iter("node")]


def test_a_switch_on_another_host_lets_in_the_controller_it_is_told_about() -> None:
    result = fsfiles.render(
        settings(
            node={"host": "10.0.0.5"},
            outbound={"bind": "10.0.0.9", "allow": ["10.0.0.5/32"]},
        )
    )
    texts = {w.file.path: w.text for w in result.files}
    assert acl(texts["autoload_configs/acl.conf.xml.snippet"]) == [
        "127.0.0.1/32",
        "10.0.0.5/32",
        "10.0.0.9/32",
    ]
    assert result.warnings == []


def test_it_warns_of_a_controller_address_it_cannot_know_and_of_a_switch_not_allowed() -> None:
    result = fsfiles.render(settings(node={"host": "10.0.0.5"}, outbound={"bind": "0.0.0.0"}))
    assert any("add it to the esl_controller list" in w for w in result.warnings)
    assert any("outbound.allow does not include 10.0.0.5" in w for w in result.warnings)
    assert any("connect calls to 127.0.0.1:8084, its own loopback" in w for w in result.warnings)


# -- the command ---------------------------------------------------------------------------------


def write_config(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_the_command_writes_the_files_in_conf_layout_secrets_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path,
        {
            "freeswitch": {"nodes": [{"name": "fs1", "password": SECRET}]},
            "outbound": {"port": 9084},
        },
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["freeswitch", "files", "-c", config, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}/dialplan/public/00_esl-callback.xml: socket 127.0.0.1:9084 async full" in (
        result.output
    )
    dialplan = (out / "dialplan/public/00_esl-callback.xml").read_text()
    assert socket_actions(dialplan) == ["127.0.0.1:9084 async full"] * 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path, secret in (
        ("autoload_configs/event_socket.conf.xml", True),
        ("fs_cli.conf", True),
        ("dialplan/public/00_esl-callback.xml", False),
    ):
        assert stat.S_IMODE((out / path).stat().st_mode) == (0o600 if secret else 0o644), path
    assert not (out / "directory").exists()


def test_the_command_refuses_a_public_password_and_says_which(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"freeswitch": {"nodes": [{"name": "fs1"}]}})
    result = CliRunner().invoke(main, ["freeswitch", "files", "-c", config])
    assert result.exit_code == 1
    assert "error: freeswitch.nodes[0].password: is FreeSWITCH's default" in result.output


def test_the_command_needs_a_node_name_with_several_nodes(tmp_path: Path) -> None:
    nodes = [
        {"name": "fs1", "password": SECRET},
        {"name": "fs2", "host": "10.0.0.6", "password": SECRET},
    ]
    config = write_config(tmp_path, {"freeswitch": {"nodes": nodes}})
    refused = CliRunner().invoke(main, ["freeswitch", "files", "-c", config])
    assert refused.exit_code == 1 and "pick one with --node NAME" in refused.output
    printed = CliRunner().invoke(main, ["freeswitch", "files", "-c", config, "--node", "fs2"])
    assert printed.exit_code == 0, printed.output
    assert "==> autoload_configs/event_socket.conf.xml <==" in printed.output
    assert '<param name="listen-ip" value="10.0.0.6"/>' in printed.output


# -- the switch's CDRs (mod_json_cdr) -------------------------------------------------------------

CDR_PASSWORD = "cdr-password-0123456789abcdef"


def test_json_cdr_posts_to_the_portal_with_the_cdr_login_and_retries() -> None:
    text = files(
        settings(
            web={"bind": "192.0.2.10", "port": 8443},
            cdr={"enabled": True, "password": CDR_PASSWORD, "retries": 4, "delay_seconds": 3},
        )
    )["autoload_configs/json_cdr.conf.xml"]
    values = params(text)
    assert values["url"] == "http://192.0.2.10:8443/api/v1/switch/cdr"
    assert values["cred"] == f"freeswitch:{CDR_PASSWORD}"
    assert (values["auth-scheme"], values["encode"]) == ("basic", "false")
    assert values["log-b-leg"] == "true"
    assert (values["retries"], values["delay"], values["timeout"]) == ("4", "3", "5")
    assert values["err-log-dir"] == "/var/log/freeswitch/json_cdr"


def test_json_cdr_url_is_cdr_url_when_the_switch_reaches_the_portal_elsewhere() -> None:
    text = files(
        settings(
            cdr={"enabled": True, "password": CDR_PASSWORD, "url": "https://cb.example.net:8443"}
        )
    )["autoload_configs/json_cdr.conf.xml"]
    assert params(text)["url"] == "https://cb.example.net:8443/api/v1/switch/cdr"


def test_no_json_cdr_while_the_cdr_endpoint_is_off() -> None:
    assert files(settings())["autoload_configs/json_cdr.conf.xml"] is None


def test_a_cdr_password_anyone_can_read_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cdr\.password: is the placeholder"):
        settings(cdr={"enabled": True, "password": fsfiles.PLACEHOLDER_CDR_PASSWORD})
