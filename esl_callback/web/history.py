"""Call history of an account: its callback requests with their legs (CDRs), filtered, paged.

Every function takes the account id and never shows another account's request or CDR: those are
"not found", like ids that do not exist. Run them through `Database.run`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import peewee

from esl_callback import contact_names, numbers
from esl_callback.callback import status
from esl_callback.models import Account, CallbackRequest, Leg
from esl_callback.web import inputs
from esl_callback.web.errors import Invalid, NotFound
from esl_callback.web.paging import Page, paginate

CSV_COLUMNS = (
    "request_id",
    "created_at",
    "mode",
    "state",
    "failure",
    "source",
    "destination",
    "duration_seconds",
    "request_cost",
    "leg",
    "leg_number",
    "leg_status",
    "leg_cause",
    "leg_started_at",
    "leg_answered_at",
    "leg_ended_at",
    "leg_billsec",
    "leg_cost",
)


@dataclass(frozen=True)
class HistoryFilter:
    """Requests created on `since`..`until` (UTC days, inclusive) involving `number` digits."""

    since: date | None = None
    until: date | None = None
    number: str = ""
    calls_only: bool = False  # without number checks

    def as_args(self) -> dict[str, str]:
        """The filter as query arguments (for links to other pages and the CSV export)."""
        args = {"from": self.since, "to": self.until, "number": self.number}
        return {key: str(value) for key, value in args.items() if value}


def read_filter(args: Any) -> HistoryFilter:
    """The filter from query arguments `from`, `to` (YYYY-MM-DD) and `number`."""
    since, until = inputs.day(args.get("from"), "from"), inputs.day(args.get("to"), "to")
    if since and until and since > until:
        raise Invalid("from must not be after to", field="from")
    raw = (args.get("number") or "").strip()
    digits = "".join(ch for ch in raw if ch not in numbers.FORMATTING_CHARACTERS + "+")
    if digits and not numbers.is_digits(digits):
        raise Invalid("number: only digits 0-9 are allowed", field="number")
    return HistoryFilter(since, until, digits[:20])


def requests_query(account_id: int, wanted: HistoryFilter) -> peewee.Select:
    """The account's requests that match `wanted`, newest first."""
    query = CallbackRequest.select().where(CallbackRequest.account == account_id)
    if wanted.since:
        query = query.where(CallbackRequest.created_at >= datetime.combine(wanted.since, time()))
    if wanted.until and wanted.until < date.max:  # up to the last day there is: no end
        end = datetime.combine(wanted.until + timedelta(days=1), time())
        query = query.where(CallbackRequest.created_at < end)
    if wanted.calls_only:
        query = query.where(CallbackRequest.mode != "verify")
    if wanted.number:
        query = query.where(
            CallbackRequest.source.contains(wanted.number)
            | CallbackRequest.destination.contains(wanted.number)
        )
    return query.order_by(CallbackRequest.created_at.desc(), CallbackRequest.id.desc())


def _snapshots(account_id: int, requests: list[CallbackRequest]) -> list[dict[str, Any]]:
    account = Account.get_by_id(account_id)
    legs: dict[int, list[Leg]] = defaultdict(list)
    if requests:
        for leg in (
            Leg.select()
            .where(Leg.request.in_([r.id for r in requests]))
            .order_by(Leg.created_at, Leg.id)
        ):
            legs[leg.request_id].append(leg)
    names = contact_names.names_of(account_id, [r.destination for r in requests])
    return [status.snapshot_of(r, legs[r.id], account, names) for r in requests]


def page(account_id: int, wanted: HistoryFilter, page_request: inputs.PageRequest) -> Page:
    """One page of the account's requests, newest first, each as a status snapshot."""
    found = paginate(requests_query(account_id, wanted), page_request)
    return Page(_snapshots(account_id, found.items), found.page, found.per_page, found.total)


def owned_request(account_id: int, request_id: int) -> CallbackRequest:
    request = CallbackRequest.get_or_none(
        CallbackRequest.id == request_id, CallbackRequest.account == account_id
    )
    if request is None:
        raise NotFound(f"no callback request {request_id}")
    return request


def request_status(account_id: int, request_id: int) -> dict[str, Any]:
    """The status snapshot of one of the account's requests."""
    return _snapshots(account_id, [owned_request(account_id, request_id)])[0]


def cdr(account_id: int, leg_id: int) -> dict[str, Any]:
    """One leg (CDR) of one of the account's requests."""
    leg = (
        Leg.select()
        .join(CallbackRequest)
        .where(Leg.id == leg_id, CallbackRequest.account == account_id)
        .first()
    )
    if leg is None:
        raise NotFound(f"no call record {leg_id}")
    return {"request_id": leg.request_id, **status.describe_leg(leg)}


def export_csv(account_id: int, wanted: HistoryFilter) -> str:
    """Every matching request as CSV, one line per leg (a request without legs gets one line)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    query = requests_query(account_id, wanted)
    for offset in range(0, query.count(), 500):
        for snap in _snapshots(account_id, list(query.offset(offset).limit(500))):
            head = [
                snap["id"],
                snap["created_at"],
                snap["mode"],
                snap["state"],
                snap["failure_words"] or "",
                snap["source"] or "",
                snap["destination"] or "",
                snap["duration_seconds"],
                snap["cost"] or "",
            ]
            legs = [leg for leg in snap["legs"] if leg["id"] is not None]
            if not legs:
                writer.writerow(head + [""] * 9)
            for leg in legs:
                writer.writerow(
                    [
                        *head,
                        leg["leg"],
                        leg["number"],
                        leg["status_words"],
                        leg["cause_words"] or "",
                        leg["created_at"],
                        leg["answered_at"] or "",
                        leg["ended_at"] or "",
                        leg["billsec"] if leg["billsec"] is not None else "",
                        leg["cost"] or "",
                    ]
                )
    return out.getvalue()
