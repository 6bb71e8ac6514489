"""Typed, frozen settings read from YAML; every problem is reported with its key path.

Each setting is declared once, on its dataclass, as ``Annotated[type, <kind>]``: the kind says
how the YAML value is checked and converted (and written back for ``config show``). One generic
reader walks the dataclasses, so every error has the same shape::

    freeswitch.nodes[0].port: expected an integer 1-65535, got "abc" (line 7)
    web.prot: unknown key (did you mean "port"?) (line 31)

All errors are collected before :class:`ConfigError` is raised, those of the checks across
settings (a section's ``_check_*`` methods, e.g. ``web.port`` against ``outbound.port``) too: they
run on whatever settings were read, and a check that would read one that failed is skipped (that
setting has its own error). The file is read with PyYAML's safe loader (a subclass that also
remembers line numbers and refuses duplicate keys).

Secrets may come from the environment instead of the file (the environment wins):

    ESL_CALLBACK_DATABASE_URL            database.url
    ESL_CALLBACK_WEB_SECRET              web.secret
    ESL_CALLBACK_SMTP_PASSWORD           email.password
    ESL_CALLBACK_ESL_PASSWORD            freeswitch.nodes[*].password, every node
    ESL_CALLBACK_NODE_<NAME>_PASSWORD    the password of the node named <name> (wins over the above)
    ESL_CALLBACK_SMS_GATEWAY_<NAME>_TOKEN  sms.gateways[*].token of the gateway named <name>
    ESL_CALLBACK_CDR_PASSWORD            cdr.password

<NAME> is the node or gateway name in upper case with "-" written as "_" (node "fs-1":
ESL_CALLBACK_NODE_FS_1_PASSWORD). A per-name variable that matches no node or gateway is an error.
"""

import contextlib
import dataclasses
import difflib
import functools
import ipaddress
import json
import os
import re
import string
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import yaml

from esl_callback import colours, numbers
from esl_callback.callback import rating
from esl_callback.switch import commands

FREESWITCH_DEFAULT_PASSWORD = "ClueCon"
# Secrets anyone can read, and where: FreeSWITCH's default and the placeholders this project
# publishes (the snippets freeswitch/autoload_configs/event_socket.conf.xml and
# freeswitch/directory/, config.example.yaml). An ESL password among them is a warning
# (config_warnings); an SMS gateway token among them is an error (_public_gateway_tokens).
KNOWN_PUBLIC_SECRETS = {
    FREESWITCH_DEFAULT_PASSWORD: "FreeSWITCH's default",
    "CHANGE-ME-long-random-secret": "the placeholder of event_socket.conf.xml",
    "CHANGE-ME-esl-password-long-random": "the placeholder of directory/esl-callback.xml",
    "example-token-change-me-0000": "the example token of config.example.yaml",
    "CHANGE-ME-cdr-password-long-random": "the placeholder of json_cdr.conf.xml",
}
GENERATE_SECRET = "`python3 -c 'import secrets; print(secrets.token_hex(32))'`"
ROUTE_PLACEHOLDERS = ("number", "gateway")

# Hangup causes FreeSWITCH knows by name (the Q.850 ones), usable to reject a trigger call.
HANGUP_CAUSES = (
    "UNSPECIFIED",
    "UNALLOCATED_NUMBER",
    "NO_ROUTE_TRANSIT_NET",
    "NO_ROUTE_DESTINATION",
    "CHANNEL_UNACCEPTABLE",
    "CALL_AWARDED_DELIVERED",
    "NORMAL_CLEARING",
    "USER_BUSY",
    "NO_USER_RESPONSE",
    "NO_ANSWER",
    "SUBSCRIBER_ABSENT",
    "CALL_REJECTED",
    "NUMBER_CHANGED",
    "REDIRECTION_TO_NEW_DESTINATION",
    "EXCHANGE_ROUTING_ERROR",
    "DESTINATION_OUT_OF_ORDER",
    "INVALID_NUMBER_FORMAT",
    "FACILITY_REJECTED",
    "RESPONSE_TO_STATUS_ENQUIRY",
    "NORMAL_UNSPECIFIED",
    "NORMAL_CIRCUIT_CONGESTION",
    "NETWORK_OUT_OF_ORDER",
    "NORMAL_TEMPORARY_FAILURE",
    "SWITCH_CONGESTION",
    "ACCESS_INFO_DISCARDED",
    "REQUESTED_CHAN_UNAVAIL",
    "PRE_EMPTED",
    "FACILITY_NOT_SUBSCRIBED",
    "OUTGOING_CALL_BARRED",
    "INCOMING_CALL_BARRED",
    "BEARERCAPABILITY_NOTAUTH",
    "BEARERCAPABILITY_NOTAVAIL",
    "SERVICE_UNAVAILABLE",
    "BEARERCAPABILITY_NOTIMPL",
    "CHAN_NOT_IMPLEMENTED",
    "FACILITY_NOT_IMPLEMENTED",
    "SERVICE_NOT_IMPLEMENTED",
    "INVALID_CALL_REFERENCE",
    "INCOMPATIBLE_DESTINATION",
    "INVALID_MSG_UNSPECIFIED",
    "MANDATORY_IE_MISSING",
    "MESSAGE_TYPE_NONEXIST",
    "WRONG_MESSAGE",
    "IE_NONEXIST",
    "INVALID_IE_CONTENTS",
    "WRONG_CALL_STATE",
    "RECOVERY_ON_TIMER_EXPIRE",
    "MANDATORY_IE_LENGTH_ERROR",
    "PROTOCOL_ERROR",
    "INTERWORKING",
)


T = TypeVar("T")

_PLACEHOLDER_SECRETS = {"change-me", "changeme", "change-this", "secret", "password", "example"}
_MIN_WEB_SECRET_LENGTH = 32


class ConfigError(Exception):
    """The configuration cannot be used; ``messages`` lists every problem, one line each."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


# --- the field-spec mechanism ------------------------------------------------------------------

_BAD = object()  # a value that failed validation; its error has been recorded


class _Unread(Exception):
    """A check across settings read one that failed: the check is skipped."""


class _Partial:
    """What was read of a section with errors: its valid settings, the defaults of those not
    given and its nested sections (partial too), for the checks across settings, which therefore
    read settings only (no properties or methods). Reading a setting that failed raises
    :class:`_Unread`."""

    def __init__(self, cls: type, values: dict[str, Any]) -> None:
        self._cls = cls
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise _Unread(name) from None


def _failed(value: Any) -> bool:
    """Whether a value read has errors (recorded already): invalid, or a partial section."""
    return value is _BAD or isinstance(value, _Partial)


class _Invalid(Exception):
    """A converter's complaint; the reader adds the path, the offending value and the line."""

    def __init__(self, message: str, *, show_value: bool = True) -> None:
        super().__init__(message)
        self.show_value = show_value


@dataclass(frozen=True)
class _Mask:
    """Marks a secret setting: how it is shown by ``config show`` and in error messages."""

    hide: Callable[[str], str]


@dataclass(frozen=True)
class _Where:
    """The key path (and YAML line) of the value being read."""

    path: str
    line: int | None = None
    mask: _Mask | None = None

    def child(self, key: str, line: int | None = None, mask: _Mask | None = None) -> "_Where":
        return _Where(f"{self.path}.{key}" if self.path else key, line or self.line, mask)

    def item(self, index: int, line: int | None) -> "_Where":
        return _Where(f"{self.path}[{index}]", line or self.line, self.mask)


class _Errors:
    """Collects every problem as ``path: message (line N)``."""

    def __init__(self) -> None:
        self._found: list[tuple[float, str]] = []

    def add(self, where: _Where, message: str) -> None:
        text = f"{where.path}: {message}" if where.path else message
        if where.line:
            text = f"{text} (line {where.line})"
        self._found.append((where.line or float("inf"), text))

    @property
    def messages(self) -> list[str]:
        """Every problem, in file order (those without a line, e.g. environment, last)."""
        return [text for _, text in sorted(self._found, key=lambda found: found[0])]


def _describe(raw: Any) -> str:
    """A YAML value as an error message shows it."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float | Decimal):
        return str(raw)
    if isinstance(raw, str):
        return json.dumps(raw if len(raw) <= 60 else raw[:57] + "...", ensure_ascii=False)
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    return f"a {type(raw).__name__} ({raw})"


def _shown(raw: Any, mask: _Mask | None) -> str:
    if mask is None:
        return _describe(raw)
    return _describe(mask.hide(raw)) if isinstance(raw, str) else "a hidden value"


class _Kind:
    """How one setting is read from YAML and written back as plain data."""

    def read(self, raw: Any, where: _Where, errors: _Errors) -> Any:
        raise NotImplementedError

    def plain(self, value: Any, masked: bool) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class _Scalar(_Kind):
    """A single value: ``convert`` returns the typed value or raises :class:`_Invalid`."""

    convert: Callable[[Any], Any]
    to_plain: Callable[[Any], Any] = str

    def read(self, raw: Any, where: _Where, errors: _Errors) -> Any:
        try:
            return self.convert(raw)
        except _Invalid as problem:
            got = f", got {_shown(raw, where.mask)}" if problem.show_value else ""
            errors.add(where, f"{problem}{got}")
            return _BAD

    def plain(self, value: Any, masked: bool) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return self.to_plain(value)


@dataclass(frozen=True)
class _Section(_Kind):
    """A mapping read into the dataclass ``cls``."""

    cls: type

    def read(self, raw: Any, where: _Where, errors: _Errors) -> Any:
        return _read_section(self.cls, raw, where, errors)

    def plain(self, value: Any, masked: bool) -> Any:
        return _section_to_dict(value, masked)


@dataclass(frozen=True)
class _List(_Kind):
    """A YAML list read into a tuple; ``unique`` names item attributes that must not repeat."""

    item: _Kind
    min_items: int = 0
    unique: tuple[str, ...] = ()

    def read(self, raw: Any, where: _Where, errors: _Errors) -> Any:
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            errors.add(where, f"expected a list, got {_describe(raw)}")
            return _BAD
        lines = getattr(raw, "lines", [None] * len(raw))
        items = [self.item.read(v, where.item(i, lines[i]), errors) for i, v in enumerate(raw)]
        complete = not any(_failed(item) for item in items)
        if len(items) < self.min_items:
            errors.add(where, f"expected at least {self.min_items} item(s), got {len(items)}")
            complete = False
        for attribute in self.unique:
            complete &= self._unique(attribute, raw, items, lines, where, errors)
        return tuple(items) if complete else _BAD

    def _unique(
        self, attribute: str, raw: list, items: list, lines: list, where: _Where, errors: _Errors
    ) -> bool:
        """Record each item repeating an earlier item's ``attribute`` (read, or raw if invalid)."""
        assert isinstance(self.item, _Section), "unique applies to lists of sections"
        mask = _specs(self.item.cls)[attribute].mask
        first_seen: dict[Any, int] = {}
        unique = True
        for index, (entry, item) in enumerate(zip(raw, items, strict=True)):
            if not _failed(item):
                value = getattr(item, attribute)
            else:
                value = entry.get(attribute) if isinstance(entry, dict) else None
            if not isinstance(value, str | int):
                continue
            if value in first_seen:
                unique = False
                errors.add(
                    where.item(index, lines[index]).child(attribute),
                    f"duplicate {_shown(value, mask)} (same as {where.path}[{first_seen[value]}])",
                )
            first_seen.setdefault(value, index)
        return unique

    def plain(self, value: Any, masked: bool) -> Any:
        return [self.item.plain(item, masked) for item in value]


@dataclass(frozen=True)
class _Spec:
    kind: _Kind
    mask: _Mask | None
    required: bool


@functools.cache
def _specs(cls: type) -> dict[str, _Spec]:
    """The settings of a section dataclass, from its ``Annotated`` field types."""
    hints = typing.get_type_hints(cls, include_extras=True)
    specs = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is Annotated:
            kind = next(m for m in hint.__metadata__ if isinstance(m, _Kind))
            mask = next((m for m in hint.__metadata__ if isinstance(m, _Mask)), None)
        else:
            kind, mask = _Section(hint), None
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        specs[f.name] = _Spec(kind, mask, required)
    return specs


def _key_text(key: Any) -> str:
    """A key as a path shows it: plain names as they are, anything odd quoted on one line."""
    text = str(key)
    return text if re.fullmatch(r"[\w.-]+", text, re.ASCII) else _describe(key)


def _unknown_key(key: Any, known: list[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return f"unknown key (known keys: {', '.join(known)})"


def _read_section(cls: type, raw: Any, where: _Where, errors: _Errors) -> Any:
    """Read a mapping into ``cls``, recording every unknown, missing or invalid key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.add(where, f"expected a mapping of settings (key: value), got {_describe(raw)}")
        return _BAD
    specs = _specs(cls)
    lines = getattr(raw, "lines", {})
    for key in raw:
        if key not in specs:
            errors.add(where.child(_key_text(key), lines.get(key)), _unknown_key(key, list(specs)))
    for key, first_line in getattr(raw, "duplicates", {}).items():
        errors.add(
            where.child(_key_text(key), lines.get(key)),
            f"duplicate key (also at line {first_line})",
        )
    values, complete = {}, True
    for name, spec in specs.items():
        if name not in raw:
            if spec.required:
                errors.add(where.child(name), "required but missing")
                complete = False
            continue
        value = spec.kind.read(raw[name], where.child(name, lines.get(name), spec.mask), errors)
        complete &= not _failed(value)
        if value is not _BAD:
            values[name] = value
    section = cls(**values) if complete else _Partial(cls, _defaults(cls, raw) | values)
    problems = _cross_problems(section)
    for key, message in problems:
        errors.add(where.child(key, lines.get(key.split(".")[0])), message)
    if complete and problems:  # still read by the checks of the sections around it
        return _Partial(cls, {name: getattr(section, name) for name in specs})
    return section


def _defaults(cls: type, given: Iterable[Any]) -> dict[str, Any]:
    """The default of each setting of ``cls`` that has one and is not ``given``."""
    return {
        f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
        if f.name not in given
        and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)
    }


def _cross_problems(section: Any) -> list[tuple[str, str]]:
    """What the checks across settings of the section's class (its ``_check_*`` methods, each
    yielding (key, message)) find. On a :class:`_Partial` a check that reads a setting which
    failed is skipped: in its place, a default could contradict what the file meant."""
    cls = section._cls if isinstance(section, _Partial) else type(section)
    problems = []
    for name, check in vars(cls).items():
        if name.startswith("_check_"):
            with contextlib.suppress(_Unread):
                problems.extend(check(section))
    return problems


def _section_to_dict(section: Any, masked: bool) -> dict[str, Any]:
    result = {}
    for name, spec in _specs(type(section)).items():
        value = spec.kind.plain(getattr(section, name), masked)
        if masked and spec.mask is not None and isinstance(value, str):
            value = spec.mask.hide(value)
        result[name] = value
    return result


# --- kinds of settings -----------------------------------------------------------------------


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _integer(low: int, high: int) -> _Scalar:
    def convert(raw: Any) -> int:
        if isinstance(raw, int) and not isinstance(raw, bool) and low <= raw <= high:
            return raw
        raise _Invalid(f"expected an integer {low}-{high}")

    return _Scalar(convert)


def _seconds(low: float, high: float) -> _Scalar:
    def convert(raw: Any) -> float:
        if isinstance(raw, int | float) and not isinstance(raw, bool) and low <= raw <= high:
            return float(raw)
        raise _Invalid(f"expected a number of seconds {_number_text(low)}-{_number_text(high)}")

    return _Scalar(convert)


def _boolean() -> _Scalar:
    def convert(raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        raise _Invalid("expected true or false")

    return _Scalar(convert)


def _choice(
    options: list[str] | tuple[str, ...], fold: Callable[[str], str], expected: str = ""
) -> _Scalar:
    """One of ``options``, compared after ``fold`` (e.g. str.upper) and stored folded."""

    def convert(raw: Any) -> str:
        if isinstance(raw, str) and fold(raw) in options:
            return fold(raw)
        raise _Invalid(f"expected {expected or 'one of: ' + ', '.join(options)}")

    return _Scalar(convert)


def _text(pattern: str, expected: str) -> _Scalar:
    compiled = re.compile(pattern)

    def convert(raw: Any) -> str:
        if isinstance(raw, str) and compiled.fullmatch(raw):
            return raw
        raise _Invalid(f"expected {expected}")

    return _Scalar(convert)


def _checked(expected: str, accept: Callable[[str], bool]) -> _Scalar:
    """A string accepted by ``accept`` (which may raise ValueError to refuse it)."""

    def convert(raw: Any) -> str:
        try:
            if isinstance(raw, str) and accept(raw):
                return raw
        except ValueError:
            pass
        raise _Invalid(f"expected {expected}")

    return _Scalar(convert)


def _optional(kind: _Scalar) -> _Scalar:
    """The same kind, or nothing: an empty value or null means "not set" (None)."""

    def convert(raw: Any) -> Any:
        return None if raw is None or raw == "" else kind.convert(raw)

    return _Scalar(convert, kind.to_plain)


def _digits(low: int, high: int, example: str) -> _Scalar:
    """Digits kept as text: YAML would read an unquoted 0049 as the number 49."""
    compiled = re.compile(f"[0-9]{{{low},{high}}}")
    size = f"{low}-{high}" if low != high else str(low)

    def convert(raw: Any) -> str:
        if isinstance(raw, str) and compiled.fullmatch(raw):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            raise _Invalid(
                f'expected {size} digits in quotes, e.g. "{example}" (unquoted, YAML reads '
                "digits as a number and drops leading zeros)"
            )
        raise _Invalid(f'expected {size} digits in quotes, e.g. "{example}"')

    return _Scalar(convert)


def _phone_number(example: str) -> _Scalar:
    """A phone number as people write it (``+49 30 100300``), kept as text: YAML reads an
    unquoted +4930100300 as 4930100300 and 030100300 as an octal number. Whether it is a valid
    number is checked across settings, with the ``numbers`` section."""

    def convert(raw: Any) -> str:
        if isinstance(raw, str):
            try:
                numbers.digits_only(raw, allow_formatting=True)
                return raw.strip()
            except numbers.InvalidNumber:
                pass
        elif isinstance(raw, int) and not isinstance(raw, bool):
            raise _Invalid(
                f'expected a phone number in quotes, e.g. "{example}" (unquoted, YAML reads it '
                "as an integer: a leading + or 0 is lost or read as octal)"
            )
        raise _Invalid(f'expected a phone number in quotes, e.g. "{example}"')

    return _Scalar(convert)


def _money(low: Decimal) -> _Scalar:
    def convert(raw: Any) -> Decimal:
        if isinstance(raw, int | float | str) and not isinstance(raw, bool):
            try:
                value = Decimal(str(raw).strip())
            except InvalidOperation:
                value = None
            if value is not None and value.is_finite() and value >= low:
                return value
        raise _Invalid(f"expected an amount >= {low}, such as 1.50")

    return _Scalar(convert)


def _network() -> _Scalar:
    def convert(raw: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if isinstance(raw, str):
            try:
                return ipaddress.ip_network(raw.strip())
            except ValueError as problem:
                raise _Invalid(
                    f"expected an IP address or network such as 192.0.2.0/24 ({problem})"
                ) from None
        raise _Invalid("expected an IP address or network such as 192.0.2.0/24")

    return _Scalar(convert)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return bool(_HOSTNAME.fullmatch(text))


def _is_host_port(text: str) -> bool:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^:\s\[\]]+):([0-9]{1,5})", text)
    if not match:
        return False
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    return _is_host(host) and 1 <= port <= 65535


def _is_database_url(text: str) -> bool:
    parts = urlsplit(text)
    if parts.scheme == "sqlite":
        return text.startswith("sqlite:///") and len(text) > len("sqlite:///")
    if parts.scheme in ("postgresql", "postgres"):
        _ = parts.port  # raises ValueError for a bad port
        return len(parts.path) > 1
    return False


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    _ = parts.port
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in text


def _is_base_url(text: str) -> bool:
    """An http(s) address with nothing after host:port (no credentials, path or query)."""
    parts = urlsplit(text)
    return (
        _is_http_url(text)
        and parts.username is None
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def _placeholder(name: str, conversion: str | None, spec: str) -> str:
    return (
        "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    )


def _placeholder_names(template: str) -> set[str]:
    """The placeholder names in a (valid) route template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _route_template() -> _Scalar:
    known = ", ".join("{" + p + "}" for p in ROUTE_PLACEHOLDERS)

    def convert(raw: Any) -> str:
        if not isinstance(raw, str) or not raw or any(c.isspace() for c in raw):
            raise _Invalid(
                "expected a dial-string template without spaces, "
                'such as "sofia/gateway/{gateway}/{number}"'
            )
        try:
            fields = [(n, c, s) for _, n, s, c in string.Formatter().parse(raw) if n is not None]
        except ValueError as problem:
            raise _Invalid(f"is not a valid template ({problem})", show_value=False) from None
        for name, conversion, spec in fields:
            if name not in ROUTE_PLACEHOLDERS or conversion or spec:
                raise _Invalid(
                    f"unknown placeholder {_placeholder(name, conversion, spec)} (known: {known})",
                    show_value=False,
                )
        if "number" not in {name for name, _, _ in fields}:
            raise _Invalid("must contain the {number} placeholder", show_value=False)
        try:  # what the dialer will refuse to send, refused now
            commands.dial_string(raw, "15550001001", "gateway")
        except commands.UnsafeCommand:
            raise _Invalid(
                "must dial one channel: no , | & ' ^ or FreeSWITCH {variables} / [variables] "
                "(the controller sets the variables a callback needs, ignore_early_media "
                "included; set others on the sofia gateway)",
                show_value=False,
            ) from None
        return raw

    return _Scalar(convert)


def _hide_all(secret: str) -> str:
    return "********" if secret else ""


def _hide_url_password(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:********@{host}"


def _rounding() -> _Scalar:
    """A decimal rounding mode, named as billing's rating accepts it (stored as ROUND_...)."""

    def convert(raw: Any) -> str:
        try:
            if isinstance(raw, str):
                return rating.rounding_mode(raw)
        except ValueError:
            pass
        names = sorted(mode.removeprefix("ROUND_") for mode in rating.ROUNDING_MODES)
        raise _Invalid(f"expected a rounding mode: {', '.join(names)}")

    return _Scalar(convert)


_SECRET = _Mask(_hide_all)
_URL_SECRET = _Mask(_hide_url_password)

_NAME = _text(
    r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", "a name of letters, digits, '-' and '_' (at most 32)"
)
_HOST = _checked("a host name or IP address", _is_host)
_PORT = _integer(1, 65535)
_PASSWORD = _text(
    r"[^\s\x00-\x1f\x7f]+", "a non-empty password without spaces or control characters"
)
_SOUND = _text(r"[^\s'\"]+", "a sound file name or tone_stream://... without spaces or quotes")
_CAUSE = _choice(HANGUP_CAUSES, str.upper, "a FreeSWITCH hangup cause such as USER_BUSY")
_CURRENCY = _text(r"[A-Z]{3}", "a three-letter currency code such as EUR")
_PREFIXES = _List(_digits(1, 15, "44"))


# --- the settings ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """One FreeSWITCH to control over inbound ESL."""

    name: Annotated[str, _NAME]
    host: Annotated[str, _HOST] = "127.0.0.1"
    port: Annotated[int, _PORT] = 8021
    password: Annotated[str, _PASSWORD, _SECRET] = FREESWITCH_DEFAULT_PASSWORD
    user: Annotated[
        str | None,
        _optional(_text(r"[^\s@:]+@[^\s@:]+", 'user@domain (for "userauth user@domain:password")')),
    ] = None
    connect_timeout_seconds: Annotated[float, _seconds(0.1, 300)] = 5.0
    command_timeout_seconds: Annotated[float, _seconds(0.1, 300)] = 10.0


_DEFAULT_NODES = (NodeSettings(name="fs1"),)


@dataclass(frozen=True, kw_only=True)
class FreeswitchSettings:
    """The FreeSWITCH nodes and how to reconnect to them."""

    nodes: Annotated[
        tuple[NodeSettings, ...], _List(_Section(NodeSettings), min_items=1, unique=("name",))
    ] = _DEFAULT_NODES
    reconnect_min_seconds: Annotated[float, _seconds(0.1, 3600)] = 1.0
    reconnect_max_seconds: Annotated[float, _seconds(0.1, 3600)] = 30.0
    max_event_backlog: Annotated[int, _integer(0, 100_000)] = 250

    def _check_reconnect_order(self) -> Iterator[tuple[str, str]]:
        if self.reconnect_min_seconds > self.reconnect_max_seconds:
            yield "reconnect_max_seconds", "must not be below reconnect_min_seconds"


def _socket_address(bind: str, port: int, advertise: str | None) -> str:
    """`advertise`, else `bind:port` (the loopback address when bound to every address)."""
    if advertise:
        return advertise
    host = "127.0.0.1" if _is_unspecified(bind) else bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, kw_only=True)
class OutboundSettings:
    """The outbound-socket server FreeSWITCH connects calls to (dialplan ``socket``)."""

    bind: Annotated[str, _HOST] = "127.0.0.1"
    port: Annotated[int, _PORT] = 8084
    allow: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], _List(_network())
    ] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    advertise: Annotated[
        str | None, _optional(_checked("host:port such as 192.0.2.10:8084", _is_host_port))
    ] = None
    max_sessions: Annotated[int, _integer(1, 100_000)] = 1000

    @property
    def socket_address(self) -> str:
        """Where FreeSWITCH connects (``&socket(<this> async full)``): advertise, else bind:port."""
        return _socket_address(self.bind, self.port, self.advertise)

    def _check_socket_address(self) -> Iterator[tuple[str, str]]:
        address = _socket_address(self.bind, self.port, self.advertise)  # settings only
        try:
            commands.check_host_port(address)
        except commands.UnsafeCommand:
            yield (
                "advertise" if self.advertise else "bind",
                f"FreeSWITCH's socket application cannot be told {address} (it "
                "takes host:port, split at the last colon): set outbound.advertise to an IPv4 "
                "address or a host name the switch reaches this server at",
            )

    def allows(self, peer: str) -> bool:
        """Whether a connection from ``peer`` (an IP address) is served; an empty allow = anyone."""
        if not self.allow:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # an IPv4 peer of a dual-stack listener
        return any(address in network for network in self.allow)


@dataclass(frozen=True, kw_only=True)
class ControllerSettings:
    """This controller among the ones sharing the database (esl_callback/controllers.py)."""

    # None: host name and outbound port (unique per process on a machine, as the port is).
    id: Annotated[
        str | None,
        _optional(_text(r"[A-Za-z0-9._:-]{1,64}", "1-64 letters, digits or . _ : -")),
    ] = None
    # How long a controller that stopped renewing counts as alive: the others take its calls
    # over after that. It renews every third of it.
    lease_seconds: Annotated[int, _integer(3, 600)] = 15


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """Where the data lives: SQLite file or PostgreSQL."""

    url: Annotated[
        str,
        _checked(
            "sqlite:///FILE or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE", _is_database_url
        ),
        _URL_SECRET,
    ] = "sqlite:///esl-callback.db"
    pool_size: Annotated[int, _integer(1, 1000)] = 10


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """The web portal and JSON API."""

    enabled: Annotated[bool, _boolean()] = True
    bind: Annotated[str, _HOST] = "127.0.0.1"
    port: Annotated[int, _PORT] = 8080
    secret: Annotated[str, _text(r"[^\x00-\x1f\x7f]*", "a string"), _SECRET] = ""
    secure_cookies: Annotated[bool, _boolean()] = True
    session_lifetime_seconds: Annotated[int, _integer(60, 90 * 86400)] = 43200
    login_max_failures: Annotated[int, _integer(1, 1000)] = 5
    login_lockout_seconds: Annotated[int, _integer(1, 86400)] = 900
    # Reverse proxies in front that append X-Forwarded-For / -Proto (0: trust no such header).
    trusted_proxies: Annotated[int, _integer(0, 5)] = 0
    # Where `esl-callback serve`'s portal answers, for `esl-callback web` (the portal run alone)
    # and `esl-callback call`; None: serve runs with these very settings (web.bind/web.port).
    controller_url: Annotated[
        str | None,
        _optional(
            _checked(
                "the http:// or https:// address of esl-callback serve's portal, such as "
                "http://127.0.0.1:8080 (nothing after the port)",
                _is_base_url,
            )
        ),
    ] = None


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """The Prometheus /metrics endpoint (its own port: see esl_callback/metrics.py)."""

    enabled: Annotated[bool, _boolean()] = True
    bind: Annotated[str, _HOST] = "127.0.0.1"
    port: Annotated[int, _PORT] = 9464


@dataclass(frozen=True, kw_only=True)
class CallbackSettings:
    """How callbacks behave: delays, retries, timeouts, attempts and abuse limits."""

    delay_seconds: Annotated[float, _seconds(0, 300)] = 3.0
    trigger_hangup_cause: Annotated[str, _CAUSE] = "USER_BUSY"
    reject_cause: Annotated[str, _CAUSE] = "CALL_REJECTED"
    leg_a_retries: Annotated[int, _integer(0, 10)] = 2
    retry_delay_seconds: Annotated[float, _seconds(0, 3600)] = 20.0
    originate_timeout_seconds: Annotated[int, _integer(1, 600)] = 30
    park_timeout_seconds: Annotated[int, _integer(1, 3600)] = 60
    pin_attempts: Annotated[int, _integer(1, 10)] = 3
    pin_lockout_failures: Annotated[int, _integer(1, 1000)] = 5
    pin_lockout_window_seconds: Annotated[int, _integer(1, 30 * 86400)] = 900
    destination_attempts: Annotated[int, _integer(1, 10)] = 3
    max_digits: Annotated[int, _integer(3, 32)] = 20
    caller_id_number: Annotated[str | None, _optional(_digits(1, 15, "18005550100"))] = None
    caller_id_name: Annotated[
        str,
        _text(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}", "1-40 letters, digits, spaces, '.', '_', '-'"),
    ] = "Callback"
    announce_balance: Annotated[bool, _boolean()] = True
    source_must_be_own_number: Annotated[bool, _boolean()] = True
    requests_per_minute: Annotated[int, _integer(1, 10_000)] = 5
    max_concurrent_calls: Annotated[int, _integer(1, 10_000)] = 2
    # Before its PIN is keyed, a callback's leg A is paid by nobody (callback.policy).
    pin_callback_prefixes: Annotated[tuple[str, ...], _PREFIXES] = ()  # () = billing's policy
    pin_deadline_seconds: Annotated[int, _integer(10, 600)] = 45
    max_unauthenticated_calls: Annotated[int, _integer(1, 10_000)] = 10
    unauthenticated_calls_per_caller_per_hour: Annotated[int, _integer(1, 1000)] = 3


@dataclass(frozen=True, kw_only=True)
class RouteSettings:
    """Where numbers starting with ``prefix`` are dialled ("" = every other number)."""

    prefix: Annotated[str, _digits(0, 15, "44")] = ""
    template: Annotated[str, _route_template()]
    gateway: Annotated[
        str | None, _optional(_text(r"[A-Za-z0-9_.-]+", "a gateway name (letters, digits, _ . -)"))
    ] = None

    def _check_gateway(self) -> Iterator[tuple[str, str]]:
        if "gateway" in _placeholder_names(self.template) and not self.gateway:
            yield "gateway", "required because the template uses {gateway}"


_DEFAULT_ROUTES = (RouteSettings(template="sofia/gateway/{gateway}/{number}", gateway="carrier"),)


@dataclass(frozen=True, kw_only=True)
class NumbersSettings:
    """How dialled numbers are normalised to E.164 digits."""

    country_code: Annotated[str, _digits(1, 3, "44")] = "1"
    national_prefix: Annotated[str, _digits(0, 4, "0")] = "0"
    international_prefix: Annotated[str, _digits(1, 4, "00")] = "00"
    min_length: Annotated[int, _integer(3, 15)] = 7
    max_length: Annotated[int, _integer(3, 15)] = 15

    def _check_lengths(self) -> Iterator[tuple[str, str]]:
        if self.min_length > self.max_length:
            yield "max_length", "must not be below min_length"

    def _check_prefixes(self) -> Iterator[tuple[str, str]]:
        if self.national_prefix == self.international_prefix:
            yield "international_prefix", "must differ from national_prefix"


@dataclass(frozen=True, kw_only=True)
class CurrencySoundSettings:
    """What is said after an amount in one currency: after its whole units, after its cents."""

    currency: Annotated[str, _CURRENCY]
    units: Annotated[str, _SOUND]
    unit: Annotated[str | None, _optional(_SOUND)] = None  # after exactly 1; None: units
    cents: Annotated[str, _SOUND]
    cent: Annotated[str | None, _optional(_SOUND)] = None  # after exactly 1; None: cents


_DEFAULT_CURRENCY_SOUNDS = (
    CurrencySoundSettings(
        currency="EUR",
        units="currency/euro.wav",
        cents="currency/cents.wav",
        cent="currency/cent.wav",
    ),
    CurrencySoundSettings(
        currency="USD",
        units="currency/dollars.wav",
        unit="currency/dollar.wav",
        cents="currency/cents.wav",
        cent="currency/cent.wav",
    ),
)


@dataclass(frozen=True, kw_only=True)
class IvrSettings:
    """What callers hear (FreeSWITCH sound names, relative to its sounds dir) and digit input."""

    welcome: Annotated[str, _SOUND] = "ivr/ivr-welcome.wav"
    enter_pin: Annotated[str, _SOUND] = "ivr/ivr-please_enter_pin_followed_by_pound.wav"
    enter_code: Annotated[str, _SOUND] = "ivr/ivr-please_enter_pin_followed_by_pound.wav"
    enter_voucher: Annotated[str, _SOUND] = "ivr/ivr-please_enter_pin_followed_by_pound.wav"
    voucher_refused: Annotated[str, _SOUND] = "ivr/ivr-that_was_an_invalid_entry.wav"
    invalid_entry: Annotated[str, _SOUND] = "ivr/ivr-that_was_an_invalid_entry.wav"
    invalid_pin: Annotated[str, _SOUND] = "ivr/ivr-pin_or_extension_is-invalid.wav"
    locked_out: Annotated[str, _SOUND] = "voicemail/vm-abort.wav"
    your_balance_is: Annotated[str, _SOUND] = "voicemail/vm-you_have.wav"
    # The balance is said as numbers, each followed by its currency's sound (see
    # callback.ivr.Ivr.amount_sounds); the first entry also serves when the currency is not known.
    currency_sounds: Annotated[
        tuple[CurrencySoundSettings, ...],
        _List(_Section(CurrencySoundSettings), min_items=1, unique=("currency",)),
    ] = _DEFAULT_CURRENCY_SOUNDS
    negative: Annotated[str, _SOUND] = "currency/negative.wav"
    enter_destination: Annotated[str, _SOUND] = "ivr/ivr-enter_destination_telephone_number.wav"
    invalid_number: Annotated[str, _SOUND] = "ivr/ivr-invalid_number_format.wav"
    no_rate: Annotated[str, _SOUND] = "ivr/ivr-no_route_destination.wav"
    destination_denied: Annotated[str, _SOUND] = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
    balance_too_low: Annotated[str, _SOUND] = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
    destination_busy: Annotated[str, _SOUND] = "ivr/ivr-user_busy.wav"
    no_answer: Annotated[str, _SOUND] = "ivr/ivr-no_user_response.wav"
    call_failed: Annotated[str, _SOUND] = "ivr/ivr-call_cannot_be_completed_as_dialed.wav"
    please_wait: Annotated[str, _SOUND] = "ivr/ivr-hold_connect_call.wav"
    ringback: Annotated[str, _SOUND] = "tone_stream://%(2000,4000,440,480);loops=-1"
    low_balance_warning: Annotated[str, _SOUND] = "tone_stream://%(200,100,440);loops=2"
    goodbye: Annotated[str, _SOUND] = "voicemail/vm-goodbye.wav"
    language: Annotated[str, _text(r"[a-z]{2,3}", "a FreeSWITCH say language such as en")] = "en"
    terminator: Annotated[str, _text(r"[*#]{1,2}", 'terminator keys: "#", "*" or "#*"')] = "#"
    first_digit_timeout_ms: Annotated[int, _integer(1000, 120_000)] = 8000
    inter_digit_timeout_ms: Annotated[int, _integer(500, 60_000)] = 3000
    app_timeout_seconds: Annotated[float, _seconds(5, 3600)] = 120.0


@dataclass(frozen=True, kw_only=True)
class SmsGatewaySettings:
    """A phone app or provider that posts incoming SMS to /api/v1/sms/inbound."""

    name: Annotated[str, _NAME]
    token: Annotated[
        str, _text(r"[!-~]{16,}", "a token of at least 16 printable ASCII characters"), _SECRET
    ]
    reply_url: Annotated[
        str | None, _optional(_checked("an http:// or https:// URL", _is_http_url)), _URL_SECRET
    ] = None


@dataclass(frozen=True, kw_only=True)
class SmsSettings:
    """SMS triggers (FreeSWITCH MESSAGE events and gateway posts)."""

    # Off unless the service's SMS numbers are listed: see _check_numbers_when_enabled.
    enabled: Annotated[bool, _boolean()] = False
    # The numbers SMS to the service arrive on; an SMS to any other number is ignored.
    numbers: Annotated[tuple[str, ...], _List(_phone_number("+4930100300"))] = ()
    reply_unknown_sender: Annotated[bool, _boolean()] = False
    rate_limit_per_minute: Annotated[int, _integer(1, 10_000)] = 5
    # Accounts that have a PIN must send it ("<PIN> <destination>"); see esl_callback/sms.py.
    require_pin: Annotated[bool, _boolean()] = False
    gateways: Annotated[
        tuple[SmsGatewaySettings, ...],
        _List(_Section(SmsGatewaySettings), unique=("name", "token")),
    ] = ()

    def _check_numbers_when_enabled(self) -> Iterator[tuple[str, str]]:
        if self.enabled and not self.numbers:
            yield (
                "numbers",
                "required while sms.enabled is true: list the numbers SMS to the service arrive "
                "on (those of the to_user pattern of chatplan/esl-callback.xml and of your "
                "gateways). FreeSWITCH also reports the SIP MESSAGEs its users send each other; "
                "only SMS to these numbers are acted on. Or set sms.enabled: false",
            )


@dataclass(frozen=True, kw_only=True)
class BillingSettings:
    """Money: currency, what is charged, rounding and the destination policy."""

    currency: Annotated[str, _CURRENCY] = "EUR"
    charge_leg_a: Annotated[bool, _boolean()] = True
    low_balance_threshold: Annotated[Decimal, _money(Decimal(0))] = Decimal("1.00")
    warning_seconds_before_hangup: Annotated[int, _integer(0, 600)] = 60
    max_call_seconds: Annotated[int, _integer(60, 24 * 3600)] = 3600
    rounding: Annotated[str, _rounding()] = "ROUND_HALF_UP"
    allow_prefixes: Annotated[tuple[str, ...], _PREFIXES] = ()
    deny_prefixes: Annotated[tuple[str, ...], _PREFIXES] = ()
    voucher_lockout_failures: Annotated[int, _integer(1, 1000)] = 5
    voucher_lockout_seconds: Annotated[int, _integer(60, 30 * 86400)] = 3600

    def _check_prefix_lists(self) -> Iterator[tuple[str, str]]:
        both = sorted(set(self.allow_prefixes) & set(self.deny_prefixes))
        if both:
            yield "deny_prefixes", f"also in allow_prefixes: {', '.join(both)}"


# --- branding: the product's name and look (portal, app manifest, SMS texts) --------------------

LOGO_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
}


def _colour(role: str, against_white: float) -> _Scalar:
    """A colour as #rrggbb (or #rgb), stored as #rrggbb, with at least ``against_white``
    contrast against the portal's white background (WCAG 2.2 AA for what ``role`` says)."""

    def convert(raw: Any) -> str:
        colour = colours.normalised(raw) if isinstance(raw, str) else None
        if colour is None:
            raise _Invalid('expected a colour as "#rrggbb", such as "#0b57a4" (in quotes)')
        ratio = colours.contrast(colour, colours.WHITE)
        if ratio < against_white:
            raise _Invalid(
                f"{colour} is too light for {role}: its contrast with white is {ratio:.1f}:1, "
                f"at least {against_white}:1 is needed (WCAG 2.2 AA); choose a darker colour",
                show_value=False,
            )
        return colour

    return _Scalar(convert)


def _is_logo(text: str) -> bool:
    """An https:// image address (an http:// one would be blocked on an HTTPS portal), or an
    image file (SVG, PNG, JPEG, WebP) that exists."""
    if text.startswith("https://"):
        return _is_http_url(text)
    path = Path(text)
    return path.suffix.lower() in LOGO_TYPES and path.is_file()


@dataclass(frozen=True, kw_only=True)
class BrandingSettings:
    """The product as customers see it: its name, logo and colours."""

    # In the portal's header and page titles, the installed app's name and the SMS help text.
    product_name: Annotated[
        str, _text(r"[^\x00-\x1f\x7f<>]{1,40}", "1-40 characters, no < or >")
    ] = "Callback"
    # An image beside the name in the header and the app's icon: a file the portal serves
    # (at /brand/logo) or an https:// address (then allowed by the pages' security policy).
    logo: Annotated[
        str | None,
        _optional(
            _checked(
                "an image file that exists (.svg, .png, .jpg, .webp) or an https:// address",
                _is_logo,
            )
        ),
    ] = None
    # Buttons, links and the app's theme colour: white text sits on it.
    primary_colour: Annotated[str, _colour("buttons and links", 4.5)] = "#0b57a4"
    # The mark of the page you are on in the menu, and the header's edge.
    accent_colour: Annotated[str, _colour("the current-page mark", 3.0)] = "#b34700"

    @property
    def logo_is_file(self) -> bool:
        """Whether the logo is a file the portal serves (at /brand/logo), not a web address."""
        return self.logo is not None and not self.logo.startswith("https://")


# An e-mail address as the portal accepts one (also in "Name <address>" form for a sender).
EMAIL_ADDRESS = r"[^@\s<>\"',;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_FROM = _text(
    rf"{EMAIL_ADDRESS}|[^<>\x00-\x1f\x7f\"]{{1,64}} <{EMAIL_ADDRESS}>",
    'an e-mail address, or a name and one: "Callback <callback@example.com>"',
)


@dataclass(frozen=True, kw_only=True)
class EmailSettings:
    """E-mail the platform sends (customers' low-balance alerts) through an SMTP server."""

    # None: no e-mail is sent, and the portal offers no e-mail alert.
    smtp_host: Annotated[str | None, _optional(_HOST)] = None
    smtp_port: Annotated[int, _PORT] = 587
    # starttls: plain connection upgraded (port 587); tls: TLS from the start (465); none.
    security: Annotated[str, _choice(("starttls", "tls", "none"), str.lower)] = "starttls"
    username: Annotated[str | None, _optional(_text(r"[^\s]{1,128}", "a user name"))] = None
    password: Annotated[str | None, _optional(_PASSWORD), _SECRET] = None
    from_address: Annotated[str, _FROM] = "Callback <callback@localhost.localdomain>"
    timeout_seconds: Annotated[float, _seconds(1, 120)] = 10.0


@dataclass(frozen=True, kw_only=True)
class CdrSettings:
    """The switch's CDRs: FreeSWITCH's mod_json_cdr posts each channel's CDR to the portal's
    /api/v1/switch/cdr (callback/switch_cdr.py); `esl-callback freeswitch files` writes its
    json_cdr.conf.xml from these settings."""

    enabled: Annotated[bool, _boolean()] = False
    username: Annotated[str, _NAME] = "freeswitch"
    password: Annotated[
        str,
        _text(r"(?:[!-~]{16,})?", "a password of at least 16 printable ASCII characters"),
        _SECRET,
    ] = ""
    # The portal's address as the switch reaches it; None: http://<web.bind>:<web.port>.
    url: Annotated[
        str | None,
        _optional(
            _checked(
                "the http:// or https:// address the switch reaches the portal at, such as "
                "http://192.0.2.10:8080 (nothing after the port)",
                _is_base_url,
            )
        ),
    ] = None
    # Where mod_json_cdr writes a CDR it could not post (esl-callback cdr import reads them).
    err_log_dir: Annotated[str, _text(r"/[^\x00-\x1f\x7f\"<>&]*", "an absolute directory path")] = (
        "/var/log/freeswitch/json_cdr"
    )
    retries: Annotated[int, _integer(0, 20)] = 3
    delay_seconds: Annotated[int, _integer(1, 60)] = 2
    timeout_seconds: Annotated[int, _integer(1, 60)] = 5


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    """Log level, line format and destination."""

    level: Annotated[str, _choice(("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), str.upper)] = (
        "INFO"
    )
    format: Annotated[str, _choice(("plain", "json"), str.lower)] = "plain"
    file: Annotated[str | None, _optional(_text(r"[^\x00]+", "a file path"))] = None


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything esl-callback reads from its configuration file."""

    freeswitch: FreeswitchSettings = field(default_factory=FreeswitchSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    web: WebSettings = field(default_factory=WebSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    callback: CallbackSettings = field(default_factory=CallbackSettings)
    routes: Annotated[
        tuple[RouteSettings, ...], _List(_Section(RouteSettings), unique=("prefix",))
    ] = _DEFAULT_ROUTES
    numbers: NumbersSettings = field(default_factory=NumbersSettings)
    ivr: IvrSettings = field(default_factory=IvrSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    branding: BrandingSettings = field(default_factory=BrandingSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    cdr: CdrSettings = field(default_factory=CdrSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    @classmethod
    def default(cls) -> "Settings":
        """The settings used when there is no file (no environment overrides applied)."""
        return cls()

    def route_for(self, number: str) -> RouteSettings | None:
        """The route with the longest prefix of ``number`` (E.164 digits), or None."""
        matching = [route for route in self.routes if number.startswith(route.prefix)]
        return max(matching, key=lambda route: len(route.prefix), default=None)

    def _check_web_port(self) -> Iterator[tuple[str, str]]:
        web, outbound = self.web, self.outbound
        shared_address = (
            web.bind == outbound.bind
            or _is_unspecified(web.bind)
            or (_is_unspecified(outbound.bind))
        )
        if web.enabled and web.port == outbound.port and shared_address:
            yield "web.port", f"same as outbound.port ({web.port}); the two servers need their own"

    def _check_sms_numbers(self) -> Iterator[tuple[str, str]]:
        for index, raw in enumerate(self.sms.numbers):
            try:
                numbers.normalise(raw, self.numbers, what=f'"{raw}"', allow_formatting=True)
            except numbers.InvalidNumber as problem:
                said = str(problem).rstrip(".")
                yield f"sms.numbers[{index}]", f"{said} (read with the numbers section)"

    def _check_cdr_needs_web(self) -> Iterator[tuple[str, str]]:
        if self.cdr.enabled and not self.web.enabled:
            yield "cdr.enabled", "the switch posts its CDRs to the portal: set web.enabled: true"

    def _check_metrics_port(self) -> Iterator[tuple[str, str]]:
        web, outbound, metrics = self.web, self.outbound, self.metrics
        taken = {outbound.port: "outbound.port"} | ({web.port: "web.port"} if web.enabled else {})
        if metrics.enabled and metrics.port in taken:
            yield "metrics.port", f"same as {taken[metrics.port]} ({metrics.port}); use another"


# --- loading ---------------------------------------------------------------------------------


class _Mapping(dict):
    """A YAML mapping that remembers the line of each key and any duplicated keys."""

    lines: dict[Any, int]
    duplicates: dict[Any, int]


class _Sequence(list):
    """A YAML list that remembers the line of each item."""

    lines: list[int]


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, keeping line numbers and noticing duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.lines, mapping.duplicates = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                "found a key that is not a plain value",
                key_node.start_mark,
            ) from None
        if key in mapping.lines:
            mapping.duplicates[key] = mapping.lines[key]
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _Sequence:
    sequence = _Sequence(loader.construct_object(item, deep=True) for item in node.value)
    sequence.lines = [item.start_mark.line + 1 for item in node.value]
    return sequence


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _override(
    obj: Any, name: str, variable: str, path: str, environ: Mapping[str, str], errors: _Errors
) -> Any:
    """``obj`` with setting ``name`` taken from the environment variable, validated as in a file."""
    if variable not in environ:
        return obj
    spec = _specs(type(obj))[name]
    value = spec.kind.read(
        environ[variable], _Where(f"{path} (from {variable})", None, spec.mask), errors
    )
    return obj if value is _BAD else dataclasses.replace(obj, **{name: value})


def _apply_environment(settings: Settings, environ: Mapping[str, str], errors: _Errors) -> Settings:
    """Secrets from ESL_CALLBACK_* variables (documented in the module docstring)."""
    nodes = []
    for index, node in enumerate(settings.freeswitch.nodes):
        path = f"freeswitch.nodes[{index}].password"
        node = _override(node, "password", "ESL_CALLBACK_ESL_PASSWORD", path, environ, errors)
        variable = f"ESL_CALLBACK_NODE_{_env_name(node.name)}_PASSWORD"
        nodes.append(_override(node, "password", variable, path, environ, errors))
    gateways = []
    for index, gateway in enumerate(settings.sms.gateways):
        variable = f"ESL_CALLBACK_SMS_GATEWAY_{_env_name(gateway.name)}_TOKEN"
        path = f"sms.gateways[{index}].token"
        gateways.append(_override(gateway, "token", variable, path, environ, errors))
    for pattern, kind, names in (
        (r"ESL_CALLBACK_NODE_(.+)_PASSWORD", "node", [n.name for n in nodes]),
        (r"ESL_CALLBACK_SMS_GATEWAY_(.+)_TOKEN", "SMS gateway", [g.name for g in gateways]),
    ):
        for variable in sorted(environ):
            match = re.fullmatch(pattern, variable)
            if match and match.group(1) not in {_env_name(n) for n in names}:
                known = ", ".join(names) or "none"
                errors.add(_Where(variable), f"names no configured {kind} (configured: {known})")
    return dataclasses.replace(
        settings,
        freeswitch=dataclasses.replace(settings.freeswitch, nodes=tuple(nodes)),
        sms=dataclasses.replace(settings.sms, gateways=tuple(gateways)),
        database=_override(
            settings.database, "url", "ESL_CALLBACK_DATABASE_URL", "database.url", environ, errors
        ),
        web=_override(
            settings.web, "secret", "ESL_CALLBACK_WEB_SECRET", "web.secret", environ, errors
        ),
        email=_override(
            settings.email,
            "password",
            "ESL_CALLBACK_SMTP_PASSWORD",
            "email.password",
            environ,
            errors,
        ),
        cdr=_override(
            settings.cdr, "password", "ESL_CALLBACK_CDR_PASSWORD", "cdr.password", environ, errors
        ),
    )


def settings_from_mapping(data: Any, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from already-parsed YAML data (None = all defaults), then environment overrides.

    Raises :class:`ConfigError` listing every problem. ``environ`` defaults to ``os.environ``.
    """
    errors = _Errors()
    settings = _read_section(Settings, data, _Where(""), errors)
    if not _failed(settings):
        settings = _apply_environment(settings, os.environ if environ is None else environ, errors)
        for path, message in _public_gateway_tokens(settings):
            errors.add(_Where(path), message)
        known = KNOWN_PUBLIC_SECRETS.get(settings.cdr.password)
        if known is not None:
            errors.add(
                _Where("cdr.password"),
                f"is {known}, which anyone can read: generate one (e.g. {GENERATE_SECRET})",
            )
        if settings.cdr.enabled and not settings.cdr.password:
            errors.add(
                _Where("cdr.password"),
                "required while cdr.enabled is true: generate one (e.g. "
                f"{GENERATE_SECRET}) and set it here (or in ESL_CALLBACK_CDR_PASSWORD) and in "
                "json_cdr.conf.xml (esl-callback freeswitch files writes it)",
            )
    if errors.messages:
        raise ConfigError(errors.messages)
    return settings


def _public_gateway_tokens(settings: Settings) -> Iterator[tuple[str, str]]:
    """A gateway token anyone can read (`KNOWN_PUBLIC_SECRETS`), once the environment applied:
    with it anyone could trigger callbacks and SMS replies as that gateway."""
    for index, gateway in enumerate(settings.sms.gateways):
        known = KNOWN_PUBLIC_SECRETS.get(gateway.token)
        if known is not None:
            variable = f"ESL_CALLBACK_SMS_GATEWAY_{_env_name(gateway.name)}_TOKEN"
            yield (
                f"sms.gateways[{index}].token",
                f"is {known}, which anyone can read: generate one (e.g. {GENERATE_SECRET}) "
                f"and set it here (or in {variable}) and in the gateway",
            )


def load_config(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read, validate and return the settings in the YAML file at ``path``.

    ``path`` None means no file: the defaults, with environment overrides. Raises
    :class:`ConfigError` for a missing or unreadable file, a YAML syntax error (with line and
    column) or any invalid setting (all of them, each with its key path and line).
    """
    if path is None:
        return settings_from_mapping(None, environ)
    return settings_from_mapping(read_yaml(path), environ)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The YAML data of the file at ``path`` (plain data, with line numbers for the reader).

    Raises :class:`ConfigError` for a missing or unreadable file or a YAML syntax error.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as problem:
        raise ConfigError([f"{path}: not UTF-8 text (byte {problem.start})"]) from None
    except OSError as problem:
        raise ConfigError([f"{path}: cannot read: {problem.strerror}"]) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as problem:
        mark = problem.problem_mark or problem.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = problem.problem or problem.context or "invalid YAML"
        raise ConfigError([f"{path}: YAML syntax error{where}: {detail}"]) from None
    except yaml.YAMLError as problem:
        raise ConfigError([f"{path}: YAML error: {problem}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: YAML nested too deeply"]) from None


def read_section(cls: type[T], data: Any) -> T:
    """Another configuration file's settings (the gateway agent's), read like this one's:
    ``cls`` is a dataclass of ``Annotated`` settings as above. Raises :class:`ConfigError`
    listing every problem with its key path and line."""
    errors = _Errors()
    settings = _read_section(cls, data, _Where(""), errors)
    if errors.messages:
        raise ConfigError(errors.messages)
    return settings


def section_to_dict(section: Any, *, masked: bool = True) -> dict[str, Any]:
    """Plain data for a section read by :func:`read_section`; secrets masked unless not."""
    return _section_to_dict(section, masked)


def settings_to_dict(settings: Settings, *, masked: bool = True) -> dict[str, Any]:
    """Plain data (YAML-safe) for ``settings``; secrets masked unless ``masked`` is False.

    Unmasked, ``settings_from_mapping(settings_to_dict(s, masked=False), {}) == s``.
    """
    return _section_to_dict(settings, masked)


# --- warnings --------------------------------------------------------------------------------


def _is_unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::")


def local_url(bind: str, port: int) -> str:
    """The http:// address, from this machine, of a server listening on `bind`:`port`."""
    host = "127.0.0.1" if bind == "" or _is_unspecified(bind) else bind
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_warnings(settings: Settings) -> list[str]:
    """Risky but valid choices an operator must hear about (default passwords, open listeners)."""
    warnings = []
    for index, node in enumerate(settings.freeswitch.nodes):
        known = KNOWN_PUBLIC_SECRETS.get(node.password)
        if known is not None:
            warnings.append(
                f'freeswitch.nodes[{index}].password: is {known} "{node.password}": anyone '
                f"who reaches {node.host}:{node.port} controls the switch. Generate one (e.g. "
                "`openssl rand -hex 24`) and set it in event_socket.conf.xml (or as the userauth "
                "user's esl-password) and here (or in ESL_CALLBACK_ESL_PASSWORD)"
            )
    outbound = settings.outbound
    open_to_all = not outbound.allow or any(n.prefixlen == 0 for n in outbound.allow)
    if not _is_loopback(outbound.bind) and open_to_all:
        warnings.append(
            f"outbound.allow: the outbound server listens on {outbound.bind}:{outbound.port}, "
            "beyond loopback, and accepts every peer: anyone who reaches it can feed it calls. "
            "List your FreeSWITCH addresses in outbound.allow"
        )
    if outbound.advertise is None and _is_unspecified(outbound.bind):
        warnings.append(
            f"outbound.advertise: not set while outbound.bind is {outbound.bind}: FreeSWITCH will "
            f"be told to connect to {outbound.socket_address}, right only if it runs on this host"
        )
    web = settings.web
    if web.enabled:
        hint = (
            "set it (or ESL_CALLBACK_WEB_SECRET) to a long random value, e.g. the output of "
            f"{GENERATE_SECRET}"
        )
        if not web.secret:
            warnings.append(f"web.secret: not set; login sessions need a secret: {hint}")
        elif web.secret.lower() in _PLACEHOLDER_SECRETS:
            warnings.append(f"web.secret: is a placeholder anyone can guess: {hint}")
        elif len(web.secret) < _MIN_WEB_SECRET_LENGTH:
            warnings.append(
                f"web.secret: only {len(web.secret)} characters (use at least "
                f"{_MIN_WEB_SECRET_LENGTH}): {hint}"
            )
        if not web.secure_cookies and not _is_loopback(web.bind):
            warnings.append(
                f"web.secure_cookies: false while the portal listens on {web.bind}: session "
                "cookies may travel over plain HTTP"
            )
    if all(route.prefix for route in settings.routes):
        warnings.append(
            'routes: no default route (prefix ""): numbers that match no prefix cannot be dialled'
        )
    return warnings
