"""Times in the customer's time zone. Each web user may choose one in Settings
(`WebUser.time_zone`); until they do, the portal uses their browser's, which app.js keeps in the
`tz` cookie on every page (the login page too, so the first page after it is right). Without
either, UTC. Times are stored as naive UTC.

The JSON API keeps UTC: its times carry a `Z` and its day filters are UTC days.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from flask import g, has_request_context, request

from esl_callback.models import WebUser
from esl_callback.web.formats import NOTHING, parse_iso
from esl_callback.web.portal import portal

DEFAULT = "UTC"
COOKIE = "tz"  # the browser's time zone, written by app.js


@functools.cache
def all_zones() -> tuple[str, ...]:
    """Every IANA time zone name this system knows, sorted (for the Settings list)."""
    return tuple(
        sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")
    )


def valid(name: object) -> str | None:
    """`name` if it is an IANA time zone this system knows (e.g. Europe/Berlin), else None."""
    if not isinstance(name, str) or len(name) > 64 or name not in all_zones():
        return None
    return name


def browser_zone() -> str | None:
    """The browser's time zone, as app.js reported it (None if it did not or it is unknown)."""
    if not has_request_context():
        return None
    return valid(request.cookies.get(COOKIE))


def chosen_zone() -> str | None:
    """The zone the current user chose in Settings (None: follow the browser)."""
    if not has_request_context():
        return None
    if "chosen_time_zone" not in g:
        user = g.get("user")
        g.chosen_time_zone = valid(stored_zone(user.id)) if user is not None else None
    return g.chosen_time_zone


def stored_zone(user_id: int) -> str | None:
    def read() -> str | None:
        found = WebUser.select(WebUser.time_zone).where(WebUser.id == user_id).first()
        return found.time_zone if found is not None else None

    return portal().run(read)


def store(user_id: int, name: str | None) -> None:
    """Keep `name` (valid) as the user's zone; None: follow the browser (run through
    Database.run)."""
    WebUser.update(time_zone=valid(name)).where(WebUser.id == user_id).execute()


def current_name() -> str:
    """The current user's zone: chosen in Settings, else the browser's, else UTC."""
    return chosen_zone() or browser_zone() or DEFAULT


def zone(name: str | None = None) -> zoneinfo.ZoneInfo:
    """The zone `name`, else the current user's (`current_name`)."""
    try:
        return zoneinfo.ZoneInfo(valid(name) or (current_name() if name is None else DEFAULT))
    except zoneinfo.ZoneInfoNotFoundError:
        return zoneinfo.ZoneInfo(DEFAULT)


def local(moment: str | datetime | None, name: str | None = None) -> datetime | None:
    """A stored time (naive UTC, or a snapshot's ISO text) in the user's zone."""
    parsed = parse_iso(moment)
    if parsed is None:
        return None
    try:
        return parsed.replace(tzinfo=UTC).astimezone(zone(name))
    except OverflowError:  # a moment at the very end of time, in a zone ahead of UTC
        return parsed.replace(tzinfo=UTC)


def when(moment: str | datetime | None) -> str:
    """Date and time in the user's zone: `7 Dec 2026, 21:56`."""
    shown = local(moment)
    if shown is None:
        return NOTHING
    return f"{shown.day} {shown:%b %Y, %H:%M}"


def day(moment: str | datetime | None) -> str:
    """The date in the user's zone: `7 Dec 2026`."""
    shown = local(moment)
    if shown is None:
        return NOTHING
    return f"{shown.day} {shown:%b %Y}"


def time_of_day(moment: str | datetime | None) -> str:
    """The time in the user's zone, to the second: `21:56:07`."""
    shown = local(moment)
    return NOTHING if shown is None else f"{shown:%H:%M:%S}"


def day_bounds(
    since: date | None, until: date | None, name: str | None = None
) -> tuple[datetime | None, datetime | None]:
    """The naive UTC times from the start of `since` to the end of `until`, both days in the
    zone `name` (default: the user's; None where not given, or beyond the times there are)."""
    tz = zone(name)

    def utc(day: date) -> datetime | None:
        try:
            return datetime.combine(day, time(), tz).astimezone(UTC).replace(tzinfo=None)
        except OverflowError:
            return None

    start = utc(since) if since else None
    end = utc(until + timedelta(days=1)) if until and until < date.max else None
    return start, end


def today(name: str | None = None) -> date:
    """Today's date in the user's zone."""
    return datetime.now(zone(name)).date()
