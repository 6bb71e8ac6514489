"""Low-balance alerts: an account may ask (in the portal's Settings) to be told by e-mail or SMS
when its balance drops below an amount of its choosing (`Account.low_balance_alert`).

The alert goes once, when a call's debit takes the balance from at or above the amount to below
it: `billing.close_leg` debits under the account's row lock and says the balance after; the
balance before is that plus the cost. Further calls below the amount send nothing; once a
top-up has lifted the balance to the amount or above, the next call that takes it below alerts
again. A debit is crossed once whatever the concurrency (the lock orders the debits), so an
alert is never sent twice for one crossing. `Account.low_balance_alerted_at` says when the last
one went.

How it goes:

- e-mail through the SMTP server of the configuration's `email` section, to the address the
  account gave; off while `email.smtp_host` is not set.
- SMS by the SMS reply path (`sms`): to the account's default callback number, through the
  gateway it last texted us from (its `reply_url`), or through FreeSWITCH (`chat`, to the address
  it last texted us from); a number that never texted us gets it through the first gateway that
  has a `reply_url`. Off while `sms.enabled` is false. Every SMS sent is stored (`SmsMessage`),
  as replies are.

An alert that cannot be sent is logged (and, for SMS, stored as not sent); the call goes on.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import gevent.pool

from esl_callback.callback.billing import LegBill, money
from esl_callback.db import Database, utcnow
from esl_callback.models import Account, CallbackRequest, SmsMessage
from esl_callback.readable_numbers import readable

log = logging.getLogger(__name__)

EMAIL, SMS = "email", "sms"
CHANNELS = (EMAIL, SMS)
MAX_EMAIL = 254


@dataclass(frozen=True)
class Alert:
    """A low-balance alert due to one account."""

    account_id: int
    account_name: str
    channel: str  # EMAIL or SMS
    address: str  # the e-mail address, or the number (E.164 digits)
    balance: Decimal
    threshold: Decimal
    currency: str

    @property
    def text(self) -> str:
        return (
            f"Your callback balance is {written(self.balance, self.currency)}, below the "
            f"{written(self.threshold, self.currency)} you asked to be told about. Top up to "
            "keep calling."
        )


def written(value: Decimal, currency: str) -> str:
    """An amount as the portal writes it (the currency's decimals)."""
    from esl_callback.web.formats import amount

    return amount(value, currency)


def channels_offered(settings: Any) -> tuple[str, ...]:
    """The ways this installation can send alerts: e-mail with an SMTP server configured, SMS
    with SMS on."""
    offered = []
    if settings.email.smtp_host:
        offered.append(EMAIL)
    if settings.sms.enabled:
        offered.append(SMS)
    return tuple(offered)


def due(request_id: int, before: Decimal, after: Decimal) -> Alert | None:
    """The alert a debit from `before` to `after` on the request's account calls for, marked
    as sent (run through Database.run); None if it crossed no alert amount."""
    request = CallbackRequest.get_or_none(CallbackRequest.id == request_id)
    if request is None or request.account_id is None:
        return None
    account = Account.get_by_id(request.account_id)
    threshold = account.low_balance_alert
    if threshold is None or account.low_balance_alert_by not in CHANNELS:
        return None
    threshold = money(threshold)
    if not money(before) >= threshold > money(after):
        return None
    address = account.alert_email if account.low_balance_alert_by == EMAIL else None
    if account.low_balance_alert_by == SMS:
        address = account.default_callback_number
    if not address:
        return None
    Account.update(low_balance_alerted_at=utcnow()).where(Account.id == account.id).execute()
    return Alert(
        account.id,
        account.name,
        account.low_balance_alert_by,
        address,
        money(after),
        threshold,
        account.currency,
    )


class LowBalanceAlerts:
    """Watches the dialer's debits (`Dialer.bill_listeners`) and sends the alerts they call
    for, each in a greenlet of its own (a slow SMTP server never holds up a call)."""

    def __init__(self, db: Database, settings: Any, sms: Any) -> None:
        self.db = db
        self.settings = settings
        self.sms = sms  # sms.SmsService: the FreeSWITCH reply path and the dialer's nodes
        self.sending = gevent.pool.Group()

    def after_bill(self, bill: LegBill | None) -> None:
        if bill is None or bill.duplicate or bill.balance is None or not bill.cost:
            return
        if not channels_offered(self.settings):
            return
        before = bill.balance + bill.cost
        self.sending.spawn(self.check, bill.leg.request_id, before, bill.balance)

    def check(self, request_id: int, before: Decimal, after: Decimal) -> None:
        try:
            alert = self.db.run(due, request_id, before, after)
            if alert is not None:
                self.send(alert)
        except Exception:
            log.exception("request %s: the low-balance alert was not sent", request_id)

    def send(self, alert: Alert) -> None:
        if alert.channel not in channels_offered(self.settings):
            log.warning(
                "account %s: low-balance alert by %s, which this installation does not send",
                alert.account_name,
                alert.channel,
            )
            return
        if alert.channel == EMAIL:
            self.send_email(alert)
        else:
            self.send_sms(alert)

    def send_email(self, alert: Alert) -> None:
        cfg = self.settings.email
        message = EmailMessage()
        message["From"] = cfg.from_address
        message["To"] = alert.address
        message["Subject"] = f"Your balance is low: {written(alert.balance, alert.currency)}"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=cfg.from_address.rpartition("@")[2] or None)
        message.set_content(
            f"{alert.text}\n\nYou asked for this alert in the Settings of your callback "
            "portal, where you can change or stop it.\n"
        )
        try:
            gevent.get_hub().threadpool.apply(deliver, (cfg, message))
        except (OSError, smtplib.SMTPException) as exc:
            log.warning(
                "account %s: low-balance e-mail to %s not sent: %s",
                alert.account_name,
                alert.address,
                exc,
            )
            return
        log.info("account %s: low-balance alert e-mailed to %s", alert.account_name, alert.address)

    def send_sms(self, alert: Alert) -> None:
        """By the path of the number's last SMS to us, else the first gateway with a reply_url."""
        from esl_callback.sms import FREESWITCH, Inbound, own_numbers
        from esl_callback.web.sms_api import send_reply

        last = self.db.run(last_sms_from, alert.address)
        gateways = {g.name: g for g in self.settings.sms.gateways if g.reply_url}
        ours = sorted(own_numbers(self.settings))
        if last is not None and last.channel == FREESWITCH and self.sms is not None:
            user_host = (last.message_id or "").partition(";")[0]
            host = user_host.partition("@")[2]
            node = next((n for n in self.sms.dialer.nodes if getattr(n, "connected", True)), None)
            if host and node is not None:
                to_user = (last.destination or (ours[0] if ours else "")).partition("@")[0]
                event = {
                    "proto": "sip",
                    "to": f"{to_user}@{host}",
                    "from": f"{alert.address}@{host}",
                }
                self.sms.chat_reply(event, node.name, alert.text)
                log.info("account %s: low-balance alert texted by FreeSWITCH", alert.account_name)
                return
        gateway = gateways.get(last.channel) if last is not None else None
        gateway = gateway or next(iter(gateways.values()), None)
        if gateway is None:
            log.warning(
                "account %s: low-balance SMS to +%s not sent: it never texted us through "
                "FreeSWITCH and no SMS gateway has a reply_url",
                alert.account_name,
                alert.address,
            )
            return
        recipient = last.destination if last is not None else f"+{ours[0]}" if ours else ""
        message = Inbound(gateway.name, f"+{alert.address}", recipient, "")
        send_reply(self.db, gateway, message, alert.text)
        log.info(
            "account %s: low-balance alert texted to %s via %s",
            alert.account_name,
            readable(alert.address),
            gateway.name,
        )

    def finish(self, timeout: float = 5.0) -> None:
        """Let alerts being sent finish, for `timeout` seconds at most."""
        self.sending.join(timeout)
        self.sending.kill(block=False)


def last_sms_from(number: str) -> SmsMessage | None:
    """The latest SMS `number` sent us (its channel and addresses: the way to text it back)."""
    return (
        SmsMessage.select()
        .where(SmsMessage.direction == "in", SmsMessage.source == number)
        .order_by(SmsMessage.created_at.desc(), SmsMessage.id.desc())
        .first()
    )


def deliver(cfg: Any, message: EmailMessage) -> None:
    """Send `message` through the configured SMTP server (in a worker thread)."""
    context = ssl.create_default_context()
    if cfg.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_seconds, context=context
        )
    else:
        client = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.timeout_seconds)
    with client:
        if cfg.security == "starttls":
            client.starttls(context=context)
        if cfg.username:
            client.login(cfg.username, cfg.password or "")
        client.send_message(message)
