"""The simulator's YAML configuration (with a built-in demo dialplan and phones)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from esl_callback.simulator.chatplan import Chatplan
from esl_callback.simulator.dialplan import Dialplan
from esl_callback.simulator.json_cdr import JsonCdrConfig

DEMO_CONFIG = "demo.yaml"


class ConfigError(ValueError):
    """The simulator configuration is invalid."""


@dataclass
class UserSpec:
    """A directory user (``user/EXT``): registered users ring the extension EXT in ``context``.

    A registered user's phone is at ``contact`` (host[:port], what `sofia_contact` shows) and
    answers the SIP MESSAGEs the ``chat`` API sends it, unless ``answers_messages`` is false: a
    phone that is registered but silent, to which sofia retransmits until the transaction times
    out while ``chat`` waits (see `Simulator.send_chat`).
    """

    registered: bool = False
    context: str = "phones"
    contact: str = "127.0.0.1"
    answers_messages: bool = True


@dataclass
class GatewaySpec:
    """A SIP gateway (``sofia/gateway/NAME/NUMBER``): NUMBER is routed in ``context``."""

    context: str


@dataclass
class SimConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8021
    password: str = "ClueCon"
    inbound_acl: list[str] = field(default_factory=list)
    speed: float = 1.0
    hostname: str = field(default_factory=socket.gethostname)
    ipv4: str = "127.0.0.1"
    ipv6: str = "::1"
    max_sessions: int = 1000
    sessions_per_second: int = 30
    event_queue_limit: int = 100_000
    event_loss_limit: int = 500
    poll_ms: int = 20
    media_frame_ms: int = 20  # ptime of the channels' media (mod_loopback: L16 at 20 ms)
    globals: dict[str, str] = field(default_factory=dict)
    sound_files: dict[str, float] = field(default_factory=dict)
    default_sound_seconds: float = 2.0
    users: dict[str, UserSpec] = field(default_factory=dict)
    gateways: dict[str, GatewaySpec] = field(default_factory=dict)
    dialplan: Dialplan = field(default_factory=Dialplan)
    chatplan: Chatplan = field(default_factory=Chatplan)
    json_cdr: JsonCdrConfig = field(default_factory=JsonCdrConfig)

    def __post_init__(self) -> None:
        parse_media_frame_ms(self.media_frame_ms)

    def allows(self, address: str) -> bool:
        """apply-inbound-acl: an empty list allows everybody."""
        if not self.inbound_acl:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(net, strict=False) for net in self.inbound_acl)


# switch_time.c refuses timers outside 1..2000 ms (MAX_INTERVAL).
MEDIA_FRAME_MS_RANGE = (1, 2000)


def parse_media_frame_ms(value: Any) -> int:
    """``switch: media_frame_ms``: a whole number of milliseconds a timer can tick by."""
    low, high = MEDIA_FRAME_MS_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"switch.media_frame_ms must be a whole number of milliseconds from {low} to {high}, "
            f"not {value!r}"
        )
    return value


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8021`` for IPv6)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


# The keys a simulator configuration may have (others are refused: a misspelt key, or a
# controller's configuration given by mistake, would otherwise be ignored without a word).
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "esl",
            "switch",
            "sounds",
            "globals",
            "users",
            "gateways",
            "dialplan",
            "chatplan",
            "phones",
            "speed",
            "json_cdr",
        }
    ),
    "json_cdr": frozenset({"urls", "cred", "retries", "delay", "timeout", "err_log_dir"}),
    "esl": frozenset({"listen", "password", "apply_inbound_acl"}),
    "switch": frozenset(
        {
            "hostname",
            "ipv4",
            "ipv6",
            "max_sessions",
            "sessions_per_second",
            "event_queue_limit",
            "event_loss_limit",
            "media_frame_ms",
        }
    ),
    "sounds": frozenset({"files", "default_seconds"}),
}


def _known(data: dict[str, Any], name: str) -> None:
    unknown = sorted(str(key) for key in data if key not in KNOWN_KEYS[name])
    if unknown:
        where = f"in '{name}' " if name else ""
        raise ConfigError(
            f"unknown key(s) {where}{', '.join(unknown)}: this is not a simulator configuration "
            f"or a key is misspelt (known: {', '.join(sorted(KNOWN_KEYS[name]))})"
        )


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"'{name}' must be a mapping")
    if name in KNOWN_KEYS:
        _known(value, name)
    return value


def from_mapping(data: dict[str, Any]) -> SimConfig:
    """Build a SimConfig from parsed YAML; unknown keys are refused (ConfigError)."""
    _known(data, "")
    esl = _section(data, "esl")
    switch = _section(data, "switch")
    sounds = _section(data, "sounds")
    config = SimConfig()
    if "listen" in esl:
        config.listen_host, config.listen_port = parse_listen(str(esl["listen"]))
    config.password = str(esl.get("password", config.password))
    config.inbound_acl = [str(net) for net in esl.get("apply_inbound_acl", ())]
    for net in config.inbound_acl:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise ConfigError(f"bad ACL entry {net!r}") from exc
    config.speed = float(data.get("speed", config.speed))
    for key in ("hostname", "ipv4", "ipv6"):
        if key in switch:
            setattr(config, key, str(switch[key]))
    for key in ("max_sessions", "sessions_per_second", "event_queue_limit", "event_loss_limit"):
        if key in switch:
            setattr(config, key, int(switch[key]))
    if "media_frame_ms" in switch:
        config.media_frame_ms = parse_media_frame_ms(switch["media_frame_ms"])
    config.globals = {str(k): str(v) for k, v in _section(data, "globals").items()}
    config.sound_files = {str(k): float(v) for k, v in (sounds.get("files") or {}).items()}
    config.default_sound_seconds = float(sounds.get("default_seconds", 2.0))
    config.users = {str(k): _user(v or {}) for k, v in _section(data, "users").items()}
    config.gateways = {
        str(k): GatewaySpec(str((v or {}).get("context", "public")))
        for k, v in _section(data, "gateways").items()
    }
    config.dialplan = Dialplan.from_config(_section(data, "dialplan"), _section(data, "phones"))
    config.chatplan = Chatplan.from_config(_section(data, "chatplan"))
    config.json_cdr = _json_cdr(_section(data, "json_cdr"))
    return config


def _json_cdr(spec: dict[str, Any]) -> JsonCdrConfig:
    """``json_cdr:`` as json_cdr.conf.xml's params: urls (url, one or more), cred, retries,
    delay, timeout (seconds), err_log_dir."""
    urls = spec.get("urls") or []
    if isinstance(urls, str):
        urls = [urls]
    try:
        return JsonCdrConfig(
            urls=[str(url) for url in urls],
            cred=str(spec["cred"]) if spec.get("cred") else None,
            retries=int(spec.get("retries", 0)),
            delay=float(spec.get("delay", 5.0)),
            timeout=float(spec.get("timeout", 0.0)),
            err_log_dir=str(spec["err_log_dir"]) if spec.get("err_log_dir") else None,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"json_cdr: {exc}") from None


def _user(spec: dict[str, Any]) -> UserSpec:
    return UserSpec(
        bool(spec.get("registered", False)),
        str(spec.get("context", "phones")),
        str(spec.get("contact", "127.0.0.1")),
        bool(spec.get("answers_messages", True)),
    )


def load(path: str | Path | None = None) -> SimConfig:
    """Load a YAML file, or the built-in demo configuration when ``path`` is None."""
    if path is None:
        text = resources.files("esl_callback.simulator").joinpath(DEMO_CONFIG).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a YAML mapping")
    return from_mapping(data)
