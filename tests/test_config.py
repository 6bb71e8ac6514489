"""Configuration: YAML -> typed settings, every error with its key path, secrets, warnings."""

import dataclasses
import re
import typing
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_callback.config import (
    KNOWN_PUBLIC_SECRETS,
    ConfigError,
    NodeSettings,
    Settings,
    config_warnings,
    load_config,
    settings_from_mapping,
    settings_to_dict,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
NO_ENV: dict[str, str] = {}
# The example's gateway token is public, so loading the example as shipped fails: the tests that
# load it give the gateway a token of their own, where the example's comment says to.
EXAMPLE_ENV = {"ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN": "test-gateway-token-0123456789"}
STRONG_SECRET = "k3Jx9vQ2mL7pR4tW8yZ1aB5cD6eF0gH2"

# A configuration without any warning (used where warnings would get in the way).
CLEAN = {
    "freeswitch": {"nodes": [{"name": "fs1", "password": "s3cret-esl"}]},
    "web": {"secret": STRONG_SECRET},
}


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, NO_ENV if environ is None else environ)


def errors_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text, environ)
    return caught.value.messages


def mapping_errors(data: dict, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(data, NO_ENV if environ is None else environ)
    return caught.value.messages


# --- defaults and the example file -----------------------------------------------------------


def test_no_file_gives_the_defaults() -> None:
    settings = load_config(None, NO_ENV)
    assert settings == Settings.default()
    assert settings.freeswitch.nodes[0].port == 8021
    assert settings.outbound.port == 8084
    assert settings.database.url == "sqlite:///esl-callback.db"
    assert settings.callback.delay_seconds == 3.0
    assert settings.callback.trigger_hangup_cause == "USER_BUSY"
    assert settings.numbers.national_prefix == "0"
    assert settings.numbers.international_prefix == "00"
    assert settings.billing.rounding == "ROUND_HALF_UP"


def test_empty_file_and_empty_sections_give_the_defaults(tmp_path: Path) -> None:
    assert load_text(tmp_path, "") == Settings.default()
    assert load_text(tmp_path, "web:\ncallback:\n") == Settings.default()


def test_settings_are_frozen() -> None:
    settings = Settings.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.web.port = 1  # type: ignore[misc]


def test_example_config_loads_without_errors() -> None:
    load_config(EXAMPLE, EXAMPLE_ENV)


def _setting_paths(cls: type, prefix: str = "") -> set[str]:
    """Every key path a section class accepts (list items as `key[]`)."""
    paths = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, path = hints[f.name], f"{prefix}{f.name}"
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
        if dataclasses.is_dataclass(hint):
            paths |= _setting_paths(hint, f"{path}.")
        elif item is not None and dataclasses.is_dataclass(item):
            paths |= _setting_paths(item, f"{path}[].")
        else:
            paths.add(path)
    return paths


def _example_paths(data: object, prefix: str = "") -> set[str]:
    if isinstance(data, dict):
        paths = set()
        for key, value in data.items():
            nested = _example_paths(value, f"{prefix}{key}.")
            paths |= nested if nested else {f"{prefix}{key}"}
        return paths
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        return set().union(*(_example_paths(item, f"{prefix[:-1]}[].") for item in data))
    return set()


def test_example_config_sets_every_key() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    assert _example_paths(example) == _setting_paths(Settings)


def test_example_config_comments_every_key() -> None:
    lines = EXAMPLE.read_text().splitlines()
    uncommented = [
        line
        for number, line in enumerate(lines)
        if re.match(r"\s*(- )?[a-z_]+:", line)
        and "#" not in line
        and not lines[number - 1].strip().startswith("#")
    ]
    assert uncommented == []


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_example_config_values_are_the_defaults_except_examples() -> None:
    example = _flatten(settings_to_dict(load_config(EXAMPLE, EXAMPLE_ENV), masked=False))
    default = _flatten(settings_to_dict(Settings.default(), masked=False))
    differing = {key for key in default if example[key] != default[key]}
    assert differing == {"routes", "sms.gateways"}


# --- errors ----------------------------------------------------------------------------------


def test_bad_port_error_names_key_path_value_and_line(tmp_path: Path) -> None:
    text = "freeswitch:\n  nodes:\n    - name: fs1\n      port: abc\n"
    assert errors_of(tmp_path, text) == [
        'freeswitch.nodes[0].port: expected an integer 1-65535, got "abc" (line 4)'
    ]


def test_every_error_is_reported_in_file_order(tmp_path: Path) -> None:
    text = """\
freeswitch:
  nodes:
    - name: fs1
      port: 0
web:
  port: 70000
  enabled: maybe
callback:
  delay_seconds: -1
logging:
  level: LOUD
"""
    assert errors_of(tmp_path, text) == [
        "freeswitch.nodes[0].port: expected an integer 1-65535, got 0 (line 4)",
        "web.port: expected an integer 1-65535, got 70000 (line 6)",
        'web.enabled: expected true or false, got "maybe" (line 7)',
        "callback.delay_seconds: expected a number of seconds 0-300, got -1 (line 9)",
        "logging.level: expected one of: DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        'got "LOUD" (line 11)',
    ]


def test_unknown_key_suggests_the_closest_known_key(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "web:\n  prot: 8080\n") == [
        'web.prot: unknown key (did you mean "port"?) (line 2)'
    ]


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path: Path) -> None:
    (message,) = errors_of(tmp_path, "database:\n  zzz: 1\n")
    assert message == "database.zzz: unknown key (known keys: url, pool_size) (line 2)"


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    (message,) = errors_of(tmp_path, "freeswich:\n  nodes: []\n")
    assert message == 'freeswich: unknown key (did you mean "freeswitch"?) (line 1)'


def test_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    text = "web:\n  port: 8080\n  bind: 127.0.0.1\n  port: 8081\n"
    assert errors_of(tmp_path, text) == ["web.port: duplicate key (also at line 2) (line 4)"]


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    (message,) = errors_of(tmp_path, "web:\n  port: 8080\n bind: [127.0.0.1\n")
    assert message.startswith(f"{tmp_path / 'config.yaml'}: YAML syntax error at line 3, column")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", NO_ENV)
    assert caught.value.messages == [f"{tmp_path / 'nope.yaml'}: file not found"]


def test_absurdly_nested_yaml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "[" * 5000) == [
        f"{tmp_path / 'config.yaml'}: YAML nested too deeply"
    ]


def test_aliases_are_not_expanded_into_a_bomb(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]"
        for p, n in zip("abcdefg", "bcdefgh", strict=True)
    ]
    messages = errors_of(tmp_path, "\n".join(levels) + "\n")
    assert len(messages) == 8
    assert messages[0].startswith("a: unknown key")


def test_python_tags_are_refused_by_the_safe_loader(tmp_path: Path) -> None:
    (message,) = errors_of(tmp_path, "web: !!python/object/apply:os.system ['true']\n")
    assert "YAML syntax error at line 1" in message
    assert "could not determine a constructor" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- web\n", "expected a mapping of settings (key: value), got a list"),
        ("web: 8080\n", "web: expected a mapping of settings (key: value), got 8080 (line 1)"),
        ("routes: {}\n", "routes: expected a list, got a mapping (line 1)"),
    ],
)
def test_wrong_shapes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    assert errors_of(tmp_path, text) == [expected]


def test_unquoted_digits_are_refused_with_a_hint(tmp_path: Path) -> None:
    (message,) = errors_of(tmp_path, "numbers:\n  international_prefix: 00\n")
    assert message == (
        'numbers.international_prefix: expected 1-4 digits in quotes, e.g. "00" (unquoted, YAML '
        "reads digits as a number and drops leading zeros), got 0 (line 2)"
    )


def test_a_boolean_is_not_an_integer() -> None:
    assert mapping_errors({"web": {"port": True}}) == [
        "web.port: expected an integer 1-65535, got true"
    ]


def test_missing_required_keys_are_named() -> None:
    assert mapping_errors({"routes": [{"prefix": "44"}], "sms": {"gateways": [{}]}}) == [
        "routes[0].template: required but missing",
        "sms.gateways[0].name: required but missing",
        "sms.gateways[0].token: required but missing",
    ]


def test_node_names_must_be_unique_and_nodes_not_empty() -> None:
    nodes = [{"name": "fs1"}, {"name": "fs2"}, {"name": "fs1", "port": "x"}]
    assert mapping_errors({"freeswitch": {"nodes": nodes}}) == [
        'freeswitch.nodes[2].port: expected an integer 1-65535, got "x"',
        'freeswitch.nodes[2].name: duplicate "fs1" (same as freeswitch.nodes[0])',
    ]
    assert mapping_errors({"freeswitch": {"nodes": []}}) == [
        "freeswitch.nodes: expected at least 1 item(s), got 0"
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"numbers": {"min_length": 12, "max_length": 8}},
            "numbers.max_length: must not be below min_length",
        ),
        (
            {"numbers": {"national_prefix": "00"}},
            "numbers.international_prefix: must differ from national_prefix",
        ),
        (
            {"freeswitch": {"reconnect_min_seconds": 60, "reconnect_max_seconds": 5}},
            "freeswitch.reconnect_max_seconds: must not be below reconnect_min_seconds",
        ),
        (
            {"billing": {"allow_prefixes": ["44", "1"], "deny_prefixes": ["44"]}},
            "billing.deny_prefixes: also in allow_prefixes: 44",
        ),
        (
            {"web": {"port": 8084}},
            "web.port: same as outbound.port (8084); the two servers need their own",
        ),
        (
            {"routes": [{"template": "loopback/{number}/a"}, {"template": "user/{number}"}]},
            'routes[1].prefix: duplicate "" (same as routes[0])',
        ),
    ],
)
def test_settings_that_contradict_each_other_are_errors(data: dict, expected: str) -> None:
    assert mapping_errors(data) == [expected]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (  # the default min_length 7 in place of "x" would contradict max_length 5
            {"numbers": {"min_length": "x", "max_length": 5, "national_prefix": "00"}},
            [
                'numbers.min_length: expected an integer 3-15, got "x"',
                "numbers.international_prefix: must differ from national_prefix",
            ],
        ),
        (  # the default web.port 8080 in place of "x" would clash with outbound.port
            {
                "web": {"port": "x", "bind": "0.0.0.0"},
                "outbound": {"port": 8080},
                "numbers": {"min_length": 12, "max_length": 8, "country_code": "abc"},
            },
            [
                'web.port: expected an integer 1-65535, got "x"',
                'numbers.country_code: expected 1-3 digits in quotes, e.g. "44", got "abc"',
                "numbers.max_length: must not be below min_length",
            ],
        ),
        (  # the default reconnect_min_seconds 1 in place of "x" would exceed the maximum 0.5
            {
                "freeswitch": {"reconnect_min_seconds": "x", "reconnect_max_seconds": 0.5},
                "web": {"port": 8084},
            },
            [
                'freeswitch.reconnect_min_seconds: expected a number of seconds 0.1-3600, got "x"',
                "web.port: same as outbound.port (8084); the two servers need their own",
            ],
        ),
        (
            {"routes": [{"prefix": "x", "template": "sofia/gateway/{gateway}/{number}"}]},
            [
                'routes[0].prefix: expected 0-15 digits in quotes, e.g. "44", got "x"',
                "routes[0].gateway: required because the template uses {gateway}",
            ],
        ),
    ],
)
def test_contradictions_are_reported_with_other_errors_but_never_on_a_setting_that_failed(
    data: dict, expected: list[str]
) -> None:
    assert mapping_errors(data) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("sofia/gateway/{gw}/{number}", "unknown placeholder {gw}"),
        ("sofia/x/{number!r}", "unknown placeholder {number!r}"),
        ("sofia/x/{number:>20}", "unknown placeholder {number:>20}"),
        ("{ignore_early_media=true}user/{number}", "unknown placeholder {ignore_early_media=true}"),
        ("loopback/1000/phones", "must contain the {number} placeholder"),
        ("sofia/x/{number", "is not a valid template"),
        ("sofia/x/{number} &park()", "expected a dial-string template without spaces"),
        ("sofia/gateway/{gateway}/{number}", "routes[0].gateway: required because the template"),
    ],
)
def test_route_templates_are_checked(template: str, expected: str) -> None:
    (message,) = mapping_errors({"routes": [{"template": template}]})
    assert expected in message


def test_route_templates_accept_known_placeholders() -> None:
    routes = [
        {"prefix": "", "template": "sofia/gateway/{gateway}/{number}", "gateway": "carrier"},
        {"prefix": "1555", "template": "loopback/{number}/phones"},
        {"prefix": "15550", "template": "user/{number}"},
    ]
    settings = settings_from_mapping({"routes": routes}, NO_ENV)
    assert settings.route_for("15550001001").template == "user/{number}"
    assert settings.route_for("15551231234").template == "loopback/{number}/phones"
    assert settings.route_for("442079460000").gateway == "carrier"


@pytest.mark.parametrize(
    "template",
    [
        "{{ignore_early_media=true}}sofia/gateway/{gateway}/{number}",
        "[[leg_timeout=20]]sofia/gateway/{gateway}/{number}",
        "user/{number},user/9",
        "sofia/gateway/{gateway}/{number}|sofia/gateway/backup/{number}",
    ],
)
def test_a_route_template_the_dialer_would_refuse_fails_the_check(template: str) -> None:
    """`config check` saying OK means every callback on the route can be dialled: the dialer
    refuses these (a variable block, more than one channel) at call time."""
    (message,) = mapping_errors({"routes": [{"template": template, "gateway": "carrier"}]})
    assert "must dial one channel" in message
    assert "ignore_early_media" in message


def test_route_for_is_none_without_a_default_route() -> None:
    routes = [{"prefix": "44", "template": "user/{number}"}]
    assert settings_from_mapping({"routes": routes}, NO_ENV).route_for("1555") is None


def test_names_are_normalised_where_freeswitch_has_one_spelling() -> None:
    data = {
        "callback": {"trigger_hangup_cause": "user_busy"},
        "billing": {"rounding": "half_even"},
        "logging": {"level": "debug", "format": "JSON"},
    }
    settings = settings_from_mapping(data, NO_ENV)
    assert settings.callback.trigger_hangup_cause == "USER_BUSY"
    assert settings.billing.rounding == "ROUND_HALF_EVEN"
    assert (settings.logging.level, settings.logging.format) == ("DEBUG", "json")


def test_unknown_hangup_cause_is_refused() -> None:
    assert mapping_errors({"callback": {"reject_cause": "GO_AWAY"}}) == [
        'callback.reject_cause: expected a FreeSWITCH hangup cause such as USER_BUSY, got "GO_AWAY"'
    ]


def test_money_is_an_exact_decimal(tmp_path: Path) -> None:
    settings = load_text(tmp_path, 'billing:\n  low_balance_threshold: "0.10"\n')
    assert settings.billing.low_balance_threshold == Decimal("0.10")
    settings = load_text(tmp_path, "billing:\n  low_balance_threshold: 0.1\n")
    assert settings.billing.low_balance_threshold == Decimal("0.1")
    assert mapping_errors({"billing": {"low_balance_threshold": "ten"}}) == [
        'billing.low_balance_threshold: expected an amount >= 0, such as 1.50, got "ten"'
    ]


# --- outbound server -------------------------------------------------------------------------


def test_outbound_serves_only_allowed_peers() -> None:
    outbound = settings_from_mapping(
        {"outbound": {"allow": ["192.0.2.0/24", "2001:db8::1"]}}, NO_ENV
    ).outbound
    assert outbound.allows("192.0.2.77")
    assert outbound.allows("2001:db8::1")
    assert not outbound.allows("198.51.100.1")
    assert not outbound.allows("127.0.0.1")
    assert not outbound.allows("not-an-address")
    assert outbound.allows("::ffff:192.0.2.77")  # IPv4 peer on a dual-stack listener
    assert Settings.default().outbound.allows("127.0.0.1")
    assert not Settings.default().outbound.allows("192.0.2.1")
    open_server = settings_from_mapping({"outbound": {"allow": []}}, NO_ENV).outbound
    assert open_server.allows("198.51.100.1")


def test_allow_entries_must_be_networks() -> None:
    assert mapping_errors({"outbound": {"allow": ["10.0.0.1/8", "example.com"]}}) == [
        "outbound.allow[0]: expected an IP address or network such as 192.0.2.0/24 "
        '(10.0.0.1/8 has host bits set), got "10.0.0.1/8"',
        "outbound.allow[1]: expected an IP address or network such as 192.0.2.0/24 "
        "('example.com' does not appear to be an IPv4 or IPv6 network), got \"example.com\"",
    ]


@pytest.mark.parametrize(
    ("outbound", "address"),
    [
        ({}, "127.0.0.1:8084"),
        ({"bind": "0.0.0.0", "port": 9000}, "127.0.0.1:9000"),
        ({"bind": "192.0.2.5"}, "192.0.2.5:8084"),
        (
            {"bind": "0.0.0.0", "advertise": "controller.example.net:8084"},
            "controller.example.net:8084",
        ),
    ],
)
def test_socket_address_is_where_freeswitch_connects(outbound: dict, address: str) -> None:
    settings = settings_from_mapping({"outbound": outbound}, NO_ENV)
    assert settings.outbound.socket_address == address


# --- secrets ---------------------------------------------------------------------------------


def test_secret_values_never_appear_in_error_messages() -> None:
    data = {
        "freeswitch": {"nodes": [{"name": "fs1", "password": "hunter2 hunter3"}]},
        "database": {"url": "mysql://admin:TopSecret@db/x"},
        "sms": {"gateways": [{"name": "g", "token": "tiny-secret"}]},
        "web": {"secret": 12345678},
    }
    messages = "\n".join(mapping_errors(data))
    for secret in ("hunter2", "TopSecret", "tiny-secret", "12345678"):
        assert secret not in messages
    assert 'got "mysql://admin:********@db/x"' in messages


def test_settings_to_dict_masks_secrets() -> None:
    data = {
        **CLEAN,
        "database": {"url": "postgresql://cb:pw-in-url@db.example.net/cb"},
        "sms": {"gateways": [{"name": "g1", "token": "0123456789abcdef-token"}]},
    }
    shown = settings_to_dict(settings_from_mapping(data, NO_ENV))
    assert shown["freeswitch"]["nodes"][0]["password"] == "********"
    assert shown["web"]["secret"] == "********"
    assert shown["database"]["url"] == "postgresql://cb:********@db.example.net/cb"
    assert shown["sms"]["gateways"][0]["token"] == "********"
    assert "pw-in-url" not in yaml.safe_dump(shown)
    assert settings_to_dict(Settings.default())["web"]["secret"] == ""


def test_unmasked_dict_loads_back_to_equal_settings() -> None:
    settings = load_config(EXAMPLE, EXAMPLE_ENV)
    plain = yaml.safe_load(yaml.safe_dump(settings_to_dict(settings, masked=False)))
    assert settings_from_mapping(plain, NO_ENV) == settings


# --- environment overrides -------------------------------------------------------------------


def test_the_example_gateway_token_is_refused_naming_its_key_and_how_to_make_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, NO_ENV)
    assert caught.value.messages == [
        "sms.gateways[0].token: is the example token of config.example.yaml, which anyone can "
        "read: generate one (e.g. `python3 -c 'import secrets; print(secrets.token_hex(32))'`) "
        "and set it here (or in ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN) and in the gateway"
    ]


def test_the_example_files_gateway_token_is_listed_as_a_public_secret() -> None:
    """A new placeholder in the example must join KNOWN_PUBLIC_SECRETS, or it works as a token."""
    example = yaml.safe_load(EXAMPLE.read_text())
    tokens = [gateway["token"] for gateway in example["sms"]["gateways"]]
    assert tokens and all(token in KNOWN_PUBLIC_SECRETS for token in tokens)


def test_a_public_secret_is_refused_as_gateway_token_from_the_file_or_the_environment() -> None:
    gateways = [
        {"name": "phone1", "token": "private-token-0123456789"},
        {"name": "phone2", "token": "CHANGE-ME-long-random-secret"},
    ]
    environ = {"ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN": "example-token-change-me-0000"}
    messages = mapping_errors({"sms": {"gateways": gateways}}, environ)
    assert [message.split(":")[0] for message in messages] == [
        "sms.gateways[0].token",
        "sms.gateways[1].token",
    ]
    assert "is the placeholder of event_socket.conf.xml, which anyone can read" in messages[1]
    assert "ESL_CALLBACK_SMS_GATEWAY_PHONE2_TOKEN" in messages[1]


def test_the_environment_may_replace_the_examples_gateway_token() -> None:
    settings = load_config(EXAMPLE, EXAMPLE_ENV)
    assert settings.sms.gateways[0].token == EXAMPLE_ENV["ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN"]


def test_environment_overrides_the_secrets(tmp_path: Path) -> None:
    text = "freeswitch:\n  nodes:\n    - name: fs1\n    - name: fs-2\n"
    environ = {
        "ESL_CALLBACK_DATABASE_URL": "postgresql://cb@db.example.net/cb",
        "ESL_CALLBACK_WEB_SECRET": STRONG_SECRET,
        "ESL_CALLBACK_ESL_PASSWORD": "everywhere",
        "ESL_CALLBACK_NODE_FS_2_PASSWORD": "only-fs-2",
    }
    settings = load_text(tmp_path, text, environ)
    assert settings.database.url == "postgresql://cb@db.example.net/cb"
    assert settings.web.secret == STRONG_SECRET
    assert [node.password for node in settings.freeswitch.nodes] == ["everywhere", "only-fs-2"]


def test_environment_applies_without_a_file() -> None:
    settings = load_config(None, {"ESL_CALLBACK_NODE_FS1_PASSWORD": "from-env"})
    assert settings.freeswitch.nodes == (NodeSettings(name="fs1", password="from-env"),)


def test_sms_gateway_token_from_environment() -> None:
    data = {"sms": {"gateways": [{"name": "phone1", "token": "x" * 16}]}}
    environ = {"ESL_CALLBACK_SMS_GATEWAY_PHONE1_TOKEN": "y" * 20}
    assert settings_from_mapping(data, environ).sms.gateways[0].token == "y" * 20


def test_invalid_environment_values_name_the_variable() -> None:
    environ = {"ESL_CALLBACK_DATABASE_URL": "mysql://u:pw@h/db", "ESL_CALLBACK_ESL_PASSWORD": ""}
    assert mapping_errors({}, environ) == [
        "freeswitch.nodes[0].password (from ESL_CALLBACK_ESL_PASSWORD): expected a non-empty "
        'password without spaces or control characters, got ""',
        "database.url (from ESL_CALLBACK_DATABASE_URL): expected sqlite:///FILE or "
        'postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, got "mysql://u:********@h/db"',
    ]


def test_environment_variable_for_an_unknown_node_is_an_error() -> None:
    environ = {"ESL_CALLBACK_NODE_FS9_PASSWORD": "x", "ESL_CALLBACK_SMS_GATEWAY_X_TOKEN": "y"}
    assert mapping_errors({}, environ) == [
        "ESL_CALLBACK_NODE_FS9_PASSWORD: names no configured node (configured: fs1)",
        "ESL_CALLBACK_SMS_GATEWAY_X_TOKEN: names no configured SMS gateway (configured: none)",
    ]


# --- warnings --------------------------------------------------------------------------------


def test_clean_configuration_has_no_warnings() -> None:
    assert config_warnings(settings_from_mapping(CLEAN, NO_ENV)) == []


def test_warns_about_freeswitch_default_password() -> None:
    (warning,) = config_warnings(settings_from_mapping({**CLEAN, "freeswitch": {}}, NO_ENV))
    assert warning.startswith('freeswitch.nodes[0].password: is FreeSWITCH\'s default "ClueCon"')


@pytest.mark.parametrize("allow", [[], ["0.0.0.0/0"]])
def test_warns_when_outbound_listens_beyond_loopback_for_anyone(allow: list[str]) -> None:
    outbound = {"bind": "192.0.2.5", "allow": allow}
    (warning,) = config_warnings(settings_from_mapping({**CLEAN, "outbound": outbound}, NO_ENV))
    assert warning.startswith("outbound.allow: the outbound server listens on 192.0.2.5:8084")


def test_no_outbound_warning_with_an_allow_list_or_on_loopback() -> None:
    for outbound in ({"bind": "192.0.2.5", "allow": ["192.0.2.10"]}, {"allow": []}):
        settings = settings_from_mapping({**CLEAN, "outbound": outbound}, NO_ENV)
        assert config_warnings(settings) == []


def test_warns_when_outbound_binds_everywhere_without_advertise() -> None:
    outbound = {"bind": "0.0.0.0", "allow": ["192.0.2.10"]}
    (warning,) = config_warnings(settings_from_mapping({**CLEAN, "outbound": outbound}, NO_ENV))
    assert warning.startswith("outbound.advertise: not set while outbound.bind is 0.0.0.0")


@pytest.mark.parametrize(
    ("secret", "start"),
    [
        ("", "web.secret: not set"),
        ("change-me", "web.secret: is a placeholder"),
        ("short-but-not-a-placeholder", "web.secret: only 27 characters"),
    ],
)
def test_warns_about_a_weak_web_secret(secret: str, start: str) -> None:
    data = {**CLEAN, "web": {"secret": secret}}
    (warning,) = config_warnings(settings_from_mapping(data, NO_ENV))
    assert warning.startswith(start)


def test_no_web_secret_warning_when_the_portal_is_off() -> None:
    data = {**CLEAN, "web": {"enabled": False}}
    assert config_warnings(settings_from_mapping(data, NO_ENV)) == []


def test_warns_about_insecure_cookies_beyond_loopback() -> None:
    data = {**CLEAN, "web": {"secret": STRONG_SECRET, "bind": "0.0.0.0", "secure_cookies": False}}
    (warning,) = config_warnings(settings_from_mapping(data, NO_ENV))
    assert warning.startswith("web.secure_cookies: false while the portal listens on 0.0.0.0")


def test_warns_without_a_default_route() -> None:
    data = {**CLEAN, "routes": [{"prefix": "44", "template": "user/{number}"}]}
    assert config_warnings(settings_from_mapping(data, NO_ENV)) == [
        'routes: no default route (prefix ""): numbers that match no prefix cannot be dialled'
    ]


# --- robustness ------------------------------------------------------------------------------

SECTION_KEYS = list(settings_to_dict(Settings.default()))
SOME_KEYS = st.sampled_from(
    [*SECTION_KEYS, "nodes", "name", "port", "template", "gateways", "token", "allow", "url"]
)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=30)
)
YAML_DATA = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(SOME_KEYS | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(SECTION_KEYS), YAML_DATA, max_size=6))
def test_any_data_gives_settings_or_a_config_error(data: dict) -> None:
    try:
        settings_from_mapping(data, NO_ENV)
    except ConfigError as error:
        assert error.messages
        assert all(isinstance(m, str) and m and "\n" not in m for m in error.messages)


def test_the_controller_url_is_an_address_with_nothing_after_the_port() -> None:
    for good in ("http://127.0.0.1:8080", "https://controller.example:8443/", "http://[::1]:80"):
        web = settings_from_mapping({"web": {"controller_url": good}}, NO_ENV).web
        assert web.controller_url == good
    assert settings_from_mapping({}, NO_ENV).web.controller_url is None
    for bad in ("127.0.0.1:8080", "ftp://host", "http://host:8080/api", "http://u:p@host", 8080):
        (message,) = mapping_errors({"web": {"controller_url": bad}})
        assert message.startswith("web.controller_url: expected the http:// or https:// address")


# --- the service's SMS numbers ---------------------------------------------------------------


def test_sms_is_off_until_the_services_numbers_are_listed() -> None:
    assert Settings.default().sms.enabled is False
    assert mapping_errors({"sms": {"enabled": True}}) == [
        "sms.numbers: required while sms.enabled is true: list the numbers SMS to the service "
        "arrive on (those of the to_user pattern of chatplan/esl-callback.xml and of your "
        "gateways). FreeSWITCH also reports the SIP MESSAGEs its users send each other; only "
        "SMS to these numbers are acted on. Or set sms.enabled: false"
    ]


def test_sms_numbers_are_quoted_numbers_valid_under_the_numbers_section(tmp_path: Path) -> None:
    text = """\
numbers:
  country_code: "49"
sms:
  enabled: true
  numbers: ["+49 30 100300", "030-100400", +4930100500, "12", "0800 CALLME"]
"""
    assert errors_of(tmp_path, text) == [
        'sms.numbers[2]: expected a phone number in quotes, e.g. "+4930100300" (unquoted, '
        "YAML reads it as an integer: a leading + or 0 is lost or read as octal), got 4930100500 "
        "(line 5)",
        'sms.numbers[4]: expected a phone number in quotes, e.g. "+4930100300", '
        'got "0800 CALLME" (line 5)',
    ]
    text = text.replace(', +4930100500, "12", "0800 CALLME"', ', "12"')
    assert errors_of(tmp_path, text) == [
        'sms.numbers[2]: "12" is too short: 12 has 2 digits and a phone number has at least 7 '
        "(read with the numbers section) (line 3)"
    ]
    loaded = load_text(tmp_path, text.replace(', "12"', ""))
    assert loaded.sms.numbers == ("+49 30 100300", "030-100400")


# --- how amounts are said --------------------------------------------------------------------


def test_currency_sounds_name_each_currency_once_and_cannot_be_empty() -> None:
    euro = {"currency": "EUR", "units": "my/euro.wav", "cents": "my/cents.wav"}
    assert mapping_errors({"ivr": {"currency_sounds": [euro, {**euro, "units": "x.wav"}]}}) == [
        'ivr.currency_sounds[1].currency: duplicate "EUR" (same as ivr.currency_sounds[0])'
    ]
    assert mapping_errors({"ivr": {"currency_sounds": []}}) == [
        "ivr.currency_sounds: expected at least 1 item(s), got 0"
    ]
    assert mapping_errors({"ivr": {"currency_sounds": [{**euro, "currency": "euro"}]}}) == [
        "ivr.currency_sounds[0].currency: expected a three-letter currency code such as EUR, "
        'got "euro"'
    ]
    ivr = settings_from_mapping({"ivr": {"currency_sounds": [euro]}}, NO_ENV).ivr
    assert (ivr.currency_sounds[0].unit, ivr.negative) == (None, "currency/negative.wav")


# --- well-known ESL passwords ----------------------------------------------------------------

FREESWITCH_SNIPPETS = Path(__file__).resolve().parent.parent / "freeswitch"


def _shipped_esl_passwords() -> list[str]:
    """The ESL password values of the shipped FreeSWITCH snippets (placeholders to replace)."""
    event_socket = FREESWITCH_SNIPPETS / "autoload_configs" / "event_socket.conf.xml"
    directory = FREESWITCH_SNIPPETS / "directory" / "esl-callback.xml"
    return [
        *re.findall(r'name="password" value="([^"]+)"', event_socket.read_text()),
        *re.findall(r'name="esl-password" value="([^"]+)"', directory.read_text()),
    ]


def test_the_shipped_placeholder_esl_passwords_are_warned_about_with_how_to_make_one() -> None:
    shipped = _shipped_esl_passwords()
    assert len(shipped) == 2
    for password in shipped:
        nodes = [{"name": "fs1", "host": "192.0.2.7", "password": password}]
        (warning,) = config_warnings(
            settings_from_mapping({**CLEAN, "freeswitch": {"nodes": nodes}}, NO_ENV)
        )
        assert warning.startswith("freeswitch.nodes[0].password: is the placeholder of ")
        assert f'"{password}": anyone who reaches 192.0.2.7:8021 controls the switch' in warning
        assert "openssl rand -hex 24" in warning


@pytest.mark.parametrize(
    ("outbound", "key"),
    [
        ({"bind": "::1"}, "outbound.bind"),
        ({"advertise": "[2001:db8::1]:8084"}, "outbound.advertise"),
    ],
)
def test_an_outbound_address_freeswitch_cannot_be_told_fails_the_check(
    outbound: dict, key: str
) -> None:
    """Every leg A is sent to `&socket('<address> async full')`: an IPv6 literal would make each
    callback fail at its first originate."""
    (message,) = mapping_errors({"outbound": outbound})
    assert message.startswith(f"{key}: FreeSWITCH's socket application cannot be told")
    assert "set outbound.advertise" in message


def test_an_ipv6_bind_with_an_address_to_advertise_is_accepted() -> None:
    settings = settings_from_mapping(
        {"outbound": {"bind": "::1", "advertise": "10.0.0.5:8084"}}, NO_ENV
    )
    assert settings.outbound.socket_address == "10.0.0.5:8084"


def test_the_outbound_address_is_checked_in_the_same_run_as_another_outbound_error() -> None:
    messages = mapping_errors({"outbound": {"bind": "::1", "max_sessions": 0}})
    assert [m.split(":")[0] for m in messages] == ["outbound.max_sessions", "outbound.bind"]


# --- branding ----------------------------------------------------------------------------------


def test_branding_colours_are_read_as_hex_and_stored_as_rrggbb() -> None:
    branding = settings_from_mapping(
        {"branding": {"primary_colour": "#036", "accent_colour": "#8A3B00"}}, NO_ENV
    ).branding
    assert (branding.primary_colour, branding.accent_colour) == ("#003366", "#8a3b00")


def test_a_branding_colour_that_is_not_a_colour_says_how_to_write_one(tmp_path: Path) -> None:
    # Unquoted, YAML reads "#0b57a4" as a comment: the value is null.
    text = "branding:\n  primary_colour: blue\n  accent_colour: #b34700\n"
    assert errors_of(tmp_path, text) == [
        'branding.primary_colour: expected a colour as "#rrggbb", such as "#0b57a4" (in quotes),'
        ' got "blue" (line 2)',
        'branding.accent_colour: expected a colour as "#rrggbb", such as "#0b57a4" (in quotes),'
        " got null (line 3)",
    ]


def test_a_branding_colour_too_light_for_white_text_or_a_mark_on_white_is_refused() -> None:
    assert mapping_errors(
        {"branding": {"primary_colour": "#ffcc00", "accent_colour": "#f2a900"}}
    ) == [
        "branding.primary_colour: #ffcc00 is too light for buttons and links: its contrast with "
        "white is 1.5:1, at least 4.5:1 is needed (WCAG 2.2 AA); choose a darker colour",
        "branding.accent_colour: #f2a900 is too light for the current-page mark: its contrast "
        "with white is 2.0:1, at least 3.0:1 is needed (WCAG 2.2 AA); choose a darker colour",
    ]


def test_a_branding_logo_is_an_image_file_that_exists_or_a_web_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    Path("folder.png").mkdir()
    for good in ("logo.svg", str(tmp_path / "logo.svg"), "https://cdn.example.com/logo.png"):
        assert settings_from_mapping({"branding": {"logo": good}}, NO_ENV).branding.logo == good
    expected = "expected an image file that exists (.svg, .png, .jpg, .webp) or an https:// address"
    for bad in ("missing.png", "folder.png", "logo.txt", "http://example.com/logo.png"):
        assert mapping_errors({"branding": {"logo": bad}}) == [
            f'branding.logo: {expected}, got "{bad}"'
        ]
