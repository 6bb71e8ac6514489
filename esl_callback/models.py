"""Peewee models: the platform's data, bound to `db.database_proxy`.

Money is `DecimalField` everywhere (never a float); every timestamp is naive UTC (`db.utcnow`).
Phone numbers are stored as E.164 digits without `+`, as `numbers.normalise` returns them.
"""

from __future__ import annotations

from decimal import Decimal

import peewee as pw

from esl_callback.db import database_proxy, utcnow

MONEY = {"max_digits": 14, "decimal_places": 4, "auto_round": True}


def money_field(**kwargs: object) -> pw.DecimalField:
    """An exact amount: 14 digits, 4 after the point."""
    return pw.DecimalField(**MONEY, **kwargs)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class Setting(BaseModel):
    """Installation-wide values created with the schema (e.g. the PIN hashing key)."""

    key = pw.CharField(max_length=64, primary_key=True)
    value = pw.TextField()


class Account(BaseModel):
    """A prepaid customer account."""

    ACTIVE, DISABLED = "active", "disabled"
    STATUSES = (ACTIVE, DISABLED)

    name = pw.CharField(max_length=64, unique=True)
    status = pw.CharField(max_length=16, default=ACTIVE)
    balance = money_field(default=Decimal("0"))
    currency = pw.CharField(max_length=3, default="EUR")
    # Keyed SHA-256 of the PIN (hashing.pin_digest): the PIN alone identifies the account.
    pin_hash = pw.CharField(max_length=64, null=True, unique=True)
    default_callback_number = pw.CharField(max_length=20, null=True)
    # Callers reached by caller ID (ANI) are called back on their default number instead.
    callback_to_default = pw.BooleanField(default=False)
    # None: follow the global billing.charge_leg_a setting.
    charge_leg_a = pw.BooleanField(null=True)
    max_concurrent_calls = pw.IntegerField(null=True)
    # Web callbacks may use any source number, not only the account's own.
    allow_any_source = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)
    # How far below zero calls may take the balance (migration 5): the floor is -credit_limit.
    credit_limit = money_field(default=Decimal("0"))
    # The customer's low-balance alert (`alerts`, migration 9): sent by e-mail to alert_email or
    # by SMS to the default callback number when a call takes the balance below the amount;
    # None: no alert. low_balance_alerted_at: when the last one went.
    low_balance_alert = money_field(null=True)
    low_balance_alert_by = pw.CharField(max_length=8, null=True)  # "email" or "sms"
    alert_email = pw.CharField(max_length=254, null=True)
    low_balance_alerted_at = pw.DateTimeField(null=True)

    @property
    def is_active(self) -> bool:
        return self.status == self.ACTIVE

    @property
    def floor(self) -> Decimal:
        """The lowest balance calls may leave (0, or minus the operator-set credit limit)."""
        return -Decimal(self.credit_limit or 0)


class CallerId(BaseModel):
    """A number that belongs to an account (caller-ID authentication, web sources, SMS)."""

    account = pw.ForeignKeyField(Account, backref="caller_ids", on_delete="CASCADE")
    number = pw.CharField(max_length=20, unique=True)
    verified_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)


class Did(BaseModel):
    """A personal DID: a call to it calls back the account's predefined number."""

    number = pw.CharField(max_length=20, unique=True)
    account = pw.ForeignKeyField(Account, backref="dids", on_delete="CASCADE")
    # None: the account's default callback number.
    callback_number = pw.CharField(max_length=20, null=True)
    created_at = pw.DateTimeField(default=utcnow)


class AccessNumber(BaseModel):
    """A shared access number; its method says how the caller is identified."""

    PIN, ANI = "pin", "ani"
    METHODS = (PIN, ANI)

    number = pw.CharField(max_length=20, unique=True)
    method = pw.CharField(max_length=8)
    description = pw.CharField(max_length=128, default="")
    created_at = pw.DateTimeField(default=utcnow)


class PhoneBookEntry(BaseModel):
    """A contact in an account's server-side phone book."""

    account = pw.ForeignKeyField(Account, backref="phone_book", on_delete="CASCADE")
    name = pw.CharField(max_length=128)
    number = pw.CharField(max_length=20)
    notes = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    # Shown on the home page for one-click calls (migration 7).
    favourite = pw.BooleanField(default=False)
    # What `number` is (mobile, home, work, other; "" for entries from before labels); the
    # entry's other numbers are PhoneBookNumbers (migration 8).
    label = pw.CharField(max_length=16, default="")

    class Meta:
        indexes = ((("account", "number"), False),)


class PhoneBookNumber(BaseModel):
    """Another number of a phone-book entry, after its first (`PhoneBookEntry.number`), in
    `position` order (migration 8). An account's book has each number once, first or not."""

    entry = pw.ForeignKeyField(PhoneBookEntry, backref="more_numbers", on_delete="CASCADE")
    account = pw.ForeignKeyField(Account, on_delete="CASCADE")
    label = pw.CharField(max_length=16, default="")
    number = pw.CharField(max_length=20)
    position = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("account", "number"), False),)


class Rate(BaseModel):
    """Price of calls to numbers starting with `prefix` (longest prefix wins)."""

    prefix = pw.CharField(max_length=20, unique=True)
    description = pw.CharField(max_length=128, default="")
    price_per_minute = money_field()
    connect_fee = money_field(default=Decimal("0"))
    # Seconds: the first `minimum` seconds are charged in full, then every started `increment`.
    increment = pw.IntegerField(default=60)
    minimum = pw.IntegerField(default=60)
    updated_at = pw.DateTimeField(default=utcnow)


class CallbackRequest(BaseModel):
    """One callback: what triggered it, who pays, the two numbers and where it stands."""

    TRIGGERS = ("phone", "web", "sms", "gateway", "cli")
    # "unknown": a trigger refused because the number called is no access number or DID.
    METHODS = ("pin", "ani", "did", "web", "sms", "unknown")
    MODES = ("two_stage", "source_first", "simultaneous", "verify")

    account = pw.ForeignKeyField(Account, backref="requests", null=True, on_delete="SET NULL")
    trigger = pw.CharField(max_length=16)
    method = pw.CharField(max_length=8)
    mode = pw.CharField(max_length=16, default="two_stage")
    state = pw.CharField(max_length=24, default="queued", index=True)
    # What came with the trigger, as the switch or the client reported it.
    caller_id = pw.CharField(max_length=64, default="")
    called_number = pw.CharField(max_length=64, default="")
    trigger_uuid = pw.CharField(max_length=64, null=True, index=True)  # migration 3
    # The two numbers we dial (E.164 digits); destination unknown until the IVR collects it.
    source = pw.CharField(max_length=20, null=True)
    destination = pw.CharField(max_length=20, null=True)
    node = pw.CharField(max_length=64, null=True)
    # The controller that owns the request (esl_callback/controllers.py; migration 11).
    controller = pw.CharField(max_length=64, null=True, index=True)
    attempts = pw.IntegerField(default=0)
    max_duration = pw.IntegerField(null=True)
    failure_cause = pw.CharField(max_length=64, null=True)
    failure_detail = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    updated_at = pw.DateTimeField(default=utcnow)
    ended_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = (  # an account's history, its live calls (migration 3)
            (("account", "created_at"), False),
            (("account", "state"), False),
        )


class Leg(BaseModel):
    """One channel of a callback and its CDR: leg `a` (source) or `b` (destination)."""

    LEGS = ("a", "b")

    request = pw.ForeignKeyField(CallbackRequest, backref="legs", on_delete="CASCADE")
    leg = pw.CharField(max_length=1)
    uuid = pw.CharField(max_length=64, unique=True)
    node = pw.CharField(max_length=64, null=True)
    number = pw.CharField(max_length=20)
    state = pw.CharField(max_length=24, default="dialing")
    created_at = pw.DateTimeField(default=utcnow)
    answered_at = pw.DateTimeField(null=True)
    ended_at = pw.DateTimeField(null=True)
    billsec = pw.IntegerField(null=True)
    hangup_cause = pw.CharField(max_length=64, null=True)
    hangup_by = pw.CharField(max_length=16, null=True)
    # The rate in force when the leg started: later rate changes do not apply to it.
    rate_prefix = pw.CharField(max_length=20, null=True)
    price_per_minute = money_field(null=True)
    connect_fee = money_field(null=True)
    increment = pw.IntegerField(null=True)
    minimum = pw.IntegerField(null=True)
    charged = pw.BooleanField(default=True)
    cost = money_field(null=True)  # what the account paid
    # What the leg cost at its rate that no account paid (migration 5): a leg before the PIN,
    # a leg the account is not charged for, what a debit could not take below the floor.
    operator_cost = money_field(null=True)
    billed = pw.BooleanField(default=False)
    billed_at = pw.DateTimeField(null=True)

    class Meta:
        # A node's legs not billed yet (reconciling after a reconnect), not all it ever had
        # (migration 3).
        indexes = ((("node", "billed"), False),)


class Reservation(BaseModel):
    """Money held for a live callback so that concurrent calls cannot spend it twice."""

    account = pw.ForeignKeyField(Account, backref="reservations", on_delete="CASCADE")
    request = pw.ForeignKeyField(CallbackRequest, backref="reservations", on_delete="CASCADE")
    amount = money_field()
    created_at = pw.DateTimeField(default=utcnow)
    released_at = pw.DateTimeField(null=True, index=True)

    class Meta:
        # An account's live holds (released_at IS NULL), not all it ever had (migration 3).
        indexes = ((("account", "released_at"), False),)


class Payment(BaseModel):
    """A credit to an account's balance (or a correction, with a negative amount)."""

    account = pw.ForeignKeyField(Account, backref="payments", on_delete="CASCADE")
    amount = money_field()
    reference = pw.CharField(max_length=128)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("account", "created_at"), False),)  # an account's payments (migration 3)


class WebUser(BaseModel):
    """A login to the web portal and the JSON API, for one account."""

    account = pw.ForeignKeyField(Account, backref="users", on_delete="CASCADE")
    username = pw.CharField(max_length=64, unique=True)
    password_hash = pw.CharField(max_length=255)
    created_at = pw.DateTimeField(default=utcnow)
    last_login_at = pw.DateTimeField(null=True)
    # IANA name (Europe/Berlin) the portal writes times in; None: the browser's, as app.js
    # reports it (`web.time_zones`; migration 7).
    time_zone = pw.CharField(max_length=64, null=True)
    # Part of every session's fingerprint: a new one logs out all sessions (migration 8); None
    # for users who never did, whose sessions then carry the fingerprint they had before.
    session_key = pw.CharField(max_length=32, null=True)


class ApiToken(BaseModel):
    """An app's token to the JSON API, kept as its SHA-256 (migration 8; before, one per user
    in web_user.api_token_hash). `last_used_at` is written at most once a minute."""

    web_user = pw.ForeignKeyField(WebUser, backref="api_tokens", on_delete="CASCADE")
    token_hash = pw.CharField(max_length=64, unique=True)
    label = pw.CharField(max_length=64, default="")
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)


class AuthFailure(BaseModel):
    """A failed PIN or login, counted per key for lockouts (e.g. `account:7`, `cid:4930...`)."""

    kind = pw.CharField(max_length=16)
    key = pw.CharField(max_length=128)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("kind", "key", "created_at"), False),)


class SmsMessage(BaseModel):
    """Every SMS received or sent, with what was done about it."""

    direction = pw.CharField(max_length=3)  # "in" or "out"
    source = pw.CharField(max_length=64)
    destination = pw.CharField(max_length=64)
    body = pw.TextField()
    channel = pw.CharField(max_length=32)  # "freeswitch" or a gateway name
    message_id = pw.CharField(max_length=128, null=True)
    account = pw.ForeignKeyField(Account, null=True, on_delete="SET NULL")
    request = pw.ForeignKeyField(CallbackRequest, null=True, on_delete="SET NULL")
    action = pw.CharField(max_length=32, default="")
    reply = pw.TextField(default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("channel", "message_id"), True),
            (("source", "created_at"), False),  # the per-sender rate limit (migration 2)
        )


class NumberVerification(BaseModel):
    """A number a user wants to add to the account, until they prove they own it.

    The platform calls the number and asks for `code`, which only the portal shows; the number
    becomes one of the account's (a verified `CallerId`) when the verification call completes.
    """

    PENDING, CALLING, VERIFIED, FAILED, EXPIRED = (
        "pending",
        "calling",
        "verified",
        "failed",
        "expired",
    )

    account = pw.ForeignKeyField(Account, backref="number_verifications", on_delete="CASCADE")
    number = pw.CharField(max_length=20, index=True)
    code = pw.CharField(max_length=8)
    status = pw.CharField(max_length=16, default=PENDING)
    request = pw.ForeignKeyField(CallbackRequest, null=True, on_delete="SET NULL")
    failure = pw.CharField(max_length=128, null=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    expires_at = pw.DateTimeField()
    verified_at = pw.DateTimeField(null=True)


class SpentToken(BaseModel):
    """A token that must not be accepted again before `expires_at` (migration 4).

    `kind` says what it was: `session` (the id of a session ended by logging out, whose cookie a
    copy may still carry) or `form` (a one-use form token, spent when the form was submitted).
    """

    kind = pw.CharField(max_length=16)
    token = pw.CharField(max_length=64)
    expires_at = pw.DateTimeField(index=True)

    class Meta:
        indexes = ((("kind", "token"), True),)


class Voucher(BaseModel):
    """A prepaid card: a code that credits one account once (migration 6).

    Only the code's keyed digest is stored (`vouchers.digest`): the database cannot be read to
    find codes to redeem. Redeeming it books a payment (its reference names the voucher).
    """

    code_hash = pw.CharField(max_length=64, unique=True)
    batch = pw.CharField(max_length=64, index=True)
    amount = money_field()
    currency = pw.CharField(max_length=3)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField(null=True)
    voided_at = pw.DateTimeField(null=True)
    redeemed_at = pw.DateTimeField(null=True)
    account = pw.ForeignKeyField(Account, null=True, on_delete="SET NULL")
    payment = pw.ForeignKeyField(Payment, null=True, on_delete="SET NULL")


class SwitchCdr(BaseModel):
    """A channel's CDR as FreeSWITCH's mod_json_cdr posted it (migration 10): one row per channel
    UUID however often it arrives (`deliveries`), kept for audit with what it did (`outcome`,
    see callback/switch_cdr.py). `billsec` and `hangup_cause` are the switch's own."""

    uuid = pw.CharField(max_length=64, unique=True)
    core_uuid = pw.CharField(max_length=64, null=True)  # the switch that sent it
    request_id = pw.IntegerField(null=True)  # callback_request_id, when the channel had one
    billsec = pw.IntegerField()
    hangup_cause = pw.CharField(max_length=64)
    outcome = pw.CharField(max_length=16)
    body = pw.TextField()  # the JSON document as received (values as the switch encoded them)
    received_at = pw.DateTimeField(default=utcnow)
    deliveries = pw.IntegerField(default=1)
    last_received_at = pw.DateTimeField(default=utcnow)


class Controller(BaseModel):
    """A `serve` process among those sharing the database, and its lease (migration 11)."""

    id = pw.CharField(max_length=64, primary_key=True)
    host = pw.CharField(max_length=255)
    pid = pw.IntegerField()
    epoch = pw.IntegerField(default=1)  # raised by each registration under this id
    lease_seconds = pw.IntegerField()
    started_at = pw.DateTimeField(default=utcnow)
    heartbeat_at = pw.DateTimeField(default=utcnow)
    lease_until = pw.DateTimeField()
    stopped_at = pw.DateTimeField(null=True)


ALL_MODELS: list[type[BaseModel]] = [
    Setting,
    Account,
    CallerId,
    Did,
    AccessNumber,
    PhoneBookEntry,
    PhoneBookNumber,
    Rate,
    CallbackRequest,
    Leg,
    Reservation,
    Payment,
    WebUser,
    ApiToken,
    AuthFailure,
    SmsMessage,
    NumberVerification,
    SpentToken,
    Voucher,
    SwitchCdr,
    Controller,
]
