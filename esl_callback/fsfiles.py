"""The FreeSWITCH files of a real install, written from the controller's configuration.

`esl-callback freeswitch files -c config.yaml --out DIR` writes them, laid out as under
FreeSWITCH's configuration directory, so that an address or a secret is set once, in the
configuration, never by hand in two places:

- the dialplan's ``socket HOST:PORT async full`` is ``outbound.socket_address`` (advertise, else
  bind and port), where the controller listens;
- event_socket.conf.xml listens where the node says (``freeswitch.nodes[].host``/``port``), with
  the node's password, and fs_cli.conf gives fs_cli the same login;
- the ``esl_controller`` ACL lets in loopback, the node's own address and the controller's;
- the directory user (for ``userauth``) has the node's password as its esl-password;
- the chatplan takes the SMS sent to ``sms.numbers``;
- json_cdr.conf.xml posts each channel's CDR to the portal (``cdr``: its url, or ``web.bind`` and
  ``web.port``) with ``cdr.username`` and ``cdr.password``.

Each file is a template in esl_callback/fsconf/ with ``{{name}}`` markers. The files shipped in
freeswitch/ and dialplan/ are these templates for the default configuration with placeholders
(``--placeholders``: CHANGE-ME values instead of secrets, example numbers where the configuration
has none); tests/test_freeswitch_files.py checks that they are.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from xml.sax.saxutils import escape

from esl_callback import numbers
from esl_callback.callback.switch_cdr import PATH as CDR_PATH
from esl_callback.config import KNOWN_PUBLIC_SECRETS, NodeSettings, Settings, local_url

DIRECTORY_USER = "esl-callback@esl-callback.invalid"
PLACEHOLDER_PASSWORD = "CHANGE-ME-long-random-secret"
PLACEHOLDER_ESL_PASSWORD = "CHANGE-ME-esl-password-long-random"
PLACEHOLDER_SIP_PASSWORD = "CHANGE-ME-sip-password-long-random-never-used"
PLACEHOLDER_CDR_PASSWORD = "CHANGE-ME-cdr-password-long-random"
EXAMPLE_SMS_NUMBERS = ("4930100300", "4930100400")
ACL_EXAMPLE = '  <!-- <node type="allow" cidr="10.0.0.5/32"/>  a controller on another host -->'
_MARKER = re.compile(r"\{\{(\w+)\}\}")


class FilesError(Exception):
    """The files cannot be written from this configuration; ``messages`` says why."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class ConfFile:
    """One file: where it goes, its template, and the repository file that is its default."""

    path: str  # under FreeSWITCH's configuration directory (fs_cli.conf: /etc/fs_cli.conf)
    template: str  # in esl_callback/fsconf/
    shipped: str | None  # in the repository; None: none is shipped
    secret: bool  # holds a password: written mode 0600


EVENT_SOCKET = ConfFile(
    "autoload_configs/event_socket.conf.xml",
    "event_socket.conf.xml",
    "freeswitch/autoload_configs/event_socket.conf.xml",
    secret=True,
)
ACL = ConfFile(
    "autoload_configs/acl.conf.xml.snippet",
    "acl.conf.xml.snippet",
    "freeswitch/autoload_configs/acl.conf.xml.snippet",
    secret=False,
)
SWITCH = ConfFile(
    "autoload_configs/switch.conf.xml.snippet",
    "switch.conf.xml.snippet",
    "freeswitch/autoload_configs/switch.conf.xml.snippet",
    secret=False,
)
DIRECTORY = ConfFile(
    "directory/esl-callback.xml",
    "directory.xml",
    "freeswitch/directory/esl-callback.xml",
    secret=True,
)
DIALPLAN = ConfFile(
    "dialplan/public/00_esl-callback.xml", "dialplan.xml", "dialplan/esl-callback.xml", secret=False
)
CHATPLAN = ConfFile(
    "chatplan/esl-callback.xml",
    "chatplan.xml",
    "freeswitch/chatplan/esl-callback.xml",
    secret=False,
)
AUTH_MESSAGES = ConfFile(
    "sip_profiles/auth-messages.xml.snippet",
    "auth-messages.xml.snippet",
    "freeswitch/sip_profiles/auth-messages.xml.snippet",
    secret=False,
)
JSON_CDR = ConfFile(
    "autoload_configs/json_cdr.conf.xml",
    "json_cdr.conf.xml",
    "freeswitch/autoload_configs/json_cdr.conf.xml",
    secret=True,
)
FS_CLI = ConfFile("fs_cli.conf", "fs_cli.conf", None, secret=True)
FILES = (
    EVENT_SOCKET,
    ACL,
    SWITCH,
    DIRECTORY,
    DIALPLAN,
    CHATPLAN,
    AUTH_MESSAGES,
    JSON_CDR,
    FS_CLI,
)


@dataclass(frozen=True)
class Written:
    """A file as written for one configuration: its text, or None and why it is not written."""

    file: ConfFile
    text: str | None
    note: str


@dataclass(frozen=True)
class Result:
    files: list[Written]
    warnings: list[str]


def template(name: str) -> str:
    return resources.files("esl_callback").joinpath("fsconf", name).read_text("utf-8")


def fill(text: str, values: dict[str, str]) -> str:
    """Every ``{{name}}`` of `text` replaced by its value (an unknown name is a bug)."""

    def value(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _MARKER.sub(value, text)


def pick_node(settings: Settings, name: str | None) -> tuple[int, NodeSettings]:
    """The node named `name` (its index too); without a name, the only node."""
    nodes = settings.freeswitch.nodes
    if name is None:
        if len(nodes) > 1:
            names = ", ".join(node.name for node in nodes)
            raise FilesError(
                [f"freeswitch.nodes has {len(nodes)} nodes ({names}): pick one with --node NAME"]
            )
        return 0, nodes[0]
    for index, node in enumerate(nodes):
        if node.name == name:
            return index, node
    names = ", ".join(node.name for node in nodes)
    raise FilesError([f"no node named {name!r} in freeswitch.nodes ({names})"])


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _cidr(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"{address}/{address.max_prefixlen}"


def _is_local(host: str) -> bool:
    """Whether the node is on the controller's host (loopback)."""
    address = _ip(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def acl_entries(
    settings: Settings, node: NodeSettings, where: str
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """The `esl_controller` list's networks (each with a note or None), and warnings about
    addresses it cannot know."""
    host = _ip(node.host)
    if node.host == "localhost":  # FreeSWITCH resolves it, to either loopback address
        return [("127.0.0.1/32", None), ("::1/128", None)], []
    if host is not None and host.is_loopback:
        return [(_cidr(host) if host.version == 6 else "127.0.0.1/32", None)], []
    # The switch is on another host: fs_cli there connects from its listen-ip, the controller
    # from its own address.
    entries: list[tuple[str, str | None]] = [("127.0.0.1/32", None)]
    warnings = []
    if host is not None:
        entries.append((_cidr(host), f"{where}.host: fs_cli, and a controller on this host"))
    else:
        warnings.append(
            f"{ACL.path}: {where}.host is the name {node.host}: add the address it has on the "
            "switch to the esl_controller list by hand (for fs_cli on that host)"
        )
    outbound = settings.outbound
    controller = _ip(outbound.socket_address.rsplit(":", 1)[0])
    if controller is not None and not controller.is_loopback:
        source = "outbound.advertise" if outbound.advertise else "outbound.bind"
        if _cidr(controller) not in [cidr for cidr, _ in entries]:
            entries.append((_cidr(controller), f"the controller ({source})"))
    else:
        warnings.append(
            f"{ACL.path}: the configuration does not name the controller's own address "
            "(outbound.advertise, or outbound.bind, an IP address): add it to the "
            f"esl_controller list by hand, or the switch at {node.host} refuses the controller"
        )
    return entries, warnings


def _dialplan_reaches_controller(settings: Settings, node: NodeSettings) -> list[str]:
    """A warning when a switch on another host would be told to connect to its own loopback."""
    address = settings.outbound.socket_address
    if _is_local(node.host) or not _is_local(address.rsplit(":", 1)[0].strip("[]")):
        return []
    return [
        f"{DIALPLAN.path}: tells the switch at {node.host} to connect calls to {address}, its own "
        "loopback: set outbound.bind (or outbound.advertise) to the address the switch reaches "
        "this controller at"
    ]


def acl_lines(entries: list[tuple[str, str | None]]) -> list[str]:
    """The list's <node> lines; with loopback alone, an example for a controller elsewhere."""
    lines = [
        f'  <node type="allow" cidr="{cidr}"/>' + (f"  <!-- {note} -->" if note else "")
        for cidr, note in entries
    ]
    return [*lines, ACL_EXAMPLE] if len(entries) == 1 else lines


def _switch_allowed(settings: Settings, node: NodeSettings, where: str) -> list[str]:
    """A warning when the node's address is not among the peers the outbound server serves."""
    host = _ip(node.host)
    outbound = settings.outbound
    if host is None or host.is_loopback or not outbound.allow:
        return []
    if outbound.allows(str(host)):
        return []
    return [
        f"outbound.allow does not include {host} ({where}.host): the controller drops the calls "
        "that switch sends to its outbound server; add the switch's address to outbound.allow"
    ]


def _password_problems(password: str, what: str) -> list[str]:
    if "$$" in password:
        return [f"{what}: contains $$, which FreeSWITCH's preprocessor would expand: pick another"]
    return []


def cdr_url(settings: Settings) -> str:
    """Where the switch posts its CDRs: the portal as the switch reaches it, and the path."""
    base = settings.cdr.url or local_url(settings.web.bind, settings.web.port)
    return base.rstrip("/") + CDR_PATH


def render(
    settings: Settings,
    node_name: str | None = None,
    *,
    placeholders: bool = False,
    token: Callable[[], str] = lambda: secrets.token_hex(32),
) -> Result:
    """The files for the node `node_name` of `settings` (raises FilesError when they cannot be
    written from it). With `placeholders`, every secret is its CHANGE-ME placeholder and every
    file is written, with example numbers where the configuration has none."""
    index, node = pick_node(settings, node_name)
    where = f"freeswitch.nodes[{index}]"
    errors: list[str] = []
    warnings = _switch_allowed(settings, node, where) + _dialplan_reaches_controller(settings, node)
    userauth = node.user is not None
    if userauth and node.user != DIRECTORY_USER:
        errors.append(
            f"{where}.user: is {node.user}; the directory file defines {DIRECTORY_USER}, in a "
            "domain of its own that no phone uses: set user to that"
        )
    known = KNOWN_PUBLIC_SECRETS.get(node.password)
    if known is not None and not placeholders:
        errors.append(
            f"{where}.password: is {known}, which anyone can read: set one of your own first "
            "(e.g. `openssl rand -hex 32`) in the configuration or in ESL_CALLBACK_ESL_PASSWORD "
            "(or write the files with --placeholders and replace each CHANGE-ME by hand)"
        )
    errors += _password_problems(node.password, f"{where}.password")
    errors += _password_problems(settings.cdr.password, "cdr.password")
    rules = settings.numbers
    sms_numbers = []
    for raw in settings.sms.numbers:
        try:
            sms_numbers.append(
                numbers.normalise(raw, rules, what="sms.numbers", allow_formatting=True)
            )
        except numbers.InvalidNumber as problem:
            errors.append(str(problem))
    if errors:
        raise FilesError(errors)

    if placeholders:
        password, esl_password, sip_password = (
            PLACEHOLDER_PASSWORD,
            PLACEHOLDER_ESL_PASSWORD,
            PLACEHOLDER_SIP_PASSWORD,
        )
    elif userauth:
        password, esl_password, sip_password = token(), node.password, token()
    else:
        password, esl_password, sip_password = node.password, "", ""
    acl, acl_warnings = acl_entries(settings, node, where)
    warnings += acl_warnings
    xml_values = {
        key: escape(value, {'"': "&quot;"})
        for key, value in {
            "socket_address": settings.outbound.socket_address,
            "listen_ip": node.host,
            "listen_port": str(node.port),
            "password": password,
            "esl_password": esl_password,
            "sip_password": sip_password,
            "sms_numbers": "|".join(dict.fromkeys(sms_numbers or EXAMPLE_SMS_NUMBERS)),
            "url": cdr_url(settings),
            "cred": f"{settings.cdr.username}:"
            + (PLACEHOLDER_CDR_PASSWORD if placeholders else settings.cdr.password),
            "retries": str(settings.cdr.retries),
            "delay": str(settings.cdr.delay_seconds),
            "timeout": str(settings.cdr.timeout_seconds),
            "err_log_dir": settings.cdr.err_log_dir,
        }.items()
    }
    xml_values["acl_nodes"] = "\n".join(acl_lines(acl))
    login = f"the password of {where}"
    if userauth and not placeholders:
        login = f"a new random one for fs_cli ({where} logs in as {DIRECTORY_USER})"

    written = []
    for file in FILES:
        note = ""
        if file is EVENT_SOCKET:
            note = f"listens on {node.host}:{node.port}, password: {login}"
        elif file is ACL:
            note = "esl_controller: " + ", ".join(cidr for cidr, _ in acl)
        elif file is DIRECTORY:
            if not userauth and not placeholders:
                written.append(
                    Written(
                        file,
                        None,
                        f"not written: {where}.user is not set (auth with the "
                        "event socket's password, no directory user)",
                    )
                )
                continue
            note = f"{DIRECTORY_USER}, esl-password: the password of {where}"
        elif file is SWITCH:
            note = "max-sessions and sessions-per-second, for switch.conf.xml"
        elif file is AUTH_MESSAGES:
            note = "auth-messages=true, for each SIP profile that receives SMS"
        elif file is DIALPLAN:
            note = f"socket {settings.outbound.socket_address} async full"
        elif file is JSON_CDR:
            if not settings.cdr.enabled and not placeholders:
                written.append(Written(file, None, "not written: cdr.enabled is false"))
                continue
            note = f"posts each channel's CDR to {cdr_url(settings)}"
        elif file is CHATPLAN:
            if not sms_numbers and not placeholders:
                written.append(Written(file, None, "not written: sms.numbers is empty"))
                continue
            note = f"SMS to {', '.join(sms_numbers or EXAMPLE_SMS_NUMBERS)}"
        elif file is FS_CLI:
            if ";;" in password:
                warnings.append(
                    f"{FS_CLI.path}: not written: fs_cli.conf cannot hold a password with ;; "
                    "(it starts a comment there)"
                )
                written.append(Written(file, None, "not written: the password holds ;;"))
                continue
            text = fill(
                template(file.template),
                {"host": node.host, "port": str(node.port), "password": password},
            )
            written.append(Written(file, text, f"fs_cli's login to {node.host}:{node.port}"))
            continue
        written.append(Written(file, fill(template(file.template), xml_values), note))
    return Result(written, warnings)
