"""The names an account's phone book gives to numbers: "Mary" for 4940222222.

Status sentences, the history and the home page name the people called with these. Run
`names_of` through `Database.run`.
"""

from __future__ import annotations

from collections.abc import Iterable

from esl_callback.models import PhoneBookEntry


def names_of(account_id: int, numbers: Iterable[str | None]) -> dict[str, str]:
    """The phone-book name of each of `numbers` the account's book has (by E.164 digits)."""
    wanted = sorted({number for number in numbers if number})
    if not wanted:
        return {}
    found = PhoneBookEntry.select(PhoneBookEntry.number, PhoneBookEntry.name).where(
        PhoneBookEntry.account == account_id, PhoneBookEntry.number.in_(wanted)
    )
    return {entry.number: entry.name for entry in found.order_by(PhoneBookEntry.id.desc())}
