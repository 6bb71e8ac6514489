"""The modem's state machine: open the port, initialise, serve, reset; in a thread of its own.

    opening -> initialising -> ready -> (gone | not answering | SIM problem) -> opening ...

Initialisation (every AT command the agent uses is listed in the README):
ATZ, ATE0 (no echo), AT+CMEE=1 (numeric errors), AT+CPIN? and AT+CPIN="<pin>" when the SIM asks
(once per process: a wrong PIN is never tried again, the SIM would block after three),
AT+CMGF=0 (PDU mode) or AT+CMGF=1 + AT+CSDH=1 + AT+CSCS="IRA" (text mode), AT+CPMS (storage),
AT+CLIP=1 (caller ID), AT+CNMI=2,1,0,0,0 (new SMS stored, announced with +CMTI), then AT+CSQ,
AT+CREG? and the SIM listing (AT+CMGL) for what arrived while the agent was away.

Serving: unsolicited result codes are handled as they come.
- RING and +CLIP: the call is rejected at once, unanswered (AT+CHUP, ATH if the modem has no
  +CHUP), then queued for the platform with a new call id. No +CLIP within
  `caller_id_wait_seconds`, or a withheld number: rejected and reported withheld (an empty
  `from`; the platform stores it rejected). A caller outside `callers.allowed_prefixes` is
  rejected and only logged. RINGs of the same caller within 10 s are the same call.
- +CMTI: the SMS is read (AT+CMGR) and queued; +CMT (delivered without storing): queued. The
  parts of a long message are joined first. A malformed PDU is logged, recorded and left on
  the SIM.
- Once the platform took an SMS, its SIM copies are deleted (AT+CMGD, after AT+CMGR shows the
  index still holds that very message) and its reply is sent (AT+CMGS, in parts if long).
- Every `poll_seconds`: AT+CSQ, AT+CREG? and the SIM listing again (an SMS whose +CMTI was lost
  is found there). This is also the watchdog: a command without an answer is followed by plain
  ATs; when `reset_after_timeouts` in a row get none, the port is closed and the modem reset
  (reopened, ATZ, initialised again). A port that fails (unplugged) is reopened with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from esl_callback.gateway_agent import pdu, texts
from esl_callback.gateway_agent.at import AtChannel, ModemError, ModemTimeout, Urc
from esl_callback.gateway_agent.config import AgentSettings
from esl_callback.gateway_agent.outbox import Item, Outbox
from esl_callback.gateway_agent.status import AgentStatus

log = logging.getLogger(__name__)

SAME_CALL_SECONDS = 10.0
SIM_BUSY = ("+CMS ERROR: 314", "+CME ERROR: 14", "+CMS ERROR: 512")
SIM_READY_WAIT_SECONDS = 20.0
SEND_TIMEOUT_SECONDS = 60.0  # AT+CMGS waits for the network
TEXT_MODE_LIMIT = 160


class SimProblem(Exception):
    """The SIM cannot be used until someone acts (PIN missing or refused, PUK, no SIM)."""


@dataclass
class Ringing:
    """A call being offered: since when, and its caller ID once +CLIP came."""

    since: float
    number: str | None = None
    withheld: bool = False


def open_serial(port: str, baudrate: int) -> Any:
    """The modem's serial port, 8N1, exclusive (a second agent on the same modem fails)."""
    return serial.Serial(port, baudrate, timeout=0.25, write_timeout=10, exclusive=True)


class Modem:
    """Runs the state machine over one serial port (see the module docstring)."""

    def __init__(
        self,
        settings: AgentSettings,
        outbox: Outbox,
        status: AgentStatus,
        *,
        on_queued: Callable[[], None],
        transcript: list[str] | None = None,
        open_port: Callable[[str, int], Any] = open_serial,
    ) -> None:
        self.settings = settings
        self.modem = settings.modem
        self.outbox = outbox
        self.status = status
        self.on_queued = on_queued  # wakes the poster
        self.transcript = transcript
        self.open_port = open_port
        self.stopping = threading.Event()
        self.work = threading.Event()  # set by the poster: SIM copies to delete, replies
        self.at: AtChannel | None = None
        self.pin_refused = False
        self.last_trouble: str | None = None
        self.hangup_command = "AT+CHUP"
        self.ringing: Ringing | None = None
        self.last_call: tuple[str, float] | None = None
        self.reply_reference = 0

    def stop(self) -> None:
        self.stopping.set()

    # -- the outer loop -----------------------------------------------------------------------

    def run(self) -> None:
        delay = 0.2
        while not self.stopping.is_set():
            port = None
            try:
                self.status.modem("opening")
                port = self.open_port(self.modem.port, self.modem.baudrate)
                self.at = AtChannel(
                    port,
                    transcript=self.transcript,
                    on_noise=lambda _: self.status.count("noise_lines"),
                )
                self.status.modem("initialising")
                self.initialise()
                delay = 0.2
                self.status.modem("ready")
                log.info("modem on %s ready", self.modem.port)
                self.last_trouble = None
                self.serve()
            except (serial.SerialException, OSError) as exc:
                self.trouble(
                    "gone",
                    f"modem port {self.modem.port} failed: {exc}; is the modem plugged in, the "
                    "agent's user in group dialout, and no other program (ModemManager) on it?",
                )
            except ModemTimeout as exc:
                self.status.count("modem_resets")
                self.trouble("not answering", f"modem stopped answering ({exc}): resetting it")
            except SimProblem as exc:
                self.trouble("SIM problem", str(exc))
                delay = self.modem.reopen_max_seconds
            except ModemError as exc:
                self.trouble("initialisation failed", f"modem refused {exc}: resetting it")
            finally:
                self.at = None
                if port is not None:
                    with contextlib.suppress(serial.SerialException, OSError):
                        port.close()
            self.stopping.wait(delay)
            delay = min(delay * 2, self.modem.reopen_max_seconds)
        self.status.modem("stopped")

    def trouble(self, state: str, message: str) -> None:
        """Report a failure; the same one again (every reopen attempt) only at debug level."""
        if self.stopping.is_set():
            return
        self.status.modem(state)
        self.status.error(message)
        log.log(logging.DEBUG if message == self.last_trouble else logging.ERROR, message)
        self.last_trouble = message

    def command(
        self,
        command: str,
        *,
        expect: tuple[str, ...] = (),
        check: bool = True,
        timeout: float | None = None,
    ) -> Any:
        assert self.at is not None
        return self.at.command(
            command, timeout or self.modem.command_timeout_seconds, expect=expect, check=check
        )

    # -- initialisation -----------------------------------------------------------------------

    def initialise(self) -> None:
        self.wake_up()
        self.command("ATZ")
        self.command("ATE0")
        self.command("AT+CMEE=1", check=False)
        self.unlock_sim()
        self.sim_ready(lambda: self.command("AT+CMGF=0" if self.pdu_mode else "AT+CMGF=1"))
        if not self.pdu_mode:
            self.command("AT+CSDH=1")
            self.optional('AT+CSCS="IRA"')
        storage = self.modem.storage
        self.optional(f'AT+CPMS="{storage}","{storage}","{storage}"')
        self.command("AT+CLIP=1")
        if (
            self.optional("AT+CNMI=2,1,0,0,0") is None
            and self.optional("AT+CNMI=1,1,0,0,0") is None
        ):
            log.warning(
                "the modem does not announce new SMS (AT+CNMI refused): they are read "
                "from the SIM every %.0f s",
                self.modem.poll_seconds,
            )
        self.read_signal()
        self.read_sim()

    @property
    def pdu_mode(self) -> bool:
        return self.modem.sms_mode == "pdu"

    def wake_up(self) -> None:
        """Plain ATs until the modem answers (it may be busy booting, or hold half a line)."""
        for attempt in range(1, 4):
            try:
                self.command("AT", timeout=min(2.0, self.modem.command_timeout_seconds))
                return
            except (ModemTimeout, ModemError):
                if attempt == 3:
                    raise ModemTimeout("no answer to AT") from None

    def optional(self, command: str) -> Any:
        """A command some modems do not have: its response, or None (logged)."""
        try:
            return self.command(command)
        except ModemError as exc:
            log.warning("modem does without %s (%s)", command, exc.code)
            return None

    def unlock_sim(self) -> None:
        answer = self.command("AT+CPIN?", expect=("+CPIN:",), check=False)
        state = (answer.starting("+CPIN:") or [answer.final])[0]
        if state == "READY":
            return
        if state == "SIM PIN":
            if self.modem.pin is None:
                raise SimProblem(
                    "the SIM asks for its PIN: set modem.pin (or "
                    "ESL_CALLBACK_AGENT_SIM_PIN) in agent.yaml"
                )
            if self.pin_refused:
                raise SimProblem(
                    "the SIM refused modem.pin before: not trying it again (the SIM "
                    "blocks after three wrong PINs); correct it and restart the agent"
                )
            try:
                self.command(f'AT+CPIN="{self.modem.pin}"')
            except ModemError as exc:
                self.pin_refused = True
                raise SimProblem(
                    f"the SIM refused modem.pin ({exc.code}): correct it and restart "
                    "the agent; it will not be tried again before"
                ) from None
            log.info("SIM unlocked with its PIN")
            return
        if "PUK" in state:
            raise SimProblem(f"the SIM is blocked ({state}): unblock it with its PUK in a phone")
        raise SimProblem(f"the SIM is not usable: AT+CPIN? answered {state!r}; is a SIM inserted?")

    def sim_ready(self, step: Callable[[], Any]) -> Any:
        """Run `step`, again while the SIM is still busy starting (after the PIN)."""
        deadline = time.monotonic() + SIM_READY_WAIT_SECONDS
        while True:
            try:
                return step()
            except ModemError as exc:
                if exc.code not in SIM_BUSY or time.monotonic() > deadline:
                    raise
                self.stopping.wait(1)

    # -- serving ------------------------------------------------------------------------------

    def serve(self) -> None:
        assert self.at is not None
        next_poll = time.monotonic() + self.modem.poll_seconds
        while not self.stopping.is_set():
            try:
                self.at.poll(self.tick())
                while self.at.urcs:
                    self.handle(self.at.urcs.popleft())
                if (
                    self.ringing
                    and time.monotonic() >= self.ringing.since + self.modem.caller_id_wait_seconds
                ):
                    self.reject_call()
                if self.work.is_set():
                    self.work.clear()
                    self.do_work()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.modem.poll_seconds
                    self.read_signal()
                    self.read_sim()
                    self.work.set()  # replies whose retry time came
            except ModemTimeout:
                self.still_there()
            except ModemError as exc:  # one command refused: the modem itself is fine
                self.status.error(f"modem refused {exc}")
                log.warning("modem refused %s; carrying on", exc)

    def tick(self) -> float:
        if self.ringing:
            return max(
                0.0,
                min(
                    0.25, self.ringing.since + self.modem.caller_id_wait_seconds - time.monotonic()
                ),
            )
        return 0.25

    def still_there(self) -> None:
        """After a command went unanswered: plain ATs; none answered -> ModemTimeout (reset)."""
        for _ in range(self.modem.reset_after_timeouts):
            try:
                self.command("AT", timeout=min(2.0, self.modem.command_timeout_seconds))
                log.warning("modem was slow to answer; it answers again")
                return
            except (ModemTimeout, ModemError):
                continue
        raise ModemTimeout(f"{self.modem.reset_after_timeouts} commands in a row unanswered")

    def handle(self, urc: Urc) -> None:
        line = urc.line
        if line == "RING" or line.startswith("+CRING:"):
            if self.ringing is None:
                self.ringing = Ringing(time.monotonic())
        elif line.startswith("+CLIP:"):
            fields = texts.fields(line[6:])
            number = fields[0] if fields else ""
            validity = fields[5] if len(fields) > 5 and fields[5].isdigit() else "0"
            self.ringing = self.ringing or Ringing(time.monotonic())
            self.ringing.number = number
            self.ringing.withheld = not number or validity != "0"
            self.reject_call()
        elif line.startswith("+CMTI:"):
            fields = texts.fields(line[6:])
            if len(fields) >= 2 and fields[1].isdigit():
                self.read_index(int(fields[1]))
            else:
                log.warning("modem announced an SMS without an index: %r", line[:60])
        elif line.startswith("+CMT:"):
            self.ingest_direct(line, urc.body)
        else:
            log.debug("modem reports %s", line[:60])

    # -- calls --------------------------------------------------------------------------------

    def reject_call(self) -> None:
        """Hang the offered call up unanswered, then queue it for the platform."""
        ringing, self.ringing = self.ringing, None
        assert ringing is not None
        self.hang_up()
        number = "" if ringing.withheld or not ringing.number else ringing.number
        now = time.monotonic()
        last = self.last_call
        if number and last and last[0] == number and now - last[1] < SAME_CALL_SECONDS:
            self.last_call = (number, now)
            log.info("call from %s rings again: the same call, reported once", number)
            return
        self.last_call = (number, now) if number else None
        if number and not self.allowed(number):
            self.status.count("calls_not_allowed")
            log.info("call from %s rejected, not reported: not in callers.allowed_prefixes", number)
            return
        call_id = self.outbox.add_call(number)
        self.status.count("calls")
        self.on_queued()
        log.info(
            "call from %s rejected unanswered, queued as %s", number or "a withheld number", call_id
        )

    def hang_up(self) -> None:
        try:
            self.command(self.hangup_command)
        except ModemError as exc:
            if self.hangup_command == "ATH":
                log.error(
                    "could not reject the call (ATH: %s): the caller hears it ring until "
                    "they give up",
                    exc.code,
                )
                return
            log.warning("modem refused AT+CHUP (%s): rejecting calls with ATH", exc.code)
            self.hangup_command = "ATH"
            self.hang_up()

    def allowed(self, number: str) -> bool:
        prefixes = self.settings.callers.allowed_prefixes
        digits = number.lstrip("+")
        return not prefixes or any(digits.startswith(prefix) for prefix in prefixes)

    # -- SMS in -------------------------------------------------------------------------------

    def read_index(self, index: int) -> None:
        answer = self.command(f"AT+CMGR={index}", check=False)
        if answer.final != "OK":
            log.warning("modem could not read the SMS at index %d: %s", index, answer.final)
            return
        self.ingest_listing(answer.lines, index)

    def read_sim(self) -> None:
        """List the SIM and ingest what is there (after a restart, a lost +CMTI)."""
        self.outbox.forget_sim_indexes()
        if self.pdu_mode:
            answer = self.command("AT+CMGL=4")
            lines = answer.lines
            for position, line in enumerate(lines):
                if line.startswith("+CMGL:") and position + 1 < len(lines):
                    fields = texts.fields(line[6:])
                    if fields and fields[0].isdigit():
                        self.ingest_pdu(fields, lines[position + 1], int(fields[0]), stat_at=1)
        else:
            answer = self.command('AT+CMGL="ALL"')
            indexes = [
                texts.fields(line[6:])[0] for line in answer.lines if line.startswith("+CMGL:")
            ]
            for index in indexes:
                if index.isdigit():
                    self.read_index(int(index))
        self.work.set()  # parts of delivered messages may still be on the SIM

    def ingest_listing(self, lines: list[str], index: int) -> None:
        """The lines of AT+CMGR: `+CMGR: ...` then the PDU, or the text (lines)."""
        heads = [i for i, line in enumerate(lines) if line.startswith("+CMGR:")]
        if not heads:
            return  # an empty index
        head = lines[heads[0]]
        fields = texts.fields(head[6:])
        body = lines[heads[0] + 1 :]
        if self.pdu_mode:
            self.ingest_pdu(fields, body[0] if body else "", index, stat_at=0)
        else:
            if fields and fields[0] in ("STO UNSENT", "STO SENT"):
                return
            self.ingest(
                lambda: texts.from_text(fields[1:], "\n".join(body), index), "\n".join(body), index
            )

    def ingest_pdu(self, fields: list[str], line: str, index: int | None, stat_at: int) -> None:
        if len(fields) > stat_at and fields[stat_at] in ("2", "3"):
            return  # a stored outgoing message, not ours to act on
        self.ingest(lambda: texts.from_pdu(line, index), line, index)

    def ingest_direct(self, head: str, body: str | None) -> None:
        """+CMT: an SMS the modem did not store (nothing to delete later)."""
        if body is None:
            return
        if self.pdu_mode:
            self.ingest(lambda: texts.from_pdu(body, None), body, None)
        else:
            fields = texts.fields(head[5:])
            self.ingest(lambda: texts.from_text(fields, body, None), body, None)

    def ingest(self, read: Callable[[], texts.Part], raw: str, index: int | None) -> None:
        """Read a part and queue it; a malformed one is recorded and left where it is."""
        try:
            part = read()
        except pdu.PduError as exc:
            if self.outbox.record_unreadable(raw, index, str(exc)):
                self.status.count("unreadable")
                where = f"at SIM index {index}, left there" if index is not None else "(not stored)"
                self.status.error(f"unreadable SMS {where}: {exc}")
                log.error(
                    "unreadable SMS %s: %s; its %d characters are kept in the queue file's "
                    "unreadable table",
                    where,
                    exc,
                    len(raw),
                )
            return
        ignored = not self.allowed(part.sender)
        key = self.outbox.add_part(part, ignored=ignored)
        if key is None:
            return
        if ignored:
            self.status.count("sms_not_allowed")
            log.info(
                "SMS %s from %s not reported: not in callers.allowed_prefixes; deleted",
                key,
                part.sender,
            )
            self.work.set()
            return
        self.status.count("sms_received")
        log.info("SMS from %s queued as %s", part.sender, key)
        self.on_queued()

    # -- after delivery -----------------------------------------------------------------------

    def do_work(self) -> None:
        if self.settings.modem.multipart_wait_seconds:
            for key in self.outbox.join_expired(self.modem.multipart_wait_seconds):
                log.warning("long SMS %s queued with parts missing", key)
                self.on_queued()
        for part_key, index in self.outbox.sim_deletions():
            self.delete_from_sim(part_key, index)
        for item in self.outbox.replies_due():
            self.send_reply(item)

    def delete_from_sim(self, part_key: str, index: int) -> None:
        """Delete the part at `index` if that index still holds it."""
        answer = self.command(f"AT+CMGR={index}", check=False)
        here: str | None = None
        heads = [i for i, line in enumerate(answer.lines) if line.startswith("+CMGR:")]
        if answer.final == "OK" and heads:
            fields = texts.fields(answer.lines[heads[0]][6:])
            body = answer.lines[heads[0] + 1 :]
            try:
                if self.pdu_mode:
                    here = texts.from_pdu(body[0] if body else "", index).key
                else:
                    here = texts.from_text(fields[1:], "\n".join(body), index).key
            except pdu.PduError:
                here = None
        if here != part_key:
            log.warning("SIM index %d no longer holds the SMS delivered: not deleted", index)
            self.outbox.off_sim(part_key)
            return
        self.command(f"AT+CMGD={index}")
        self.outbox.off_sim(part_key)
        log.info("SMS at SIM index %d deleted (the platform has it)", index)

    def send_reply(self, item: Item) -> None:
        """Send the platform's reply to the SMS's sender."""
        assert self.at is not None and item.reply is not None
        number = item.sender
        try:
            if self.pdu_mode:
                for length, hex_pdu in pdu.submit_pdus(number, item.reply, item.id & 0xFF):
                    self.at.prompt_command(
                        f"AT+CMGS={length}",
                        hex_pdu.encode(),
                        f"<pdu {length} octets>",
                        SEND_TIMEOUT_SECONDS,
                    )
            else:
                for part in text_parts(item.reply):
                    self.at.prompt_command(
                        f'AT+CMGS="{number}"',
                        part.encode("latin-1", "replace"),
                        f"<text {len(part)} characters>",
                        SEND_TIMEOUT_SECONDS,
                    )
        except (ModemError, pdu.PduError) as exc:
            attempts = item.reply_attempts + 1
            give_up = attempts >= self.settings.queue.reply_attempts
            retry = (
                None
                if give_up
                else min(
                    self.settings.queue.retry_min_seconds * 2**attempts,
                    self.settings.queue.retry_max_seconds,
                )
            )
            self.outbox.reply_failed(item, str(exc), retry)
            self.status.error(f"reply to {number} not sent: {exc}")
            if give_up:
                log.error(
                    "reply to %s for %s given up after %d attempts: %s",
                    number,
                    item.key,
                    attempts,
                    exc,
                )
            else:
                log.warning("reply to %s not sent (%s); trying again in %.0f s", number, exc, retry)
            return
        self.outbox.reply_sent(item)
        self.status.count("replies_sent")
        log.info("reply to %s for %s sent", number, item.key)

    # -- signal -------------------------------------------------------------------------------

    def read_signal(self) -> None:
        rssi = registration = None
        quality = self.command("AT+CSQ", check=False)
        for value in quality.starting("+CSQ:"):
            first = value.split(",")[0]
            rssi = int(first) if first.isdigit() else None
        network = self.command("AT+CREG?", expect=("+CREG:",), check=False)
        for value in network.starting("+CREG:"):
            fields = value.split(",")
            stat = fields[1] if len(fields) > 1 else fields[0]
            registration = int(stat) if stat.strip().isdigit() else None
        previous = (self.status.rssi, self.status.registration)
        self.status.signal(rssi, registration)
        if previous[1] != registration:
            log.info(
                "modem registration: %s, signal rssi %s",
                {1: "home network", 5: "roaming"}.get(registration or -1, str(registration)),
                rssi,
            )


def text_parts(text: str) -> list[str]:
    """A reply in text mode: plain SMS of up to 160 characters (no concatenation header)."""
    return [text[i : i + TEXT_MODE_LIMIT] for i in range(0, len(text), TEXT_MODE_LIMIT)] or [""]
