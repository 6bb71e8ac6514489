"""mod_json_cdr: each channel's CDR POSTed over HTTP as it is torn down.

As FreeSWITCH 1.10.12 does (tests/fixtures/freeswitch-wire/http-json-cdr-*.txt):

* the document is switch_ivr_generate_json_cdr's, printed by cJSON_PrintUnformatted (one line,
  no spaces): core-uuid, switchname, channel_data, callStats, variables (every value
  URL-encoded by switch_url_encode with encode-values, the default), app_log, callflow;
* it is posted from the channel's own session thread in CS_REPORTING, before
  CHANNEL_HANGUP_COMPLETE, so the channel's teardown waits for the answer: one new connection
  per attempt, `POST <url>?uuid=<uuid> HTTP/1.1`, headers Host, Authorization (Basic, sent up
  front), User-Agent: freeswitch-json/1.0, Accept: */*, Content-Type: application/json,
  Content-Length; the body has no trailing newline;
* only the status code counts: 2xx is delivered, anything else (an error, a refused or reset
  connection, no answer within `timeout` seconds for the whole request) is a failure, tried
  `retries` more times `delay` seconds apart; one round-robin index over the urls, shared by
  every channel, moves on after each failure;
* after the last failure the document (plus one LF) is written to the first `err_log_dir` as
  `<uuid>.cdr.json` and never sent again.

Every channel is posted (log-b-leg=true, as the shipped json_cdr.conf.xml says); encode=false.
The channel flags are those the capture shows for a loopback leg of that direction: the
simulator keeps no channel flags.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import gevent
import gevent.socket

if TYPE_CHECKING:
    from esl_callback.simulator.channel import Channel
    from esl_callback.simulator.core import Simulator

log = logging.getLogger(__name__)

USER_AGENT = "freeswitch-json/1.0"
# SWITCH_URL_UNSAFE (switch_utils.h); bytes below space or above ~ are encoded too.
URL_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
HEX = b"0123456789ABCDEF"
# switch_channel_get_flag_string of the loopback legs captured (the simulator keeps no flags).
FLAGS = {
    "inbound": "0=1;1=1;22=1;40=1;42=1;55=1;123=1;160=1",
    "outbound": "0=1;1=1;2=1;7=1;22=1;40=1;42=1;55=1;62=1;160=1;165=1",
}
TIMES = (
    ("created_time", "created"),
    ("profile_created_time", "profile_created"),
    ("progress_time", "progress"),
    ("progress_media_time", "progress_media"),
    ("answered_time", "answered"),
    ("bridged_time", "bridged"),
    ("last_hold_time", "last_hold"),
    ("hold_accum_time", "hold_accum"),
    ("hangup_time", "hungup"),
    ("resurrect_time", "resurrected"),
    ("transfer_time", "transferred"),
)


@dataclass
class JsonCdrConfig:
    """json_cdr.conf.xml's settings the simulator follows (`json_cdr:` in its YAML)."""

    urls: list[str] = field(default_factory=list)  # none: mod_json_cdr is not loaded
    cred: str | None = None  # user:password, sent as Basic auth
    retries: int = 0
    delay: float = 5.0  # mod_json_cdr makes a 0 delay with retries 5 s
    timeout: float = 0.0  # 0: curl's default, no limit
    err_log_dir: str | None = None
    encode_values: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


def url_encode(value: str) -> str:
    """switch_url_encode: unsafe bytes as %XX (upper case); an existing %XX is kept."""
    data = value.encode("utf-8")
    out = bytearray()
    for i, byte in enumerate(data):
        kept_escape = (
            byte == ord("%") and len(data) - i > 2 and data[i + 1] in HEX and data[i + 2] in HEX
        )
        if not kept_escape and (byte < 0x20 or byte > 0x7E or byte in URL_UNSAFE):
            out += b"%" + bytes((HEX[byte >> 4], HEX[byte & 0x0F]))
        else:
            out.append(byte)
    return out.decode("ascii")


def document(sim: Simulator, ch: Channel, encode_values: bool = True) -> dict[str, Any]:
    """switch_ivr_generate_json_cdr for one channel in CS_REPORTING."""
    p = ch.profile
    cdr: dict[str, Any] = {
        "core-uuid": sim.identity.core_uuid,
        "switchname": sim.identity.hostname,
        "channel_data": {
            "state": "CS_REPORTING",
            "direction": ch.direction,
            "state_number": "11",
            "flags": FLAGS.get(ch.direction, ""),
            "caps": "",
        },
        "callStats": {},
        "variables": {
            name: url_encode(value) if encode_values else value
            for name, value in ch.vars.items()
            if name and value
        },
    }
    if ch.app_log:
        cdr["app_log"] = {
            "applications": [
                {"app_name": app, "app_data": arg or "", "app_stamp": str(stamp)}
                for app, arg, stamp in ch.app_log
            ]
        }
    flow: dict[str, Any] = {}
    if p.dialplan:
        flow["dialplan"] = p.dialplan
    if p.profile_index:
        flow["profile_index"] = p.profile_index
    if ch.extension:
        flow["extension"] = {
            "name": ch.extension_name,
            "number": ch.extension_number,
            "applications": [{"app_name": app, "app_data": arg or ""} for app, arg in ch.extension],
        }
    flow["caller_profile"] = {
        "username": p.username,
        "dialplan": p.dialplan,
        "caller_id_name": p.caller_id_name,
        "ani": p.ani,
        "aniii": p.aniii,
        "caller_id_number": p.caller_id_number,
        "network_addr": p.network_addr,
        "rdnis": p.rdnis,
        "destination_number": p.destination_number,
        "uuid": p.uuid,
        "source": p.source,
        "context": p.context,
        "chan_name": p.chan_name,
    }
    flow["times"] = {name: str(getattr(p.times, attr)) for name, attr in TIMES}
    cdr["callflow"] = [flow]
    return cdr


def document_text(sim: Simulator, ch: Channel, encode_values: bool = True) -> str:
    """The document as cJSON_PrintUnformatted prints it."""
    return json.dumps(document(sim, ch, encode_values), separators=(",", ":"), ensure_ascii=False)


def request_bytes(url: str, uuid: str, cred: str | None, body: bytes) -> bytes:
    """The HTTP request libcurl sends for one attempt (no Expect: the bodies are small)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    lines = [f"POST {path}?uuid={uuid} HTTP/1.1", f"Host: {parts.netloc}"]
    if cred:
        lines.append(f"Authorization: Basic {base64.b64encode(cred.encode()).decode()}")
    lines += [
        f"User-Agent: {USER_AGENT}",
        "Accept: */*",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class Poster:
    """The module's state in one switch: its settings and the shared round-robin url index."""

    def __init__(self, sim: Simulator, config: JsonCdrConfig) -> None:
        self.sim = sim
        self.config = config
        self.url_index = 0
        # (uuid, status) of the latest attempts, for tests and the curious
        self.posted: deque[tuple[str, int]] = deque(maxlen=10_000)

    def report(self, ch: Channel) -> None:
        """The on_reporting handler: post the channel's CDR, with retries, else back it up."""
        cfg = self.config
        text = document_text(self.sim, ch, cfg.encode_values)
        body = text.encode("utf-8")
        for attempt in range(cfg.retries + 1):
            if attempt:
                self.sim.clock.sleep(cfg.delay or 5.0)
            url = cfg.urls[self.url_index]
            status = self.attempt(url, ch.uuid, body)
            self.posted.append((ch.uuid, status))
            if 200 <= status < 300:
                return
            log.error("%s Got error [%d] posting to web server [%s]", ch.uuid, status, url)
            self.url_index = (self.url_index + 1) % len(cfg.urls)
        log.error("%s Unable to post to web server", ch.uuid)
        self.backup(ch.uuid, text)

    def attempt(self, url: str, uuid: str, body: bytes) -> int:
        """One POST on a new connection; the status code, 0 for no answer (CURLOPT_TIMEOUT:
        `timeout` for the whole request)."""
        limit = self.sim.clock.real(self.config.timeout) if self.config.timeout else None
        status = 0
        with gevent.Timeout(limit, False):
            status = self._post(url, request_bytes(url, uuid, self.config.cred, body))
        return status

    @staticmethod
    def _post(url: str, request: bytes) -> int:
        parts = urlsplit(url)
        try:
            address = (parts.hostname or "127.0.0.1", parts.port or 80)
            sock = gevent.socket.create_connection(address)
        except (OSError, ValueError):
            return 0
        try:
            sock.sendall(request)
            return _status(sock)
        except OSError:
            return 0
        finally:
            sock.close()

    def backup(self, uuid: str, text: str) -> None:
        """backup_cdr: the document and one LF in err_log_dir/<uuid>.cdr.json."""
        folder = self.config.err_log_dir
        if not folder:
            return
        path = os.path.join(folder, f"{uuid}.cdr.json")
        try:
            with open(path, "w", encoding="utf-8") as file:
                file.write(text + "\n")
        except OSError as exc:
            log.error("%s Can't open %s! [%s]", uuid, path, exc.strerror)
            return
        log.info("%s Backup file %s", uuid, path)


def _status(sock: Any) -> int:
    """The status code of the answer's status line (0 if there is none)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        data += chunk
    fields = data.split(b"\r\n", 1)[0].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
