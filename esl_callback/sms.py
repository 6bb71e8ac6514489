"""SMS triggers: what an incoming SMS asks for, the checks, the callback and the reply.

An SMS reaches us as a FreeSWITCH `MESSAGE` event (mod_sms; the reply goes back with
`bgapi chat`, see `SmsService.chat_reply`) or as a POST from an SMS gateway to
/api/v1/sms/inbound (the reply is in the response and, where the gateway has a `reply_url`,
POSTed there). Both end up in `SmsService.receive`.

FreeSWITCH 1.10.12 fires MESSAGE twice for an SMS our chatplan extension takes (captured, with
`stop` and with `final`): the extension's `fire` copy, then the copy switch_core_chat_send fires
when it is done with the message (`Nonblocking-Delivery: true`, after `final` also
`final_delivery: true`), both with the same SIP From tag. The second is the same message
delivered twice, acted on once (`store_incoming`). For every message no chatplan extension
takes (a subscriber texting a friend) it fires that second copy only.

Only an SMS addressed to one of the service's own numbers (`sms.numbers`, compared as E.164
digits read with the `numbers` section) is acted on. Any other SMS is logged with the reason
and dropped: not stored, not answered, no callback.

Syntax (case-insensitive; spaces before, after and between words do not matter):

    (empty) or CB        call me back, then I dial the destination in the IVR (two-stage)
    NUMBER or CB NUMBER  call me back and connect me to NUMBER (source first)
    PIN NUMBER           the same, with the account's PIN (CB PIN NUMBER works too)
    BAL                  reply with the balance
    TOPUP CODE           top the account up with a voucher (`vouchers`), reply with the balance
    HELP                 reply with this syntax

NUMBER is one word: digits with an optional leading `+` or international prefix, dashes, dots,
slashes and brackets allowed (`+49-30-1234567`), spaces not (`4711 030123` is PIN and number).
A word that does not start like a number (`looks_like_number`) is not one: a text such as
`HELLO` is not understood, while a number we cannot call (`12`, `555&park()`) is answered so.

The sender must be a registered caller ID of an active account (`callerid add`); the callback
rings the sender, or the account's default number when the account says so
(`callback_to_default`), as for caller-ID access. Anyone else gets a polite refusal when
`sms.reply_unknown_sender` is true, else silence.

An account requires a PIN when `sms.require_pin` is true and the account has a PIN: sender
numbers are easy to fake, a PIN is not. Then NUMBER alone is refused, and `CB` calls back and
asks for the PIN in the IVR (as a PIN access number does). A PIN sent without being required is
still checked. Wrong PINs count towards the same lockout as on the phone (per sender and per
account, `callback.pin_lockout_failures` within `callback.pin_lockout_window_seconds`).

Every SMS is stored (`SmsMessage`) with what was done and the reply. The same message delivered
twice (same channel and message id: a gateway's retry; for FreeSWITCH, the same SIP From tag)
is stored and acted on once; the second delivery gets the first one's reply and no call. A
sender may send `sms.rate_limit_per_minute` SMS a minute; more are stored, ignored and not
answered (an answer to a flood would be a flood).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol

import gevent.pool
import peewee

from esl_callback import accounts, lockout, numbers, vouchers
from esl_callback.callback import billing, policy, triggers
from esl_callback.callback.flow import FlowEnded
from esl_callback.db import Database, database_proxy, utcnow
from esl_callback.models import Account, CallbackRequest, CallerId, SmsMessage
from esl_callback.switch import commands
from esl_callback.switch.connection import ESLError

log = logging.getLogger(__name__)

FREESWITCH = "freeswitch"
MAX_TEXT = 1600  # ten concatenated SMS; longer texts are stored cut
PIN_LOCKOUT = "pin"
_FROM_TAG = re.compile(r";\s*tag=([^;>\s]+)")

UNKNOWN_SENDER = "Sorry, this phone number is not registered for callbacks."
UNAVAILABLE = "Sorry, callbacks are not available right now. Please try again later."
# How long a reply's `bgapi chat` may take: sofia waits for the SIP MESSAGE's final response up
# to 19.9 s for each phone the recipient has registered (sofia_presence_chat_send).
CHAT_RESULT_SECONDS = 120.0


def help_text(product_name: str) -> str:
    """The reply to HELP: the syntax, under the product's name (`branding.product_name`)."""
    return (
        f"{product_name} by SMS: send CB (or nothing) and we call you back, then you dial. "
        "Send a number (or CB number) and we call you, then connect it. "
        "With a PIN: PIN number. BAL: your balance. TOPUP code: add a voucher. HELP: this text."
    )


def not_understood(product_name: str) -> str:
    """The reply to a text that is no command: an apology, then the HELP text."""
    return "Sorry, not understood. " + help_text(product_name)


@dataclass(frozen=True)
class Inbound:
    """One incoming SMS as a channel delivered it."""

    channel: str  # "freeswitch" or the gateway's name
    sender: str
    recipient: str
    text: str
    message_id: str | None = None


@dataclass(frozen=True)
class Command:
    """What the text asks for: "callback", "balance", "topup", "help" or "invalid"."""

    kind: str
    destination: str | None = None  # as typed; None: ask in the IVR
    pin: str | None = None
    code: str | None = None  # a voucher's, for "topup"


@dataclass(frozen=True)
class Outcome:
    """What was done about an SMS; `reply` None means we stay silent."""

    action: str
    reply: str | None
    request_id: int | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class CallOrder:
    """A callback the SMS asked for and may have: who pays, whom to ring, whom to connect."""

    account: Account | None  # None: the IVR asks for the PIN
    source: str
    destination: str | None  # None: two-stage


class Starter(Protocol):
    """The part of `callback.dialer.Dialer` SMS triggers use."""

    nodes: list[Any]

    def start_callback(
        self,
        account: Account | None,
        source: str,
        destination: str | None,
        mode: str,
        trigger: str = "web",
    ) -> CallbackRequest: ...

    def start_two_stage(
        self, account: Account | None, source: str, trigger: str = "sms"
    ) -> CallbackRequest: ...


def parse(text: str) -> Command:
    """Read the syntax in the module docstring."""
    words = text.split()
    first = words[0].upper() if words else ""
    if first == "HELP":
        return Command("help")
    if first == "BAL":
        return Command("balance")
    if first == "TOPUP" or (first == "TOP" and len(words) > 1 and words[1].upper() == "UP"):
        code = words[1 if first == "TOPUP" else 2 :]
        return Command("topup", code=" ".join(code)) if code else Command("invalid")
    if first == "CB":
        words = words[1:]
    if not words:
        return Command("callback")
    if len(words) == 1 and looks_like_number(words[0]):
        return Command("callback", destination=words[0])
    if len(words) == 2 and numbers.is_digits(words[0]) and looks_like_number(words[1]):
        return Command("callback", destination=words[1], pin=words[0])
    return Command("invalid")


def looks_like_number(word: str) -> bool:
    """Whether `word` is meant as a phone number: a digit first, after any `+` and the
    formatting characters people type (`(030) ...`). Whether it is a valid one is for
    `numbers.normalise` to say."""
    return word.lstrip("+" + numbers.FORMATTING_CHARACTERS)[:1] in numbers.ASCII_DIGITS


def is_received(event: Any) -> bool:
    """True for a MESSAGE event about an SMS FreeSWITCH received.

    FreeSWITCH also fires MESSAGE after it sent one (our `chat` replies: proto "global", a
    Delivery-Failure report, no from_user); acting on those would answer our own answers.
    """
    return (
        bool(event.get("from_user"))
        and event.get("proto") != "global"
        and event.get("Delivery-Failure") is None
    )


def message_from_event(event: Any) -> Inbound:
    """An SMS from a mod_sms MESSAGE event: sender, recipient and text as the event has them.

    The text is the event's body, which the ESL framing keeps apart from the headers: nothing
    in it can become a header. The message id is the SIP From tag, unique per request.
    """
    address = f"{event.get('from_user') or ''}@{event.get('from_host') or ''}"
    tag = _FROM_TAG.search(event.get("from_full") or "")
    return Inbound(
        channel=FREESWITCH,
        sender=event.get("from_user") or "",
        recipient=event.get("to_user") or "",
        text=event.body.decode("utf-8", "replace"),
        message_id=f"{address};tag={tag.group(1)}"[:128] if tag else None,
    )


class SmsService:
    """Handles incoming SMS from every channel the same way (see the module docstring)."""

    def __init__(self, db: Database, settings: Any, dialer: Starter) -> None:
        self.db = db
        self.settings = settings
        self.dialer = dialer
        self.own_numbers = own_numbers(settings)
        self.replies = gevent.pool.Group()  # replies whose `chat` has no result yet

    def receive(self, message: Inbound) -> Outcome:
        """Store the SMS, act on it once, and say what was done and what to reply."""
        ignored = not_for_us(message, self.own_numbers, self.settings.numbers)
        if ignored is not None:
            log.info(
                "sms %s from %r to %r via %s ignored: %s",
                message.message_id,
                message.sender,
                message.recipient,
                message.channel,
                ignored,
            )
            return Outcome("not_our_number", None)
        stored = self.db.run(store_incoming, message, self.settings.numbers)
        if isinstance(stored, Outcome):
            log.info("sms %s from %r: duplicate delivery", message.message_id, message.sender)
            return stored
        decision = self.db.run(decide, stored, message, self.settings)
        outcome = self.place(decision) if isinstance(decision, CallOrder) else decision
        self.db.run(record_outcome, stored, outcome)
        log.info(
            "sms %s from %r via %s: %s",
            message.message_id,
            message.sender,
            message.channel,
            outcome.action,
            extra={"request_id": outcome.request_id},
        )
        return outcome

    def place(self, order: CallOrder) -> Outcome:
        """Start the callback an SMS asked for."""
        try:
            if order.destination is None:
                request = self.dialer.start_two_stage(order.account, order.source, "sms")
            else:
                request = self.dialer.start_callback(
                    order.account, order.source, order.destination, "source_first", "sms"
                )
        except policy.Refused as refused:  # stored as rejected, with the reason
            log.warning("sms callback to %s refused: %s", order.source, refused.detail)
            request_id = refused.request_id
            if refused.reason == policy.Reason.DESTINATION_DENIED:
                words = f"Sorry, we cannot call +{order.destination}."
                return Outcome("destination_refused", words, request_id)
            words = f"Sorry, we cannot call you back on +{order.source}."
            return Outcome("refused", words, request_id)
        except FlowEnded as exc:
            log.warning("sms callback to %s not started: %s", order.source, exc)
            return Outcome("unavailable", UNAVAILABLE)
        except Exception:
            log.exception("sms callback to %s not started", order.source)
            return Outcome("unavailable", UNAVAILABLE)
        if order.destination is None:
            return Outcome(
                "callback", f"OK, we are calling you back on +{order.source} now.", request.id
            )
        return Outcome(
            "callback_to",
            f"OK, we are calling you back on +{order.source} now, then +{order.destination}.",
            request.id,
        )

    def on_message_event(self, event: Any, node_name: str) -> None:
        """Router handler for MESSAGE: act on the SMS and answer it with `chat`."""
        if not is_received(event):
            return
        outcome = self.receive(message_from_event(event))
        if outcome.reply and not outcome.duplicate:
            self.chat_reply(event, node_name, outcome.reply)

    def chat_reply(self, event: Any, node_name: str, text: str) -> None:
        """Send `text` back to the SMS's sender through the node it came from, without waiting.

        `chat` returns once the SIP MESSAGE has its final response: 19.9 s later when the
        sender's phone is registered but does not answer (captured). As an `api` command it
        would hold the node's one inbound connection, every call's commands and events behind
        it, that long, and past the command timeout the connection is dropped and those events
        are lost. So it goes with `bgapi`; its result ("Sent", "Error! Message Not Sent") is
        recorded when the BACKGROUND_JOB arrives (`await_reply`, a greenlet of its own).
        """
        source, destination = event.get("to") or "", event.get("from") or ""
        node = next((n for n in self.dialer.nodes if n.name == node_name), None)
        try:
            command = commands.chat(source, destination, text, event.get("proto") or "sip")
            if node is None:
                self.replied(node_name, source, destination, text, "-ERR no such node")
                return
            job = node.bgapi(command)
        except Exception as exc:  # unsafe address, not connected: the reply is lost
            self.replied(node_name, source, destination, text, f"-ERR {exc}")
            return
        self.replies.spawn(self.await_reply, job, node_name, source, destination, text)

    def await_reply(
        self, job: Any, node_name: str, source: str, destination: str, text: str
    ) -> None:
        """Record a reply's result once its job has one. A job that fails (its connection
        stopped, no result within CHAT_RESULT_SECONDS) is a reply not sent, with the reason."""
        try:
            result = job.wait(CHAT_RESULT_SECONDS)
        except ESLError as exc:
            result = f"-ERR {exc}"
        self.replied(node_name, source, destination, text, result)

    def replied(
        self, node_name: str, source: str, destination: str, text: str, result: str
    ) -> None:
        """Store the reply with the switch's answer; a reply not sent is logged, once."""
        result = result.strip()
        sent = result.startswith("Sent")
        if not sent:
            log.warning("sms reply to %r via %s not sent: %s", destination, node_name, result)
        try:
            self.db.run(record_sent, FREESWITCH, source, destination, text, sent, result)
        except Exception:
            log.exception("sms reply to %r via %s: not stored", destination, node_name)

    def finish(self, timeout: float = 1.0) -> None:
        """After the nodes stopped (their jobs given up): let the replies still waiting store
        that, for `timeout` seconds at most."""
        self.replies.join(timeout)
        self.replies.kill(block=False)


def own_numbers(settings: Any) -> frozenset[str]:
    """The service's SMS numbers (`sms.numbers`) as E.164 digits."""
    return frozenset(
        numbers.normalise(raw, settings.numbers, what="sms.numbers", allow_formatting=True)
        for raw in settings.sms.numbers
    )


def not_for_us(message: Inbound, own: frozenset[str], rules: Any) -> str | None:
    """Why the SMS is not addressed to one of the service's SMS numbers (`own`, from
    `own_numbers`; `rules` the numbers section); None when it is."""
    if not own:
        return "sms.numbers is empty"
    try:
        recipient = numbers.normalise(
            message.recipient, rules, what="recipient", allow_formatting=True
        )
    except numbers.InvalidNumber as exc:
        return f"{str(exc).rstrip('.')}; it is not one of sms.numbers"
    if recipient not in own:
        return f"{recipient} is not one of sms.numbers"
    return None


# -- database steps (run through Database.run) ----------------------------------------------


def sender_key(raw: str, rules: numbers.NumberRules) -> str:
    """The sender as E.164 digits when it is a usable number, else as received."""
    try:
        return triggers.caller_number(raw, rules)
    except triggers.TriggerRefused:
        return raw.strip()[:64]


def store_incoming(message: Inbound, rules: numbers.NumberRules) -> SmsMessage | Outcome:
    """Store the SMS; for a repeated (channel, message id), the first delivery's outcome."""
    row = {
        "direction": "in",
        "source": sender_key(message.sender, rules),
        "destination": message.recipient.strip()[:64],
        "body": message.text[:MAX_TEXT],
        "channel": message.channel,
        "message_id": message.message_id or None,
        "action": "received",
    }
    try:
        with database_proxy.atomic():
            return SmsMessage.create(**row)
    except peewee.IntegrityError:
        first = SmsMessage.get(
            SmsMessage.channel == message.channel, SmsMessage.message_id == message.message_id
        )
        return Outcome("duplicate", first.reply or None, first.request_id, duplicate=True)


def decide(stored: SmsMessage, message: Inbound, settings: Any) -> Outcome | CallOrder:
    """Everything short of placing the call: rate limit, sender, syntax, PIN, numbers."""
    cfg = settings.sms
    since = utcnow() - timedelta(minutes=1)
    recent = (
        SmsMessage.select()
        .where(
            SmsMessage.direction == "in",
            SmsMessage.source == stored.source,
            SmsMessage.created_at >= since,
        )
        .count()
    )
    if recent > cfg.rate_limit_per_minute:
        return Outcome("rate_limited", None)
    owner = account_of(stored.source)
    if owner is None:
        return Outcome("unknown_sender", UNKNOWN_SENDER if cfg.reply_unknown_sender else None)
    SmsMessage.update(account=owner.id).where(SmsMessage.id == stored.id).execute()
    if not owner.is_active:
        return Outcome("account_disabled", "Sorry, your account is disabled.")
    command = parse(message.text[:MAX_TEXT])
    if command.kind == "help":
        return Outcome("help", help_text(settings.branding.product_name))
    if command.kind == "balance":
        amount = Decimal(owner.balance).quantize(Decimal("0.01"))
        return Outcome("balance", f"Your balance is {amount} {owner.currency}.")
    if command.kind == "topup":
        return top_up(owner, stored.source, command.code or "", settings)
    if command.kind == "invalid":
        return Outcome("invalid", not_understood(settings.branding.product_name))
    return callback_order(owner, stored.source, command, settings)


def callback_order(
    owner: Account, sender: str, command: Command, settings: Any
) -> Outcome | CallOrder:
    """The callback `command` asks for, or why it cannot be placed."""
    pin_required = settings.sms.require_pin and owner.pin_hash is not None
    if command.pin is not None and owner.pin_hash is None:
        return Outcome("invalid", "Sorry, not understood: write the number without spaces.")
    if command.pin is not None:
        refused = check_pin(owner, sender, command.pin, settings.callback)
        if refused is not None:
            return refused
    source = sender
    if owner.callback_to_default and owner.default_callback_number:
        source = owner.default_callback_number
    if not pin_required:  # else the PIN, in the IVR, says whose call it is
        refused = no_call_possible(owner, settings)
        if refused is not None:
            return refused
    if command.destination is None:
        return CallOrder(None if pin_required else owner, source, None)
    if pin_required and command.pin is None:
        return Outcome("pin_required", "Your account needs its PIN: send PIN NUMBER.")
    try:
        destination = numbers.normalise(
            command.destination, settings.numbers, what="destination", allow_formatting=True
        )
    except numbers.InvalidNumber:
        return Outcome(
            "bad_destination", "Sorry, that is not a phone number we can call. Send HELP."
        )
    if destination == source:
        return Outcome("bad_destination", "Sorry, the number to connect is your own number.")
    denied = policy.refusal(destination, policy.Purpose.DESTINATION, settings)
    if denied is not None or billing.rate_for(destination) is None:
        return Outcome("destination_refused", f"Sorry, we cannot call +{destination}.")
    return CallOrder(owner, source, destination)


def no_call_possible(owner: Account, settings: Any) -> Outcome | None:
    """Why billing would refuse any call of the account right now (as many calls live as it
    may have, or no money free), so that the reply does not promise a call that will not come.
    Billing still authorises the call itself."""
    at_limit = billing.calls_at_limit(owner, settings.callback.max_concurrent_calls)
    if at_limit is not None:
        return Outcome(
            "too_many_calls",
            f"Sorry, {at_limit[0]} of your calls are in progress; try when one ends.",
        )
    if billing.available_balance(owner) <= 0:
        return Outcome("balance_too_low", "Sorry, your balance is too low for a call. Send BAL.")
    return None


def top_up(owner: Account, sender: str, code: str, settings: Any) -> Outcome:
    """Redeem a voucher texted in (wrong codes count against the account and the sender)."""
    try:
        done = vouchers.redeem(owner.id, code, (f"cid:{sender}",), settings.billing)
    except vouchers.Refused as refused:
        return Outcome("topup_refused", f"Sorry: {refused}")
    added, balance = done.amount.quantize(Decimal("0.01")), done.balance.quantize(Decimal("0.01"))
    return Outcome(
        "topup", f"{added} {done.currency} added. Your balance is {balance} {done.currency}."
    )


def account_of(sender: str) -> Account | None:
    """The account whose registered caller ID sent the SMS."""
    owner = CallerId.select(CallerId, Account).join(Account).where(CallerId.number == sender)
    found = owner.first()
    return found.account if found is not None else None


def check_pin(owner: Account, sender: str, pin: str, cfg: Any) -> Outcome | None:
    """None when `pin` is the account's PIN; else why not, counting the failure."""
    keys = (f"cid:{sender}", f"account:{owner.id}")
    limit, window = cfg.pin_lockout_failures, cfg.pin_lockout_window_seconds
    if lockout.is_locked(PIN_LOCKOUT, keys, limit, window):
        return Outcome("pin_locked", "Too many wrong PINs. Please try again later.")
    found = accounts.find_account_by_pin(pin)
    if found is None or found.id != owner.id:
        lockout.record_failure(PIN_LOCKOUT, *keys)
        return Outcome("wrong_pin", "Wrong PIN. Nothing was done.")
    lockout.clear(PIN_LOCKOUT, *keys)
    return None


def record_outcome(stored: SmsMessage, outcome: Outcome) -> None:
    SmsMessage.update(
        action=outcome.action, reply=outcome.reply or "", request=outcome.request_id
    ).where(SmsMessage.id == stored.id).execute()


def record_sent(
    channel: str, source: str, destination: str, text: str, sent: bool, detail: str
) -> None:
    """Store an SMS we sent (a reply), whether the channel took it, and the channel's answer
    whole in `reply` (FreeSWITCH's `chat`: "Sent" or "Error! Message Not Sent"; a gateway's
    HTTP status; an error)."""
    SmsMessage.create(
        direction="out",
        source=source[:64],
        destination=destination[:64],
        body=text,
        channel=channel,
        action="sent" if sent else f"not_sent: {detail}"[:32],
        reply=detail,
    )
