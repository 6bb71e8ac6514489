"""The switch's CDR as the second source of truth: what FreeSWITCH's mod_json_cdr posts.

mod_json_cdr (FreeSWITCH 1.10) POSTs one JSON document per channel to `<url>?uuid=<uuid>` from
the channel's own thread as it is torn down, before CHANNEL_HANGUP_COMPLETE reaches ESL, retries
`retries` times `delay` seconds apart when the answer is not 2xx (a timeout too, though the
request arrived), then writes the document to `err-log-dir` as `<uuid>.cdr.json` and never
sends it again (`esl-callback cdr import` reads those files). So the same CDR may arrive several
times, and the CDR of a leg usually arrives just before its hangup event.

Each CDR is stored once per channel UUID (`models.SwitchCdr`, counted per delivery) and billed
through `billing.close_leg`, which locks the leg's row: an open leg (its hangup not seen:
the ESL connection was cut, or its event is a few milliseconds behind) is billed with the
switch's billsec, a leg closed LOST_WHILE_DISCONNECTED is billed now (it cost 0), a leg billed
already is left alone (a billsec that differs from the billed one is logged and counted), and a
CDR of a channel that is not one of our legs (the trigger call, a loopback leg's far end) is
stored and ignored. Whichever of the hangup event, the reconciler and the CDR comes first, the
leg is billed once.

The body is read as mod_json_cdr sends it: `application/json` (encode=false, the shipped
configuration), or a `cdr=` form, URL-encoded (encode=true) or base64 (encode=base64). With
encode-values (the default) every string in `variables` is URL-encoded; the values read here
are decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from esl_callback import metrics
from esl_callback.callback import billing
from esl_callback.callback.flow import uepoch
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import Leg, SwitchCdr

log = logging.getLogger(__name__)

JSON, FORM, BASE64_FORM = (
    "application/json",
    "application/x-www-form-urlencoded",
    "application/x-www-form-base64-encoded",
)
PATH = "/api/v1/switch/cdr"  # where the portal takes them (web/switch_cdr_api.py)
MAX_UUID_LENGTH = 64  # switch_cdr.uuid, leg.uuid

# What a CDR did (switch_cdr.outcome).
BILLED = "billed"  # it closed an open leg
REBILLED = "rebilled"  # it billed a leg closed LOST_WHILE_DISCONNECTED with nothing
DUPLICATE = "duplicate"  # the leg was billed already, with the same billsec
MISMATCH = "mismatch"  # the leg was billed already, with another billsec (not billed again)
UNKNOWN = "unknown"  # not one of our legs
BILLING_OUTCOMES = (BILLED, REBILLED)


class CdrError(ValueError):
    """A body that is not a CDR mod_json_cdr would send; the message says what is wrong."""


@dataclass(frozen=True)
class PostedCdr:
    """One channel's CDR, read from what the switch sent."""

    uuid: str
    core_uuid: str | None
    request_id: int | None
    hangup: billing.Hangup
    text: str  # the JSON document as received (values still URL-encoded)


@dataclass(frozen=True)
class Outcome:
    """What a delivery of a CDR did."""

    uuid: str
    outcome: str  # this delivery's: BILLED, REBILLED, DUPLICATE, MISMATCH or UNKNOWN
    deliveries: int  # how often this CDR has arrived, this one included
    request_id: int | None  # the leg's request (None for a channel that is not our leg)
    bill: billing.LegBill | None

    @property
    def billed(self) -> bool:
        return self.outcome in BILLING_OUTCOMES


def document_text(body: bytes, content_type: str) -> str:
    """The JSON text of a POST body of `content_type` (its media type, no parameters)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CdrError(f"the body is not UTF-8 text (byte {exc.start})") from None
    if content_type in ("", JSON):
        return text
    if content_type not in (FORM, BASE64_FORM):
        raise CdrError(
            f"Content-Type {content_type} is not one mod_json_cdr sends ({JSON}, {FORM} or "
            f"{BASE64_FORM}): check json_cdr.conf.xml's encode parameter"
        )
    if not text.startswith("cdr="):
        raise CdrError(f"a {content_type} body must be cdr=<the CDR>, as mod_json_cdr sends")
    value = text[len("cdr=") :]
    if content_type == FORM:  # switch_url_encode: a space is %20, a + is %2B
        return unquote(value)
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise CdrError("the cdr field is not base64 of UTF-8 JSON") from None


def read_post(body: bytes, content_type: str, uuid: str) -> PostedCdr:
    """The CDR of a POST body (see `document_text` and `parse`)."""
    text = document_text(body, content_type)
    try:
        return parse(text, uuid)
    except CdrError as exc:
        if content_type != FORM:
            raise
        raise CdrError(
            f"{exc}; with encode=true mod_json_cdr does not encode the %XX its encode-values "
            "put in the values, which then break the JSON: set encode to false in "
            "json_cdr.conf.xml"
        ) from None


def file_text(data: bytes) -> str:
    """The JSON text of an err-log-dir file: the document and one LF, or, had encode been
    true or base64, the encoded document without the `cdr=` of the POST."""
    text = data.decode("utf-8", errors="strict").rstrip("\n")
    if text.startswith("{"):
        return text
    if text.startswith("%7B"):
        return unquote(text)
    return document_text(f"cdr={text}".encode(), BASE64_FORM)


def file_uuid(name: str) -> str | None:
    """The channel UUID of an err-log-dir file name (<uuid>.cdr.json, a_<uuid>.cdr.json with
    prefix-a-leg); None for a file mod_json_cdr did not name."""
    if not name.endswith(".cdr.json"):
        return None
    return name.removesuffix(".cdr.json").removeprefix("a_")


def parse(text: str, uuid: str | None = None) -> PostedCdr:
    """Read a CDR document; `uuid` is the `?uuid=` of its POST (None for a file), which must be
    the channel's own. Raises CdrError saying what is missing or wrong."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CdrError(f"the CDR is not valid JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("variables"), dict):
        raise CdrError("the CDR has no variables object: it is not a mod_json_cdr document")
    variables: dict[str, Any] = document["variables"]

    def variable(name: str, *, required: bool = False) -> str | None:
        value = variables.get(name)
        if value is None or value == "":
            if required:
                raise CdrError(f"the CDR has no variables.{name}")
            return None
        if not isinstance(value, str):
            raise CdrError(f"variables.{name} is not a string, as mod_json_cdr writes every value")
        return unquote(value)

    own_uuid = variable("uuid", required=True) or ""
    if uuid is not None and uuid != own_uuid:
        raise CdrError(f"?uuid={uuid} is not the CDR's own variables.uuid ({own_uuid})")
    if len(own_uuid) > MAX_UUID_LENGTH:
        raise CdrError(f"variables.uuid is longer than {MAX_UUID_LENGTH} characters")
    billsec = variable("billsec", required=True) or ""
    if not billsec.isdigit():
        raise CdrError(f"variables.billsec is {billsec!r}, not a whole number of seconds")
    request_id = variable("callback_request_id")
    core_uuid = document.get("core-uuid")
    return PostedCdr(
        uuid=own_uuid,
        core_uuid=core_uuid if isinstance(core_uuid, str) else None,
        request_id=int(request_id) if request_id and request_id.isdigit() else None,
        hangup=billing.Hangup(
            uuid=own_uuid,
            cause=variable("hangup_cause", required=True) or "",
            billsec=int(billsec),
            answered_at=uepoch(variable("answer_uepoch")),
            ended_at=uepoch(variable("end_uepoch")),
            hangup_by=variable("sip_hangup_disposition"),
        ),
        text=text,
    )


def apply(cdr: PostedCdr, settings: billing.BillingSettings) -> Outcome:
    """Store one delivery of a CDR and bill its leg from it if nothing billed it with the
    switch's figures yet; one transaction (see the module's docstring)."""
    with database_proxy.atomic():
        ours = Leg.select(Leg.id).where(Leg.uuid == cdr.uuid).exists()
        bill = billing.close_leg(cdr.hangup, settings) if ours else None
        outcome = _outcome(cdr, bill)
        now = utcnow()
        stored = SwitchCdr.get_or_none(SwitchCdr.uuid == cdr.uuid)
        if stored is None:
            # A concurrent first delivery of the same CDR waits on the leg's lock above (or,
            # for a channel that is not our leg, on the unique uuid): one insert wins.
            SwitchCdr.insert(
                uuid=cdr.uuid,
                core_uuid=cdr.core_uuid,
                request_id=cdr.request_id,
                billsec=cdr.hangup.billsec,
                hangup_cause=cdr.hangup.cause,
                outcome=outcome,
                body=cdr.text,
                received_at=now,
                deliveries=1,
                last_received_at=now,
            ).on_conflict(
                conflict_target=[SwitchCdr.uuid],
                update={
                    SwitchCdr.deliveries: SwitchCdr.deliveries + 1,
                    SwitchCdr.last_received_at: now,
                },
            ).execute()
            deliveries = SwitchCdr.get(SwitchCdr.uuid == cdr.uuid).deliveries
        else:
            changes: dict[Any, Any] = {
                SwitchCdr.deliveries: SwitchCdr.deliveries + 1,
                SwitchCdr.last_received_at: now,
            }
            if outcome in BILLING_OUTCOMES or stored.outcome == UNKNOWN:
                changes[SwitchCdr.outcome] = outcome  # what billed it, not the later repeats
            SwitchCdr.update(changes).where(SwitchCdr.id == stored.id).execute()
            deliveries = stored.deliveries + 1
    _report(cdr, outcome, bill, deliveries)
    return Outcome(
        uuid=cdr.uuid,
        outcome=outcome,
        deliveries=deliveries,
        request_id=bill.leg.request_id if bill is not None else None,
        bill=bill,
    )


def _outcome(cdr: PostedCdr, bill: billing.LegBill | None) -> str:
    if bill is None:
        return UNKNOWN
    if not bill.duplicate:
        return REBILLED if bill.corrected else BILLED
    return DUPLICATE if bill.leg.billsec == cdr.hangup.billsec else MISMATCH


def _report(cdr: PostedCdr, outcome: str, bill: billing.LegBill | None, deliveries: int) -> None:
    """Log what the CDR did; a billsec that disagrees with the bill is a warning and a metric."""
    metrics.SWITCH_CDRS.labels(outcome).inc()
    repeat = f" (delivery {deliveries})" if deliveries > 1 else ""
    if outcome == MISMATCH and bill is not None:
        log.warning(
            "leg %s of request %s: the switch's CDR says billsec %s, it was billed for %s; "
            "not billed again (check the leg's hangup event against the CDR)%s",
            cdr.uuid,
            bill.leg.request_id,
            cdr.hangup.billsec,
            bill.leg.billsec,
            repeat,
        )
    elif outcome == UNKNOWN:
        log.debug("switch CDR %s: not one of our legs; stored%s", cdr.uuid, repeat)
    else:
        log.info(
            "switch CDR %s (request %s): %s, billsec %s%s",
            cdr.uuid,
            bill.leg.request_id if bill is not None else cdr.request_id,
            outcome,
            cdr.hangup.billsec,
            repeat,
        )
