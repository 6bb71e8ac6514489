"""The phone book of an account: entries, search, CSV import and export.

Functions taking `account_id` only ever see that account's entries: an entry of another account
is "not found", exactly like one that does not exist. Run them through `Database.run`.

An account has one entry per number (as stored, E.164 digits): adding a number the book already
has, or changing an entry to one, is a Conflict naming the entry that has it (`refuse_taken`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from esl_callback import accounts, numbers
from esl_callback.callback.status import iso
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import PhoneBookEntry
from esl_callback.web import inputs
from esl_callback.web.errors import Conflict, Invalid, NotFound
from esl_callback.web.paging import Page, paginate

CSV_COLUMNS = ("name", "number", "notes")
MAX_IMPORT_ROWS = 5000
NAME_LENGTH, NOTES_LENGTH = 128, 1000
# Spreadsheets run cells starting with these as formulas: exported text gets a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Fields:
    name: str
    number: str
    notes: str
    favourite: bool | None = None  # None: as it was (False for a new entry)


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0


def read_fields(data: Any, rules: numbers.NumberRules) -> Fields:
    """An entry's fields from a form or JSON object, validated."""
    return Fields(
        name=inputs.text(data.get("name"), "name", "name", max_length=NAME_LENGTH),
        number=inputs.number(data.get("number"), "number", "number", rules),
        notes=inputs.text(
            data.get("notes"), "notes", "notes", max_length=NOTES_LENGTH, required=False
        ),
        favourite=inputs.flag(data.get("favourite"), "favourite"),
    )


def describe(entry: PhoneBookEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "number": entry.number,
        "notes": entry.notes,
        "favourite": bool(entry.favourite),
        "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at),
    }


def search(account_id: int, query: str, wanted: inputs.PageRequest) -> Page:
    """Entries whose name or number contains `query` (all when empty), by name."""
    select = PhoneBookEntry.select().where(PhoneBookEntry.account == account_id)
    query = query.strip()
    if query:
        digits = "".join(ch for ch in query if ch in numbers.ASCII_DIGITS)
        # Case-insensitive (ILIKE / LIKE); contains() escapes %, _ and \ with an ESCAPE
        # clause (peewee 3.14 and later), so each matches only itself.
        matches = PhoneBookEntry.name.contains(query)
        if digits:
            matches |= PhoneBookEntry.number.contains(digits)
        select = select.where(matches)
    return paginate(select.order_by(PhoneBookEntry.name, PhoneBookEntry.id), wanted)


def all_entries(account_id: int) -> list[PhoneBookEntry]:
    return list(
        PhoneBookEntry.select()
        .where(PhoneBookEntry.account == account_id)
        .order_by(PhoneBookEntry.name, PhoneBookEntry.id)
    )


def get(account_id: int, entry_id: int) -> PhoneBookEntry:
    entry = PhoneBookEntry.get_or_none(
        PhoneBookEntry.id == entry_id, PhoneBookEntry.account == account_id
    )
    if entry is None:
        raise NotFound(f"no phone-book entry {entry_id}")
    return entry


def refuse_taken(account_id: int, number: str) -> None:
    """Conflict when one of the account's entries already has `number` (under accounts.lock)."""
    holder = PhoneBookEntry.get_or_none(
        PhoneBookEntry.account == account_id, PhoneBookEntry.number == number
    )
    if holder is not None:
        raise Conflict(
            f'{number} is already in your phone book as "{holder.name}"; edit that entry instead',
            field="number",
        )


def insert(account_id: int, fields: Fields) -> PhoneBookEntry:
    """A new entry, unchecked: callers make sure its number is not taken."""
    now = utcnow()
    return PhoneBookEntry.create(
        account=account_id,
        name=fields.name,
        number=fields.number,
        notes=fields.notes,
        favourite=bool(fields.favourite),
        created_at=now,
        updated_at=now,
    )


def create(account_id: int, fields: Fields) -> PhoneBookEntry:
    """A new entry; Conflict if the book already has its number."""
    with database_proxy.atomic():
        accounts.lock(account_id)
        refuse_taken(account_id, fields.number)
        return insert(account_id, fields)


def update(account_id: int, entry_id: int, fields: Fields) -> PhoneBookEntry:
    """Change an entry; Conflict if its new number is another entry's."""
    with database_proxy.atomic():
        accounts.lock(account_id)
        entry = get(account_id, entry_id)
        if fields.number != entry.number:
            refuse_taken(account_id, fields.number)
        entry.name, entry.number, entry.notes = fields.name, fields.number, fields.notes
        if fields.favourite is not None:
            entry.favourite = fields.favourite
        entry.updated_at = utcnow()
        entry.save()
    return entry


def set_favourite(account_id: int, entry_id: int, favourite: bool) -> PhoneBookEntry:
    """Show one of the account's entries on the home page, or stop showing it."""
    entry = get(account_id, entry_id)
    PhoneBookEntry.update(favourite=favourite).where(PhoneBookEntry.id == entry.id).execute()
    entry.favourite = favourite
    return entry


def delete(account_id: int, entry_id: int) -> PhoneBookEntry:
    """Delete one of the account's entries; the entry as it was."""
    with database_proxy.atomic():
        entry = get(account_id, entry_id)
        entry.delete_instance()
    return entry


def parse_csv(text: str, rules: numbers.NumberRules) -> tuple[list[Fields], list[str]]:
    """Rows of a CSV with a header naming `name` and `number` (and optionally `notes`).

    Returns the valid rows and one message per bad row, with its line number. A row with more
    values than the header names columns is bad (a comma outside quotes would lose data), and so
    is one repeating the number of an earlier row (one entry per number). A line the CSV reader
    cannot read (a value over `csv.field_size_limit()` characters) ends the reading there.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rows: list[Fields] = []
    errors: list[str] = []
    try:
        read_rows(reader, rules, rows, errors)
    except csv.Error as exc:
        errors.append(f"line {reader.reader.line_num}: {unreadable(exc)}")
    return rows, errors


def read_rows(
    reader: csv.DictReader, rules: numbers.NumberRules, rows: list[Fields], errors: list[str]
) -> None:
    """Add the reader's valid rows to `rows` and a message per bad row to `errors`."""
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "name" not in header or "number" not in header:
        errors.append("line 1: the first line must name the columns, e.g. name,number,notes")
        return
    reader.fieldnames = header
    first_lines: dict[str, int] = {}
    for index, row in enumerate(reader):
        line = reader.line_num
        if index >= MAX_IMPORT_ROWS:
            errors.append(f"line {line}: at most {MAX_IMPORT_ROWS} entries per import")
            break
        if not any(value.strip() for value in cells(row)):
            continue
        try:
            fields = read_row(row, len(header), rules)
            refuse_repeat(fields.number, line, first_lines)
        except Invalid as exc:
            errors.append(f"line {line}: {exc.message}")
        else:
            rows.append(fields)


def unreadable(exc: csv.Error) -> str:
    """What to do about a line the CSV reader refused."""
    if "field larger than field limit" in str(exc):
        return (
            f"a value is longer than {csv.field_size_limit()} characters; a name may have at "
            f"most {NAME_LENGTH} characters and notes at most {NOTES_LENGTH}"
        )
    return f"not readable as CSV ({exc}); save the file again as CSV (UTF-8)"


def cells(row: dict[str | None, Any]) -> list[str]:
    """Every value of a `csv.DictReader` row, those beyond the header's columns (key None) too."""
    named = [value for key, value in row.items() if key is not None and isinstance(value, str)]
    return named + (row.get(None) or [])


def read_row(row: dict[str | None, Any], columns: int, rules: numbers.NumberRules) -> Fields:
    """A CSV row's fields; Invalid if it has more values than the header's `columns`."""
    extra = row.get(None)
    if extra:
        raise Invalid(
            f"{columns + len(extra)} values but the first line names {columns} columns; put a "
            'value holding a comma in double quotes, e.g. "Smith, John"'
        )
    return read_fields({key: unquote_formula(value) for key, value in row.items() if key}, rules)


def refuse_repeat(number: str, line: int, first_lines: dict[str, int]) -> None:
    """Invalid if an earlier line of the file has `number`; else remember this line has it."""
    first = first_lines.setdefault(number, line)
    if first != line:
        raise Invalid(f"{number} is already on line {first}: one entry per number")


def import_rows(account_id: int, rows: list[Fields]) -> ImportResult:
    """Add the rows; a row whose number is already in the book updates that entry instead."""
    result = ImportResult()
    now = utcnow()
    with database_proxy.atomic():
        accounts.lock(account_id)
        existing = {
            entry.number: entry
            for entry in PhoneBookEntry.select().where(PhoneBookEntry.account == account_id)
        }
        for row in rows:
            entry = existing.get(row.number)
            if entry is None:
                existing[row.number] = insert(account_id, row)
                result.created += 1
            elif (entry.name, entry.notes) != (row.name, row.notes):
                entry.name, entry.notes, entry.updated_at = row.name, row.notes, now
                entry.save()
                result.updated += 1
    return result


def spreadsheet_safe(value: str) -> str:
    """Text as exported: a leading quote keeps spreadsheets from running it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def unquote_formula(value: object) -> object:
    """Undo `spreadsheet_safe` on import."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def export_csv(account_id: int) -> str:
    """The whole phone book as CSV (name, number, notes), importable again."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in all_entries(account_id):
        writer.writerow([spreadsheet_safe(entry.name), entry.number, spreadsheet_safe(entry.notes)])
    return out.getvalue()
