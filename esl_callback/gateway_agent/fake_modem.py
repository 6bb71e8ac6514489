"""A simulated GSM modem on a pseudo-terminal, for tests and the demo.

The agent opens it like a real modem's serial port: `link` is a symlink to the pty's slave side
(as udev's /dev/serial/by-id/... links are), and it answers the AT commands the agent uses as
real modems do: echo until ATE0, `OK` / `ERROR` / `+CME ERROR: n` / `+CMS ERROR: n`, the `> `
prompt of AT+CMGS, SMS stored on the "SIM" and announced with `+CMTI`, or delivered directly
with `+CMT`, in PDU mode (AT+CMGF=0) or text mode (AT+CMGF=1, AT+CSDH=1). Its control side
makes it ring with a caller ID (RING and +CLIP, repeated until the call is hung up with
AT+CHUP or ATH), receive an SMS (any text: long ones in parts, UCS2 when needed), send garbage,
answer slowly, stop answering (`hang`), or be unplugged (the pty closed, the link removed) and
plugged in again. `transcript` records the conversation, both ways.

`serve_control(path)` answers JSON lines on a Unix socket, for `esl-callback fake-modem`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import socket
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esl_callback.gateway_agent import pdu

log = logging.getLogger(__name__)

STAT_NAMES = {0: "REC UNREAD", 1: "REC READ", 2: "STO UNSENT", 3: "STO SENT"}
CMS_SIM_PIN_REQUIRED = "+CMS ERROR: 311"
CMS_INVALID_INDEX = "+CMS ERROR: 321"
CMS_MEMORY_FULL = "+CMS ERROR: 322"


@dataclass
class Stored:
    """One message in the SIM's storage: its status and its PDU (with service centre)."""

    stat: int
    pdu: str


class FakeModem:
    """A modem on a pty; see the module docstring."""

    def __init__(
        self,
        link: str | Path,
        *,
        pin: str | None = None,
        reply_delay: float = 0.0,
        ring_interval: float = 3.0,
        capacity: int = 30,
    ) -> None:
        self.link = Path(link)
        self.pin = pin
        self.pin_attempts = 3
        self.reply_delay = reply_delay
        self.ring_interval = ring_interval
        self.capacity = capacity
        self.lock = threading.RLock()
        self.transcript: list[str] = []
        self.commands: list[str] = []
        self.storage: dict[int, Stored] = {}
        self.sent: list[pdu.Submit] = []
        self.hangups = 0
        self.signal = 20
        self.registration = 1
        self.hung = False
        self.plugged = False
        self.failures: dict[str, str] = {}  # command prefix -> result, once
        self.inside_next_answer: list[bytes] = []
        self._reset_settings()
        self._master: int | None = None
        self._slave: int | None = None
        self._buffer = b""
        self._prompt: str | None = None  # the AT+CMGS waiting for its payload
        self._ringing: tuple[str | None, bool] | None = None
        self._next_ring = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._control: socket.socket | None = None
        self._reference = 0

    def _reset_settings(self) -> None:
        self.echo = True
        self.pdu_mode = True
        self.show_header = False
        self.clip = False
        self.new_message_mode = 0  # AT+CNMI <mt>: 1 store and +CMTI, 2 deliver with +CMT
        self.pin_ok = self.pin is None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> FakeModem:
        self.plug()
        self._thread = threading.Thread(target=self._run, name="fake-modem", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.unplug()
        if self._control is not None:
            self._control.close()

    def plug(self) -> None:
        """Plug the modem in: a new pty, the link pointing at it, settings as after power-on."""
        with self.lock:
            master, slave = os.openpty()
            tty.setraw(slave)  # what the agent's pyserial sets too: no echo, no CR/LF mapping
            os.set_blocking(master, False)
            temporary = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(os.ttyname(slave))
            temporary.replace(self.link)
            # The modem keeps a slave descriptor too: the agent closing the port is no hangup.
            self._master, self._slave = master, slave
            self._buffer, self._prompt, self._ringing = b"", None, None
            self._reset_settings()
            self.hung = False
            self.plugged = True

    def unplug(self) -> None:
        """Pull the USB plug: the pty closes under the agent, the link disappears."""
        with self.lock:
            if not self.plugged:
                return
            self.plugged = False
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None

    # -- control ------------------------------------------------------------------------------

    def ring(self, caller: str | None, *, withheld: bool = False) -> None:
        """An incoming call: RING, then +CLIP with `caller` (withheld: CLI validity 1, no
        number; None: no +CLIP at all), repeated every `ring_interval` until hung up."""
        with self.lock:
            self._ringing = (caller, withheld)
            self._next_ring = 0.0
        self._ring_if_due()

    def receive_sms(
        self,
        sender: str,
        text: str,
        *,
        direct: bool = False,
        force_ucs2: bool = False,
        wide_reference: bool = False,
    ) -> list[int]:
        """An SMS from `sender` (in parts if long); the SIM indexes it was stored at."""
        with self.lock:
            self._reference = (self._reference + 1) % 65536
            pdus = pdu.deliver_pdus(
                sender,
                text,
                reference=self._reference,
                wide_reference=wide_reference,
                force_ucs2=force_ucs2,
            )
        return [self.receive_pdu(part, direct=direct) for part in pdus]

    def receive_pdu(self, hex_pdu: str, *, direct: bool = False) -> int:
        """A raw SMS-DELIVER PDU (which may be malformed); stored and announced as `+CMTI`, or
        sent as `+CMT` when `direct` (or AT+CNMI asked for it). Returns the index, -1 if not
        stored."""
        with self.lock:
            if direct or self.new_message_mode == 2:
                length = _tpdu_length(hex_pdu)
                if self.pdu_mode:
                    self._send(f"\r\n+CMT: ,{length}\r\n{hex_pdu}\r\n")
                else:
                    header, data = text_view(hex_pdu, self.show_header)
                    self._send(f"\r\n+CMT: {header}\r\n{data}\r\n")
                return -1
            index = next(i for i in range(1, self.capacity + 2) if i not in self.storage)
            if index > self.capacity:
                raise RuntimeError("the fake SIM is full")
            self.storage[index] = Stored(0, hex_pdu)
            if self.new_message_mode:
                self._send(f'\r\n+CMTI: "SM",{index}\r\n')
            return index

    def send_raw(self, data: bytes) -> None:
        """Bytes on the line as they are: noise, a URC the agent does not know."""
        with self.lock:
            self._write(data)

    def fail_next(self, prefix: str, result: str) -> None:
        """Answer the next command starting with `prefix` with `result` (e.g. +CMS ERROR: 500)."""
        with self.lock:
            self.failures[prefix.upper()] = result

    def hang(self) -> None:
        """Stop answering anything (firmware stuck), until `unhang` or a replug."""
        self.hung = True

    def unhang(self) -> None:
        self.hung = False

    def sent_messages(self) -> list[tuple[str, str]]:
        """(number, text) of each SMS the agent sent, the parts of a long one joined."""
        with self.lock:
            joined: list[tuple[str, str]] = []
            groups: dict[tuple[str, int], dict[int, str]] = {}
            for message in self.sent:
                if message.concat is None:
                    joined.append((message.number, message.text))
                    continue
                key = (message.number, message.concat.reference)
                parts = groups.setdefault(key, {})
                parts[message.concat.number] = message.text
                if len(parts) == message.concat.total:
                    joined.append((message.number, "".join(parts[n] for n in sorted(parts))))
            return joined

    # -- the line -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self._master
            if master is None:
                self._stop.wait(0.05)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.1)
                data = os.read(master, 4096) if ready else b""
            except OSError:  # unplugged meanwhile
                continue
            try:
                if data:
                    self._received(data)
                self._ring_if_due()
            except Exception:  # a bug here must not look like a modem that hangs
                log.exception("fake modem failed on %r", data)
                self._send("\r\nERROR\r\n")

    def _ring_if_due(self) -> None:
        with self.lock:
            if self._ringing is None or time.monotonic() < self._next_ring or self.hung:
                return
            caller, withheld = self._ringing
            self._next_ring = time.monotonic() + self.ring_interval
            self._send("\r\nRING\r\n")
            if self.clip and (caller is not None or withheld):
                number, kind, validity = ("", 128, 1) if withheld else (caller, 145, 0)
                if not withheld and not str(caller).startswith("+"):
                    kind = 129
                self._send(f'\r\n+CLIP: "{number}",{kind},"",,"",{validity}\r\n')

    def _received(self, data: bytes) -> None:
        with self.lock:
            if self.hung:
                self.transcript.append(f"(ignored while hung) {data!r}")
                return
            if self.echo:
                self._write(data)
            self._buffer += data
            while True:
                if self._prompt is not None:
                    end = re.search(rb"[\x1a\x1b]", self._buffer)
                    if end is None:
                        return
                    payload = self._buffer[: end.start()].decode("latin-1").strip()
                    cancelled = self._buffer[end.start()] == 0x1B
                    self._buffer = self._buffer[end.end() :]
                    command, self._prompt = self._prompt, None
                    self.transcript.append(f"> {payload}{' <ESC>' if cancelled else ' <^Z>'}")
                    if not cancelled:
                        self._answer(self._submit(command, payload))
                    continue
                end = self._buffer.find(b"\r")
                if end < 0:
                    return
                line = self._buffer[:end].decode("latin-1").strip()
                self._buffer = self._buffer[end + 1 :].lstrip(b"\n")
                if line:
                    self.transcript.append(f"> {masked_line(line)}")
                    self.commands.append(line)
                    self._command(line)

    def _answer(self, lines: list[str]) -> None:
        """Information lines then the final result code, after the reply delay."""
        if self.reply_delay:
            self.lock.release()
            try:
                time.sleep(self.reply_delay)
            finally:
                self.lock.acquire()
        *info, final = lines
        for line in info:
            self._send(f"\r\n{line}\r\n")
        for urc in self.inside_next_answer:  # a URC between the answer and its result code
            self._write(urc)
        self.inside_next_answer.clear()
        self._send(f"\r\n{final}\r\n")

    def _send(self, text: str) -> None:
        for line in text.split("\r\n"):
            if line:
                self.transcript.append(f"< {line}")
        self._write(text.encode("latin-1", "replace"))

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._master, data)

    # -- the commands -------------------------------------------------------------------------

    def _command(self, line: str) -> None:
        upper = line.upper()
        for prefix, result in list(self.failures.items()):
            if upper.startswith(prefix):
                del self.failures[prefix]
                self._answer([result])
                return
        if not upper.startswith("AT"):
            self._answer(["ERROR"])
            return
        if upper.startswith("AT+CMGS="):
            if not self.pin_ok:
                self._answer([CMS_SIM_PIN_REQUIRED])
                return
            self._prompt = line
            self.transcript.append("< >")
            self._write(b"\r\n> ")
            return
        self._answer(self._reply(upper[2:], line[2:]))

    def _reply(self, command: str, original: str) -> list[str]:
        """The answer lines, the final result code last."""
        if command in ("", "Z", "E0", "E1", "V1", "Q0"):
            if command == "Z":
                self._reset_settings()
                self.pin_ok = self.pin_ok or self.pin is None
            if command in ("E0", "E1"):
                self.echo = command == "E1"
            return ["OK"]
        if command in ("+CGMI", "+CGMM", "+CGMR", "+CGSN"):
            return [
                {"+CGMI": "FAKE", "+CGMM": "FAKE-GSM-1", "+CGMR": "1.0"}.get(command, "0"),
                "OK",
            ]
        if command.startswith("+CMEE=") or command.startswith("+CSCS="):
            return ["OK"]
        if command == "+CPIN?":
            if self.pin_attempts <= 0:
                return ["+CPIN: SIM PUK", "OK"]
            return ["+CPIN: READY" if self.pin_ok else "+CPIN: SIM PIN", "OK"]
        if command.startswith("+CPIN="):
            given = original[6:].strip().strip('"')
            if self.pin_ok:
                return ["OK"]
            if given == self.pin and self.pin_attempts > 0:
                self.pin_ok = True
                return ["OK"]
            self.pin_attempts -= 1
            return ["+CME ERROR: 16"]  # incorrect password
        if command == "+CSQ":
            return [f"+CSQ: {self.signal},99", "OK"]
        if command == "+CREG?":
            return [f"+CREG: 0,{self.registration}", "OK"]
        if command.startswith("+CLIP="):
            self.clip = command.endswith("1")
            return ["OK"]
        if command in ("+CHUP", "H", "H0"):
            if self._ringing is not None:
                self._ringing = None
                self.hangups += 1
            return ["OK"]
        if not self.pin_ok and command.startswith(("+CMG", "+CNMI", "+CPMS", "+CSDH")):
            return [CMS_SIM_PIN_REQUIRED]
        return self._sms_reply(command)

    def _sms_reply(self, command: str) -> list[str]:
        if command.startswith("+CMGF="):
            self.pdu_mode = command.endswith("0")
            return ["OK"]
        if command.startswith("+CSDH="):
            self.show_header = command.endswith("1")
            return ["OK"]
        if command.startswith("+CNMI="):
            fields = command[6:].split(",")
            self.new_message_mode = int(fields[1]) if len(fields) > 1 and fields[1] else 0
            return ["OK"]
        if command.startswith("+CPMS="):
            used = len(self.storage)
            return [
                f"+CPMS: {used},{self.capacity},{used},{self.capacity},{used},{self.capacity}",
                "OK",
            ]
        if command.startswith("+CMGR="):
            index = _number(command[6:])
            stored = self.storage.get(index)
            if stored is None:
                return ["OK"] if index is not None else [CMS_INVALID_INDEX]
            lines = [*self._listing(None, stored), "OK"]
            stored.stat = max(stored.stat, 1)
            return lines
        if command.startswith("+CMGL"):
            lines = []
            for index in sorted(self.storage):
                lines += self._listing(index, self.storage[index])
            for stored in self.storage.values():
                stored.stat = max(stored.stat, 1)
            return [*lines, "OK"]
        if command.startswith("+CMGD="):
            index = _number(command[6:].split(",")[0])
            if index is None or not 0 < index <= self.capacity:
                return [CMS_INVALID_INDEX]
            self.storage.pop(index, None)
            return ["OK"]
        return ["ERROR"]

    def _listing(self, index: int | None, stored: Stored) -> list[str]:
        """The lines of AT+CMGR (index None) or of one message of AT+CMGL."""
        where = "" if index is None else f"{index},"
        if self.pdu_mode:
            length = _tpdu_length(stored.pdu)
            return [
                f"+CMG{'R' if index is None else 'L'}: {where}{stored.stat},,{length}",
                stored.pdu,
            ]
        header, data = text_view(stored.pdu, self.show_header)
        status = f'"{STAT_NAMES[stored.stat]}"'
        if index is None:
            return [f"+CMGR: {status},{header}", data]
        fields = header.split(",")  # the time stamp holds a comma: it is fields 2 and 3
        if self.show_header and len(fields) > 5:  # AT+CMGL shows only <tooa> and <length>
            header = ",".join([*fields[:4], fields[4], fields[-1]])
        return [f"+CMGL: {where}{status},{header}", data]

    def _submit(self, command: str, payload: str) -> list[str]:
        """The answer to the payload of AT+CMGS."""
        self._reference = (self._reference + 1) % 256
        if not self.pdu_mode:
            number = command.split("=", 1)[1].split(",")[0].strip().strip('"')
            self.sent.append(pdu.Submit(number, payload, None))
            return [f"+CMGS: {self._reference}", "OK"]
        try:
            message = pdu.decode_submit(payload)
        except pdu.PduError:
            return ["+CMS ERROR: 304"]  # invalid PDU mode parameter
        declared = _number(command.split("=", 1)[1])
        octets = len(bytes.fromhex(payload))
        if declared != octets - 1 - int(payload[:2], 16):
            return ["+CMS ERROR: 304"]
        self.sent.append(message)
        return [f"+CMGS: {self._reference}", "OK"]

    # -- the control socket -------------------------------------------------------------------

    def serve_control(self, path: str | Path) -> None:
        """Answer JSON-line requests on the Unix socket `path` (see `control`)."""
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(4)
        self._control = server

        def accept() -> None:
            while not self._stop.is_set():
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                with client, client.makefile("rw", encoding="utf-8") as stream:
                    for line in stream:
                        stream.write(json.dumps(self.control(json.loads(line))) + "\n")
                        stream.flush()

        threading.Thread(target=accept, name="fake-modem-control", daemon=True).start()

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request: {"ring": NUMBER}, {"sms": {"from": NUMBER, "text": TEXT}}, or
        {"sent": true} (what the agent sent)."""
        if "ring" in request:
            self.ring(request["ring"] or None, withheld=not request["ring"])
            return {"ok": True}
        if "sms" in request:
            indexes = self.receive_sms(request["sms"]["from"], request["sms"]["text"])
            return {"ok": True, "stored_at": indexes}
        if "sent" in request:
            return {"ok": True, "sent": [{"to": n, "text": t} for n, t in self.sent_messages()]}
        return {"ok": False, "error": "unknown request"}


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _tpdu_length(hex_pdu: str) -> int:
    """The <length> a modem shows for a PDU: its octets, the service centre address left out
    (for a malformed PDU, whatever it adds up to)."""
    try:
        return len(hex_pdu) // 2 - 1 - int(hex_pdu[:2], 16)
    except ValueError:
        return len(hex_pdu) // 2


def masked_line(line: str) -> str:
    """A command as the transcript keeps it: the PIN hidden."""
    return re.sub(r"(?i)^(AT\+CPIN=).*$", r"\1********", line)


def text_view(hex_pdu: str, show_header: bool) -> tuple[str, str]:
    """A stored SMS-DELIVER as text mode shows it (27.005 section 3.1): the header fields after
    <stat> (`"<oa>",,"<scts>"` and, with AT+CSDH=1, `,<tooa>,<fo>,<pid>,<dcs>,"<sca>",<tosca>,
    <length>`), and the data: the text, or hex when the data is UCS2 or has a header."""
    try:
        return _text_view(hex_pdu, show_header)
    except (ValueError, IndexError):  # a malformed PDU: shown as it is
        return '"",,""', hex_pdu


def _text_view(hex_pdu: str, show_header: bool) -> tuple[str, str]:
    octets = bytes.fromhex(hex_pdu)
    sca_length = octets[0]
    field = octets[2 : 1 + sca_length]
    sca = "+" + pdu.decode_semi_octets(field, 2 * len(field) - (field[-1] >> 4 == 0xF))
    tpdu = octets[1 + sca_length :]
    first = tpdu[0]
    digits, kind = tpdu[1], tpdu[2]
    position = 3 + (digits + 1) // 2
    sender = pdu.decode_deliver(hex_pdu).sender
    pid, dcs = tpdu[position], tpdu[position + 1]
    stamp = tpdu[position + 2 : position + 9]
    values = [int(f"{o & 0x0F}{o >> 4}") for o in stamp[:6]]
    scts = "{:02d}/{:02d}/{:02d},{:02d}:{:02d}:{:02d}+00".format(*values)
    length = tpdu[position + 9]
    user_data = tpdu[position + 10 :]
    if first & 0x40 or pdu.alphabet(dcs) != pdu.GSM7:
        data = user_data.hex().upper()
    else:
        data = pdu.decode_deliver(hex_pdu).text.encode("ascii", "replace").decode()
    header = f'"{sender}",,"{scts}"'
    if show_header:
        header += f',{kind},{first},{pid},{dcs},"{sca}",145,{length}'
    return header, data


def control(path: str | Path, request: dict[str, Any], timeout: float = 5) -> dict[str, Any]:
    """Send one request to a fake modem's control socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        with client.makefile("rw", encoding="utf-8") as stream:
            stream.write(json.dumps(request) + "\n")
            stream.flush()
            return json.loads(stream.readline())
