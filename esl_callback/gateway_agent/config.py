"""The agent's configuration file (agent.yaml), read and checked like the server's.

The server's reader (`esl_callback.config`) reads it: every problem is reported with its key
path and line (`modem.baudrate: expected one of: 9600, ..., got 1234 (line 9)`), unknown keys
are errors, YAML is read safely. Secrets may come from the environment instead (they win):

    ESL_CALLBACK_AGENT_TOKEN     platform.token
    ESL_CALLBACK_AGENT_SIM_PIN   modem.pin
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from esl_callback.config import (  # the server's reader and kinds of settings, shared
    _PREFIXES,
    _SECRET,
    GENERATE_SECRET,
    KNOWN_PUBLIC_SECRETS,
    ConfigError,
    LoggingSettings,
    _boolean,
    _checked,
    _choice,
    _integer,
    _Invalid,
    _is_base_url,
    _optional,
    _phone_number,
    _Scalar,
    _seconds,
    _text,
    read_section,
    read_yaml,
)

TOKEN_VARIABLE = "ESL_CALLBACK_AGENT_TOKEN"
PIN_VARIABLE = "ESL_CALLBACK_AGENT_SIM_PIN"
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def _baudrate() -> _Scalar:
    choices = ", ".join(str(rate) for rate in BAUD_RATES)

    def convert(raw: Any) -> int:
        if raw in BAUD_RATES and isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise _Invalid(f"expected one of: {choices}")

    return _Scalar(convert)


@dataclass(frozen=True, kw_only=True)
class PlatformSettings:
    """Where calls and SMS go: the platform's portal, and this gateway's token there."""

    # The portal's address as the agent reaches it, e.g. https://callback.example.net
    url: Annotated[
        str,
        _checked(
            "an http:// or https:// address without a path, such as https://host:8080", _is_base_url
        ),
    ]
    # The token of this gateway in the platform's sms.gateways
    token: Annotated[
        str, _text(r"[!-~]{16,}", "a token of at least 16 printable ASCII characters"), _SECRET
    ]
    timeout_seconds: Annotated[float, _seconds(1, 120)] = 15.0


@dataclass(frozen=True, kw_only=True)
class ModemSettings:
    """The phone or GSM modem on a serial port."""

    port: Annotated[str, _text(r"/[^\x00\s]+", "a device path such as /dev/ttyUSB0")]
    baudrate: Annotated[int, _baudrate()] = 115200
    # The SIM's PIN, when it asks for one; entered once per start (a wrong one is not retried)
    pin: Annotated[str | None, _optional(_text(r"[0-9]{4,8}", "4-8 digits in quotes")), _SECRET] = (
        None
    )
    # The modem's own number: what callers dial and SMS are sent to; the platform must know it
    # (an access number or DID for calls, one of sms.numbers for SMS)
    own_number: Annotated[str, _phone_number("+18005550400")]
    # pdu (every modem, any alphabet) or text (AT+CMGF=1; ASCII text, UCS2 as hex)
    sms_mode: Annotated[str, _choice(("pdu", "text"), str.lower)] = "pdu"
    # Where SMS are stored (AT+CPMS): SM the SIM, ME the phone, MT both
    storage: Annotated[str, _choice(("SM", "ME", "MT"), str.upper)] = "SM"
    command_timeout_seconds: Annotated[float, _seconds(0.5, 120)] = 10.0
    # How often signal and registration are read (this also checks the modem still answers)
    poll_seconds: Annotated[float, _seconds(1, 3600)] = 30.0
    # How long to wait after RING for the caller ID (+CLIP) before rejecting the call anyway
    caller_id_wait_seconds: Annotated[float, _seconds(0.1, 30)] = 2.0
    # Consecutive unanswered commands after which the modem is reset (port reopened, ATZ)
    reset_after_timeouts: Annotated[int, _integer(1, 100)] = 2
    # The longest wait before the port is opened again after the modem went away
    reopen_max_seconds: Annotated[float, _seconds(0.1, 600)] = 30.0
    # How long the parts of a long SMS are awaited before what arrived is sent as it is
    multipart_wait_seconds: Annotated[float, _seconds(1, 7 * 24 * 3600)] = 3600.0


@dataclass(frozen=True, kw_only=True)
class CallerSettings:
    """Who may trigger callbacks through this gateway."""

    # Callers (and SMS senders) whose number starts with one of these, in international form
    # without "+"; empty: everyone. Withheld numbers are reported anyway (stored as rejected).
    allowed_prefixes: Annotated[tuple[str, ...], _PREFIXES] = ()


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    """The on-disk queue of what must reach the platform."""

    path: Annotated[str, _text(r"[^\x00]+", "a file path")] = "gateway-agent.db"
    retry_min_seconds: Annotated[float, _seconds(0.05, 3600)] = 2.0
    retry_max_seconds: Annotated[float, _seconds(0.1, 24 * 3600)] = 300.0
    # Attempts at sending one reply SMS before it is given up (logged as an error)
    reply_attempts: Annotated[int, _integer(1, 1000)] = 10

    def _check_retry_order(self) -> Iterator[tuple[str, str]]:
        if self.retry_max_seconds < self.retry_min_seconds:
            yield "retry_max_seconds", "must not be below retry_min_seconds"


@dataclass(frozen=True, kw_only=True)
class StatusSettings:
    """The agent's own status page: /status (JSON) and /metrics (Prometheus)."""

    enabled: Annotated[bool, _boolean()] = True
    bind: Annotated[str, _text(r"[0-9A-Za-z.:-]+", "an address such as 127.0.0.1")] = "127.0.0.1"
    port: Annotated[int, _integer(0, 65535)] = 9465


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """Everything the gateway agent reads from agent.yaml."""

    platform: PlatformSettings
    modem: ModemSettings
    callers: CallerSettings = field(default_factory=CallerSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    @property
    def status_url(self) -> str:
        host = self.status.bind if self.status.bind not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.status.port}"


def agent_settings(data: Any, environ: Mapping[str, str] | None = None) -> AgentSettings:
    """The settings in parsed YAML `data`, secrets from the environment applied and checked."""
    environ = os.environ if environ is None else environ
    data = dict(data) if isinstance(data, dict) else data
    if isinstance(data, dict):
        for section, key, variable in (
            ("platform", "token", TOKEN_VARIABLE),
            ("modem", "pin", PIN_VARIABLE),
        ):
            if variable in environ and isinstance(data.get(section), dict):
                data[section] = copy.copy(data[section])  # keeps the YAML line numbers
                data[section][key] = environ[variable]
    settings = read_section(AgentSettings, data)
    token = settings.platform.token
    if token in KNOWN_PUBLIC_SECRETS:
        raise ConfigError(
            [
                f"platform.token: is {KNOWN_PUBLIC_SECRETS[token]}, which anyone can read: give "
                f"this gateway its own token (e.g. {GENERATE_SECRET}) in the platform's "
                f"sms.gateways and here (or in {TOKEN_VARIABLE})"
            ]
        )
    return settings


def load_agent_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> AgentSettings:
    """Read and check agent.yaml; ConfigError lists every problem."""
    return agent_settings(read_yaml(path), environ)
