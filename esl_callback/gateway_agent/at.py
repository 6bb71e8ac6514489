"""The AT command line protocol (ITU-T V.250, 3GPP TS 27.007 / 27.005) over a serial port.

A command is written as `AT...<CR>`; the modem may echo it, sends information lines, and ends
with a final result code: `OK`, `ERROR`, `+CME ERROR: <n>`, `+CMS ERROR: <n>` (or, for dialling,
`NO CARRIER`, `BUSY`...). `AT+CMGS` first answers with the prompt `> ` (no line end); the PDU or
text then ends with Ctrl-Z.

Unsolicited result codes (URCs: `RING`, `+CLIP:`, `+CMTI:`, `+CMT:` and its second line, ...)
arrive whenever the modem likes: between commands, and in the middle of a command's answer. The
reader tells them apart by their prefix and queues them for the state machine (`urcs`), so a
command's answer never swallows a call or an SMS.

Lines the modem should not have sent (noise on the line, a half-reset modem) are logged and
dropped; the bytes are decoded as Latin-1 so no byte can stop the reader.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

CTRL_Z = b"\x1a"
ESC = b"\x1b"
FINAL_OK = ("OK",)
FINAL_ERRORS = ("ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
ERROR_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")
# Unsolicited result codes the agent acts on or knows to ignore. "+CMT:" and "+CDS:" carry a
# second line (the PDU, or the text in text mode).
URC_PREFIXES = (
    "RING",
    "+CRING:",
    "+CLIP:",
    "+CMTI:",
    "+CMT:",
    "+CDSI:",
    "+CDS:",
    "+CBM:",
    "+CUSD:",
    "+CREG:",
    "+CGREG:",
    "+CIEV:",
    "^",  # Huawei's ^RSSI, ^BOOT, ^MODE ...
    "RDY",
    "+CPIN:",
    "+CFUN:",
    "Call Ready",
    "SMS Ready",
    "NO CARRIER",
)
TWO_LINE_URCS = ("+CMT:", "+CDS:", "+CBM:")
DATA_HEADERS = ("+CMGR:", "+CMGL:")  # the next line is the message, whatever it says
_SECRET_COMMANDS = re.compile(r"^(AT\+CPIN=)(.*)$|^(AT\+CLCK=.*?,.*?,)(.*)$", re.IGNORECASE)


class SerialLike(Protocol):
    """What the channel needs of a port: pyserial's Serial has it."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    @property
    def in_waiting(self) -> int: ...

    @property
    def timeout(self) -> float | None: ...

    @timeout.setter
    def timeout(self, value: float | None) -> None: ...


class ModemTimeout(Exception):
    """The modem did not finish answering in time."""


class ModemError(Exception):
    """The modem answered with an error; `code` is the final result line."""

    def __init__(self, command: str, code: str) -> None:
        super().__init__(f"{masked(command)}: {code}")
        self.command = command
        self.code = code


@dataclass(frozen=True)
class Urc:
    """One unsolicited result code, with its second line where it has one."""

    line: str
    body: str | None = None


@dataclass
class Response:
    """A command's information lines and its final result code."""

    lines: list[str] = field(default_factory=list)
    final: str = "OK"

    def starting(self, prefix: str) -> list[str]:
        """The information lines with `prefix` (e.g. "+CSQ:"), the prefix and spaces removed."""
        return [line[len(prefix) :].strip() for line in self.lines if line.startswith(prefix)]


def masked(command: str) -> str:
    """A command as logs show it: a PIN or password never appears."""
    match = _SECRET_COMMANDS.match(command)
    if match is None:
        return command
    head = match.group(1) or match.group(3)
    return f"{head}********"


def is_urc(line: str) -> bool:
    return line.startswith(URC_PREFIXES)


def is_final(line: str) -> bool:
    return line in FINAL_OK or line in FINAL_ERRORS or line.startswith(ERROR_PREFIXES)


class AtChannel:
    """Commands and unsolicited result codes over one open serial port."""

    def __init__(
        self,
        port: SerialLike,
        *,
        transcript: list[str] | None = None,
        on_noise: Callable[[str], None] | None = None,
    ) -> None:
        self.port = port
        self.on_noise = on_noise
        self.buffer = b""
        self.urcs: deque[Urc] = deque()
        self.transcript = transcript  # every line both ways, when given (for tests)
        self.noise = 0  # lines dropped as unexpected

    # -- reading ------------------------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Read what arrives before `deadline`; False when nothing came."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.port.timeout = min(remaining, 0.5)
        data = self.port.read(max(1, self.port.in_waiting))
        if data:
            self.buffer += data
            return True
        return False

    def _take_line(self) -> str | None:
        """The next non-empty line in the buffer (line ends: CR, LF or both), or None."""
        while True:
            match = re.search(rb"[\r\n]", self.buffer)
            if match is None:
                return None
            raw, self.buffer = self.buffer[: match.start()], self.buffer[match.end() :]
            if raw.strip():
                line = raw.decode("latin-1").strip()
                self._record("<", line)
                return line

    def read_line(self, deadline: float) -> str | None:
        """The next line before `deadline`, or None."""
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if not self._fill(deadline) and time.monotonic() >= deadline:
                return None

    def _urc(self, line: str, deadline: float) -> None:
        """Queue a URC, reading its second line when it has one."""
        body = None
        if line.startswith(TWO_LINE_URCS):
            body = self.read_line(deadline + 2)
            if body is None:
                log.warning("modem sent %r without the line that should follow it", line[:40])
        self.urcs.append(Urc(line, body))

    def poll(self, timeout: float) -> None:
        """Wait up to `timeout` for unsolicited result codes (queued in `urcs`)."""
        deadline = time.monotonic() + timeout
        while not self.urcs:
            line = self.read_line(deadline)
            if line is None:
                return
            if is_urc(line):
                self._urc(line, deadline)
            else:
                self._noise(line)
        while (line := self._take_line()) is not None:  # whatever else already arrived
            if is_urc(line):
                self._urc(line, deadline)
            else:
                self._noise(line)

    def _noise(self, line: str) -> None:
        self.noise += 1
        log.warning("modem sent an unexpected line, ignored: %r", line[:80])
        if self.on_noise is not None:
            self.on_noise(line)

    # -- commands -----------------------------------------------------------------------------

    def command(
        self, command: str, timeout: float, *, expect: tuple[str, ...] = (), check: bool = True
    ) -> Response:
        """Send `command` and read its answer up to the final result code.

        `expect`: prefixes of the command's own information lines that would otherwise read as
        URCs (`+CREG:` for AT+CREG?). With `check`, an error result raises ModemError.
        """
        self._write(command.encode("latin-1") + b"\r", command)
        return self.answer(command, time.monotonic() + timeout, expect=expect, check=check)

    def answer(
        self, command: str, deadline: float, *, expect: tuple[str, ...] = (), check: bool = True
    ) -> Response:
        """Read the answer to `command` (already sent) until its final result code."""
        response = Response()
        echo = command.strip().upper()
        data_next = False
        while True:
            line = self.read_line(deadline)
            if line is None:
                raise ModemTimeout(f"no answer to {masked(command)}")
            if data_next:  # an SMS's PDU or text: "RING me" is no RING
                response.lines.append(line)
                data_next = False
                continue
            if line.upper() == echo:
                continue
            if line.startswith(DATA_HEADERS):
                response.lines.append(line)
                data_next = True
            elif expect and line.startswith(expect):
                response.lines.append(line)
            elif is_final(line) and not (
                line == "NO CARRIER" and not command.upper().startswith("ATD")
            ):
                response.final = line
                if check and line != "OK":
                    raise ModemError(command, line)
                return response
            elif is_urc(line):
                self._urc(line, deadline)
            else:
                response.lines.append(line)

    def prompt_command(self, command: str, payload: bytes, shown: str, timeout: float) -> Response:
        """A command answered by the `> ` prompt (AT+CMGS), then `payload` ended by Ctrl-Z."""
        deadline = time.monotonic() + timeout
        self._write(command.encode("latin-1") + b"\r", command)
        echo = command.strip().upper()
        while True:
            stripped = self.buffer.lstrip(b"\r\n")
            if stripped.startswith(b">"):
                self.buffer = stripped[1:].lstrip(b" ")
                self._record("<", ">")
                break
            line = self._take_line() if re.search(rb"[\r\n]", stripped) else None
            if line is None:
                if not self._fill(deadline) and time.monotonic() >= deadline:
                    self._write(ESC, "<ESC>")
                    raise ModemTimeout(f"no prompt after {command}")
                continue
            if line.upper() == echo:
                continue
            if is_final(line):
                raise ModemError(command, line)
            if is_urc(line):
                self._urc(line, deadline)
            else:
                self._noise(line)
        self._write(payload + CTRL_Z, shown)
        return self.answer("", deadline)

    def _write(self, data: bytes, shown: str) -> None:
        self._record(">", masked(shown))
        log.debug("modem <- %s", masked(shown))
        self.port.write(data)

    def _record(self, direction: str, line: str) -> None:
        if self.transcript is not None:
            self.transcript.append(f"{direction} {line}")
