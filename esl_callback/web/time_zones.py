"""Times in the customer's time zone: each web user has one (`WebUser.time_zone`, set in
Settings; at the first login, the browser's). Times are stored as naive UTC.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from flask import g

from esl_callback.web.formats import NOTHING, parse_iso

DEFAULT = "UTC"


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


def zone(name: str | None = None) -> zoneinfo.ZoneInfo:
    """The zone `name`, else the current user's, else UTC."""
    if name is None:
        user = g.get("user")
        name = getattr(user, "time_zone", None)
    try:
        return zoneinfo.ZoneInfo(valid(name) or DEFAULT)
    except zoneinfo.ZoneInfoNotFoundError:
        return zoneinfo.ZoneInfo(DEFAULT)


def local(moment: str | datetime | None, name: str | None = None) -> datetime | None:
    """A stored time (naive UTC, or a snapshot's ISO text) in the user's zone."""
    parsed = parse_iso(moment)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC).astimezone(zone(name))


def when(moment: str | datetime | None) -> str:
    """Date and time in the user's zone: `7 Dec 2026, 21:56`."""
    shown = local(moment)
    if shown is None:
        return NOTHING
    return f"{shown.day} {shown:%b %Y, %H:%M}"


def day_bounds(
    since: date | None, until: date | None, name: str | None = None
) -> tuple[datetime | None, datetime | None]:
    """The naive UTC times from the start of `since` to the end of `until`, both days in the
    user's zone (None where not given)."""
    tz = zone(name)

    def utc(day: date) -> datetime:
        return datetime.combine(day, time(), tz).astimezone(UTC).replace(tzinfo=None)

    start = utc(since) if since else None
    end = utc(until + timedelta(days=1)) if until and until < date.max else None
    return start, end


def today(name: str | None = None) -> date:
    """Today's date in the user's zone."""
    return datetime.now(zone(name)).date()
