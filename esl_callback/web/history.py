"""Call history of an account: its callback requests with their legs (CDRs), filtered, paged.

Every function takes the account id and never shows another account's request or CDR: those are
"not found", like ids that do not exist. Run them through `Database.run`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import peewee

from esl_callback import contact_names, numbers
from esl_callback.callback import headline, status
from esl_callback.callback.requests import LIVE, State
from esl_callback.models import Account, CallbackRequest, Leg
from esl_callback.web import formats, inputs, time_zones
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


# The history page's periods: the choice, and its words.
PERIODS = {
    "all": "All time",
    "today": "Today",
    "7d": "The last 7 days",
    "30d": "The last 30 days",
    "month": "This month",
    "last_month": "Last month",
    "year": "This year",
    "custom": "From and to the dates below",
}
# The history page's outcome filter: the choice, its words, and the outcomes it takes
# (`headline.outcome`; None: every one).
OUTCOMES: dict[str, tuple[str, frozenset[str] | None]] = {
    "": ("Calls and number checks", None),
    "calls": ("Calls", frozenset(headline.OUTCOME_WORDS) - {"checked", "not_checked"}),
    "connected": ("Connected", frozenset({"connected"})),
    "not_connected": (
        "Not connected",
        frozenset({"busy", "no_answer", "failed", "cancelled", "not_placed", "ended"}),
    ),
    "busy": ("Busy", frozenset({"busy"})),
    "no_answer": ("No answer", frozenset({"no_answer"})),
    "failed": ("Failed or not placed", frozenset({"failed", "not_placed"})),
    "cancelled": ("Cancelled", frozenset({"cancelled"})),
    "checks": ("Number checks", frozenset({"checked", "not_checked"})),
    "live": ("In progress", frozenset({"live"})),
}
MODE_WORDS = {
    "simultaneous": "both phones at once",
    "source_first": "your phone first",
    "two_stage": "phone callback",
    "verify": "number check",
}


@dataclass(frozen=True)
class HistoryFilter:
    """Requests created on `since`..`until` (days in the zone `zone`, UTC when None; inclusive)
    involving `number` digits, with one of the outcomes `outcome` names (`OUTCOMES`)."""

    since: date | None = None
    until: date | None = None
    number: str = ""
    calls_only: bool = False  # without number checks
    outcome: str = ""
    period: str = ""  # how the page chose since/until (`PERIODS`); "" for the API
    zone: str | None = None

    def as_args(self) -> dict[str, str]:
        """The filter as query arguments (for links to other pages and the CSV export)."""
        custom = self.period in ("", "custom")
        args = {
            "period": self.period if self.period not in ("", "all") else "",
            "from": self.since if custom else None,
            "to": self.until if custom else None,
            "outcome": self.outcome,
            "number": self.number,
        }
        return {key: str(value) for key, value in args.items() if value}


def read_filter(args: Any) -> HistoryFilter:
    """The filter from query arguments `from`, `to` (YYYY-MM-DD, UTC days) and `number`."""
    since, until = inputs.day(args.get("from"), "from"), inputs.day(args.get("to"), "to")
    if since and until and since > until:
        raise Invalid("from must not be after to", field="from")
    raw = (args.get("number") or "").strip()
    digits = "".join(ch for ch in raw if ch not in numbers.FORMATTING_CHARACTERS + "+")
    if digits and not numbers.is_digits(digits):
        raise Invalid("number: only digits 0-9 are allowed", field="number")
    return HistoryFilter(since, until, digits[:20])


def read_page_filter(args: Any, zone: str, today: date) -> HistoryFilter:
    """The history page's filter: `read_filter`'s, days in the user's `zone`, a `period`
    (`PERIODS`; from/to given alone mean "custom") and an `outcome` (`OUTCOMES`)."""
    found = read_filter(args)
    period = args.get("period") or ("custom" if found.since or found.until else "all")
    if period not in PERIODS:
        raise Invalid("choose a period from the list", field="period")
    outcome = args.get("outcome") or ""
    if outcome not in OUTCOMES:
        raise Invalid("choose an outcome from the list", field="outcome")
    since, until = period_days(period, today, found.since, found.until)
    return replace(found, since=since, until=until, period=period, outcome=outcome, zone=zone)


def period_days(
    period: str, today: date, since: date | None, until: date | None
) -> tuple[date | None, date | None]:
    """The first and last day of a period ending today (custom: `since`..`until`)."""
    first_of_month = today.replace(day=1)
    if period == "today":
        return today, today
    if period == "7d":
        return today - timedelta(days=6), today
    if period == "30d":
        return today - timedelta(days=29), today
    if period == "month":
        return first_of_month, today
    if period == "last_month":
        last = first_of_month - timedelta(days=1)
        return last.replace(day=1), last
    if period == "year":
        return today.replace(month=1, day=1), today
    if period == "custom":
        return since, until
    return None, None


def requests_query(account_id: int, wanted: HistoryFilter) -> peewee.Select:
    """The account's requests that match `wanted` (but its outcome), newest first."""
    query = CallbackRequest.select().where(CallbackRequest.account == account_id)
    start, end = day_bounds(wanted.since, wanted.until, wanted.zone)
    if start is not None:
        query = query.where(CallbackRequest.created_at >= start)
    if end is not None:
        query = query.where(CallbackRequest.created_at < end)
    if wanted.calls_only:
        query = query.where(CallbackRequest.mode != "verify")
    if wanted.number:
        query = query.where(
            CallbackRequest.source.contains(wanted.number)
            | CallbackRequest.destination.contains(wanted.number)
        )
    return query.order_by(CallbackRequest.created_at.desc(), CallbackRequest.id.desc())


def day_bounds(
    since: date | None, until: date | None, zone: str | None
) -> tuple[datetime | None, datetime | None]:
    """Naive UTC times from the start of `since` to the end of `until`, days in `zone` (UTC
    when None); None where open (or beyond the times there are)."""
    if zone is not None:
        return time_zones.day_bounds(since, until, zone)
    start = datetime.combine(since, time()) if since else None
    end = (
        datetime.combine(until + timedelta(days=1), time()) if until and until < date.max else None
    )
    return start, end


def _legs_of(requests: list[CallbackRequest]) -> dict[int, list[Leg]]:
    """The legs of `requests`, by request id, oldest first."""
    legs: dict[int, list[Leg]] = defaultdict(list)
    ids = [r.id for r in requests]
    for offset in range(0, len(ids), 500):
        for leg in (
            Leg.select()
            .where(Leg.request.in_(ids[offset : offset + 500]))
            .order_by(Leg.created_at, Leg.id)
        ):
            legs[leg.request_id].append(leg)
    return legs


def _snapshots(account_id: int, requests: list[CallbackRequest]) -> list[dict[str, Any]]:
    account = Account.get_by_id(account_id)
    legs = _legs_of(requests)
    names = contact_names.names_of(account_id, [r.destination for r in requests])
    return [status.snapshot_of(r, legs[r.id], account, names) for r in requests]


@dataclass
class Totals:
    """What the calls of a period add up to."""

    label: str = ""
    calls: int = 0  # callbacks (number checks are not calls)
    connected: int = 0
    checks: int = 0  # number checks
    talk_seconds: int = 0
    cost: Decimal = Decimal(0)

    def add(self, outcome: str, seconds: int, cost: Decimal) -> None:
        if outcome in ("checked", "not_checked"):
            self.checks += 1
        else:
            self.calls += 1
        if outcome == "connected":
            self.connected += 1
            self.talk_seconds += seconds
        self.cost += cost


@dataclass
class HistoryView:
    """The history page: one page of calls (status snapshots) that match the filter, the
    totals of all of them, and those totals per day (a period of up to 31 days) or month."""

    found: Page
    totals: Totals
    per: str  # "day" or "month"
    periods: list[Totals] = field(default_factory=list)


# What `matching` reads of each request and leg: enough for its outcome, talk time and cost.
_REQUEST_FIELDS = (
    CallbackRequest.id,
    CallbackRequest.mode,
    CallbackRequest.state,
    CallbackRequest.created_at,
)
_LEG_FIELDS = (
    Leg.request,
    Leg.leg,
    Leg.state,
    Leg.answered_at,
    Leg.billsec,
    Leg.hangup_cause,
    Leg.hangup_by,
    Leg.billed,
    Leg.cost,
)


@dataclass(frozen=True)
class Outcome:
    """A request as the history's filter and totals see it."""

    id: int
    mode: str
    created_at: datetime
    outcome: str  # `headline.outcome`
    talk_seconds: int  # 0 unless connected
    cost: Decimal


def outcome_of(request: Any, legs: list[Any]) -> Outcome:
    """How `request` (its `_REQUEST_FIELDS`) ended, from its legs (`_LEG_FIELDS`, oldest
    first): `headline.outcome` on the parts of the status snapshot it reads."""
    live = request.state in LIVE
    bridged_at, duration = status.bridged_times(legs)
    described = [
        {
            "leg": leg.leg,
            "status": status.leg_status(
                leg, request.state == State.BRIDGED, request.state == State.CANCELLED
            ),
        }
        for leg in legs
    ]
    called = {leg.leg for leg in legs}
    described += [
        {"leg": role, "status": "queued" if live else "not_called"}
        for role in ("a", "b")
        if role not in called
    ]
    snap = {
        "live": live,
        "mode": request.mode,
        "state": request.state,
        "connected_since": bridged_at,
        "legs": described,
    }
    outcome = headline.outcome(snap)
    cost = sum((leg.cost for leg in legs if leg.billed and leg.cost is not None), Decimal(0))
    seconds = duration if outcome == "connected" else 0
    return Outcome(request.id, request.mode, request.created_at, outcome, seconds, cost)


def matching(account_id: int, wanted: HistoryFilter) -> list[Outcome]:
    """The account's requests that match `wanted`, its outcome too, newest first."""
    query = requests_query(account_id, wanted)
    requests = list(query.select(*_REQUEST_FIELDS).namedtuples())
    legs: dict[int, list[Any]] = defaultdict(list)
    ids = query.select(CallbackRequest.id).order_by()
    found = Leg.select(*_LEG_FIELDS).where(Leg.request.in_(ids)).order_by(Leg.created_at, Leg.id)
    for leg in found.namedtuples():
        legs[leg.request].append(leg)
    taken = OUTCOMES[wanted.outcome][1]
    outcomes = (outcome_of(request, legs[request.id]) for request in requests)
    return [o for o in outcomes if taken is None or o.outcome in taken]


def view(account_id: int, wanted: HistoryFilter, page_request: inputs.PageRequest) -> HistoryView:
    """The history page for `wanted` (see HistoryView); days in `wanted.zone`."""
    span = wanted.until - wanted.since if wanted.since and wanted.until else None
    per = "day" if span is not None and span < timedelta(days=31) else "month"
    totals, periods = Totals(), {}
    found = matching(account_id, wanted)
    zone = wanted.zone or time_zones.DEFAULT
    for item in found:
        totals.add(item.outcome, item.talk_seconds, item.cost)
        local = time_zones.local(item.created_at, zone).date()
        key = local if per == "day" else local.replace(day=1)
        periods.setdefault(key, Totals(label=period_label(key, per))).add(
            item.outcome, item.talk_seconds, item.cost
        )
    first = (page_request.page - 1) * page_request.per_page
    ids = [item.id for item in found[first : first + page_request.per_page]]
    shown = list(CallbackRequest.select().where(CallbackRequest.id.in_(ids))) if ids else []
    shown.sort(key=lambda request: ids.index(request.id))
    one_page = Page(
        _snapshots(account_id, shown), page_request.page, page_request.per_page, len(found)
    )
    newest_first = [periods[key] for key in sorted(periods, reverse=True)]
    return HistoryView(one_page, totals, per, newest_first)


def days_words(since: date | None, until: date | None) -> str:
    """The days of a period: `1 \N{EN DASH} 7 Dec 2026`, `14 Mar 2025`, `from 1 Dec 2026`."""

    def written(day: date) -> str:
        return f"{day.day} {day:%b %Y}"

    if since is None and until is None:
        return "every day"
    if until is None or until == date.max:
        return f"from {written(since)}" if since else "every day"
    if since is None or since == date.min:
        return f"up to {written(until)}"
    if since == until:
        return written(since)
    if (since.year, since.month) == (until.year, until.month):
        return f"{since.day} \N{EN DASH} {written(until)}"
    return f"{written(since)} \N{EN DASH} {written(until)}"


def period_label(first_day: date, per: str) -> str:
    """A day (`Fri 14 Mar 2025`) or a month (`March 2025`) of the history's totals."""
    if per == "day":
        return f"{first_day:%a} {first_day.day} {first_day:%b %Y}"
    return f"{first_day:%B %Y}"


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


CALLS_CSV_COLUMNS = (
    "date",
    "time",
    "time_zone",
    "kind",
    "contact",
    "number",
    "your_number",
    "outcome",
    "talk_seconds",
    "cost",
    "currency",
    "request_id",
)


def export_calls_csv(account_id: int, wanted: HistoryFilter) -> str:
    """The history page's CSV: one line per call or number check that matches `wanted`, its
    date and time in `wanted.zone`, the contact's name, numbers as +E.164, the cost with the
    currency's decimals (`formats.money`)."""
    zone = wanted.zone or time_zones.DEFAULT
    found = matching(account_id, wanted)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CALLS_CSV_COLUMNS)
    currency = Account.get_by_id(account_id).currency
    for offset in range(0, len(found), 500):
        chunk = found[offset : offset + 500]
        rows = {
            r.id: r
            for r in CallbackRequest.select(
                CallbackRequest.id, CallbackRequest.source, CallbackRequest.destination
            ).where(CallbackRequest.id.in_([item.id for item in chunk]))
        }
        names = contact_names.names_of(account_id, [r.destination for r in rows.values()])
        for item in chunk:
            request = rows[item.id]
            local = time_zones.local(item.created_at, zone)
            check = item.mode == "verify"
            other = request.source if check else request.destination
            writer.writerow(
                [
                    f"{local:%Y-%m-%d}",
                    f"{local:%H:%M:%S}",
                    zone,
                    "number check" if check else "call",
                    "" if check else names.get(request.destination or "", ""),
                    f"+{other}" if other else "",
                    "" if check or not request.source else f"+{request.source}",
                    headline.OUTCOME_WORDS[item.outcome],
                    item.talk_seconds,
                    formats.money(item.cost, currency),
                    currency,
                    item.id,
                ]
            )
    return out.getvalue()
