"""The phone book of an account: entries with one or more labelled numbers, search, CSV import
(previewed, then carried out) and export.

Functions taking `account_id` only ever see that account's entries: an entry of another account
is "not found", exactly like one that does not exist. Run them through `Database.run`.

An entry's first number is `PhoneBookEntry.number` (and `label`); its others are
`PhoneBookNumber` rows. An account's book has each number once, first or not: adding a number
the book already has, or changing an entry to one, is a Conflict naming the entry that has it
(`refuse_taken`). In JSON an entry keeps `number` (its first) beside `numbers` (all, labelled),
so an app that knows only `number` goes on working: a change sending only `number` replaces the
first number and keeps the others.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from esl_callback import accounts, numbers
from esl_callback.callback.status import iso
from esl_callback.db import database_proxy, utcnow
from esl_callback.models import PhoneBookEntry, PhoneBookNumber
from esl_callback.web import inputs
from esl_callback.web.errors import Conflict, Invalid, NotFound
from esl_callback.web.paging import Page, paginate

CSV_COLUMNS = ("name", "number", "label", "notes", "other_numbers")
MAX_IMPORT_ROWS = 5000
NAME_LENGTH, NOTES_LENGTH, LABEL_LENGTH = 128, 1000, 16
LABELS = ("mobile", "home", "work", "other")  # offered by the forms; apps may send their own
MAX_NUMBERS = 5  # per entry
# Spreadsheets run cells starting with these as formulas: exported text gets a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Numbered:
    """One of an entry's numbers with what it is (mobile, home, work, ...; may be "")."""

    label: str
    number: str


@dataclass(frozen=True)
class Fields:
    name: str
    number: str
    notes: str
    favourite: bool | None = None  # None: as it was (False for a new entry)
    label: str | None = None  # of `number`; None: as it was ("" for a new entry)
    more: tuple[Numbered, ...] | None = None  # the other numbers; None: as they were

    @property
    def numbers(self) -> list[str]:
        """Every number these fields give the entry, the first first."""
        return [self.number, *(other.number for other in self.more or ())]


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0  # updates not confirmed, or no longer possible


@dataclass
class ImportPlan:
    """What importing rows would do: entries added, entries changed (as they are and as they
    would be), and rows that cannot be imported, before anything is written."""

    adds: list[Fields] = field(default_factory=list)
    updates: list[tuple[dict[str, Any], Fields]] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def read_label(raw: Any, field_name: str) -> str:
    return inputs.text(raw, field_name, "label", max_length=LABEL_LENGTH, required=False)


def read_fields(data: Any, rules: numbers.NumberRules) -> Fields:
    """An entry's fields from a form or JSON object, validated.

    Its numbers come from `numbers` (JSON: a list of {"label", "number"}, the first first), from
    a form's `number`/`label` and `more_number_N`/`more_label_N` (N from 1), or from `number`
    (and `label`) alone, which leaves the entry's other numbers as they were.
    """
    name = inputs.text(data.get("name"), "name", "name", max_length=NAME_LENGTH)
    notes = inputs.text(
        data.get("notes"), "notes", "notes", max_length=NOTES_LENGTH, required=False
    )
    favourite = inputs.flag(data.get("favourite"), "favourite")
    listed = data.get("numbers")
    if listed is not None:
        first, *more = read_numbers(listed, rules)
        return Fields(name, first.number, notes, favourite, first.label, tuple(more))
    number = inputs.number(data.get("number"), "number", rules)
    label = read_label(data.get("label"), "label") if "label" in data else None
    more = read_form_numbers(data, rules) if "more_number_1" in data else None
    fields = Fields(name, number, notes, favourite, label, more)
    refuse_repeats(fields.numbers, "more_number_1")
    return fields


def read_numbers(listed: Any, rules: numbers.NumberRules) -> list[Numbered]:
    """The `numbers` of a JSON entry: 1 to MAX_NUMBERS of {"label", "number"}, none twice."""
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_NUMBERS:
        raise Invalid(
            f"Give numbers as a list of 1 to {MAX_NUMBERS} objects with a number and a label.",
            field="numbers",
        )
    read = []
    for position, item in enumerate(listed, 1):
        if not isinstance(item, dict):
            raise Invalid(
                f'Number {position}: give it as an object, e.g. {{"label": "work", '
                '"number": "+49 30 1234567"}.',
                field="numbers",
            )
        try:
            number = inputs.number(item.get("number"), "numbers", rules)
        except Invalid as exc:
            which = f"Number {position}: " if position > 1 else ""
            raise Invalid(which + exc.message, field="numbers") from None
        read.append(Numbered(read_label(item.get("label"), "numbers"), number))
    refuse_repeats([item.number for item in read], "numbers")
    return read


def read_form_numbers(data: Any, rules: numbers.NumberRules) -> tuple[Numbered, ...]:
    """A form's other numbers (`more_number_N` with `more_label_N`), empty ones left out."""
    more = []
    for slot in range(1, MAX_NUMBERS):
        raw = data.get(f"more_number_{slot}")
        if raw is None or not str(raw).strip():
            continue
        number = inputs.number(raw, f"more_number_{slot}", rules)
        more.append(
            Numbered(read_label(data.get(f"more_label_{slot}"), f"more_label_{slot}"), number)
        )
    return tuple(more)


def refuse_repeats(given: list[str], field_name: str) -> None:
    """Invalid if an entry would have one number twice."""
    repeated = next((number for i, number in enumerate(given) if number in given[:i]), None)
    if repeated is not None:
        raise Invalid(
            f"{repeated} is given twice: an entry has each number once.", field=field_name
        )


def form_values(data: Any) -> dict[str, Any]:
    """What the entry form shows: an entry as `describe` gives it, or a form sent back; its
    other numbers, then an empty slot for one more (up to MAX_NUMBERS in all)."""
    if "numbers" in data:
        more = [dict(item) for item in data["numbers"][1:]]
    else:
        more = [
            {"label": data.get(f"more_label_{slot}", ""), "number": data[f"more_number_{slot}"]}
            for slot in range(1, MAX_NUMBERS)
            if str(data.get(f"more_number_{slot}") or "").strip()
        ]
    if len(more) < MAX_NUMBERS - 1:
        more.append({"label": "", "number": ""})
    return {
        "name": data.get("name", ""),
        "number": data.get("number", ""),
        "label": data.get("label", "mobile"),
        "notes": data.get("notes", ""),
        "more": more,
    }


def numbers_of(entries: Iterable[PhoneBookEntry]) -> list[PhoneBookEntry]:
    """The entries, each given `all_numbers` (Numbered, its first first), in one query."""
    entries = list(entries)
    more: dict[int, list[Numbered]] = {entry.id: [] for entry in entries}
    if entries:
        for row in (
            PhoneBookNumber.select()
            .where(PhoneBookNumber.entry.in_(list(more)))
            .order_by(PhoneBookNumber.position, PhoneBookNumber.id)
        ):
            more[row.entry_id].append(Numbered(row.label, row.number))
    for entry in entries:
        entry.all_numbers = [Numbered(entry.label, entry.number), *more[entry.id]]
    return entries


def describe(entry: PhoneBookEntry) -> dict[str, Any]:
    if not hasattr(entry, "all_numbers"):
        numbers_of([entry])
    return {
        "id": entry.id,
        "name": entry.name,
        "number": entry.number,
        "label": entry.label,
        "numbers": [{"label": n.label, "number": n.number} for n in entry.all_numbers],
        "notes": entry.notes,
        "favourite": bool(entry.favourite),
        "created_at": iso(entry.created_at),
        "updated_at": iso(entry.updated_at),
    }


def search(account_id: int, query: str, wanted: inputs.PageRequest) -> Page:
    """Entries whose name or one of whose numbers contains `query` (all when empty), by name."""
    select = PhoneBookEntry.select().where(PhoneBookEntry.account == account_id)
    query = query.strip()
    if query:
        digits = "".join(ch for ch in query if ch in numbers.ASCII_DIGITS)
        # Case-insensitive (ILIKE / LIKE); contains() escapes %, _ and \ with an ESCAPE
        # clause (peewee 3.14 and later), so each matches only itself.
        matches = PhoneBookEntry.name.contains(query)
        if digits:
            others = PhoneBookNumber.select(PhoneBookNumber.entry).where(
                PhoneBookNumber.account == account_id, PhoneBookNumber.number.contains(digits)
            )
            matches |= PhoneBookEntry.number.contains(digits) | PhoneBookEntry.id.in_(others)
        select = select.where(matches)
    found = paginate(select.order_by(PhoneBookEntry.name, PhoneBookEntry.id), wanted)
    numbers_of(found.items)
    return found


def all_entries(account_id: int) -> list[PhoneBookEntry]:
    """Every entry of the account, by name, with `all_numbers`."""
    return numbers_of(
        PhoneBookEntry.select()
        .where(PhoneBookEntry.account == account_id)
        .order_by(PhoneBookEntry.name, PhoneBookEntry.id)
    )


@dataclass(frozen=True)
class Choice:
    """A number to call from the phone book, as the call form offers it."""

    name: str
    number: str


def choices(account_id: int) -> list[Choice]:
    """Every number of the book with its entry's name (and label, for an entry with several)."""
    return [
        Choice(
            f"{entry.name} ({item.label})"
            if item.label and len(entry.all_numbers) > 1
            else entry.name,
            item.number,
        )
        for entry in all_entries(account_id)
        for item in entry.all_numbers
    ]


def get(account_id: int, entry_id: int) -> PhoneBookEntry:
    entry = PhoneBookEntry.get_or_none(
        PhoneBookEntry.id == entry_id, PhoneBookEntry.account == account_id
    )
    if entry is None:
        raise NotFound(f"There is no entry {entry_id} in your phone book.")
    return entry


def holders(account_id: int, wanted: Iterable[str]) -> dict[str, PhoneBookEntry]:
    """The entry of the account's book holding each of `wanted` numbers that one holds."""
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    by_id: dict[int, PhoneBookEntry] = {}  # one object per entry, however many numbers it holds
    held = {
        entry.number: by_id.setdefault(entry.id, entry)
        for entry in PhoneBookEntry.select().where(
            PhoneBookEntry.account == account_id, PhoneBookEntry.number.in_(wanted)
        )
    }
    for row in (
        PhoneBookNumber.select(PhoneBookNumber, PhoneBookEntry)
        .join(PhoneBookEntry)
        .where(PhoneBookNumber.account == account_id, PhoneBookNumber.number.in_(wanted))
    ):
        held[row.number] = by_id.setdefault(row.entry.id, row.entry)
    return held


def refuse_taken(account_id: int, given: list[str], entry_id: int | None = None) -> None:
    """Conflict when an entry other than `entry_id` already has one of the numbers (under
    accounts.lock)."""
    for number, holder in holders(account_id, given).items():
        if holder.id != entry_id:
            raise Conflict(
                f'{number} is already in your phone book as "{holder.name}": edit that entry '
                "instead.",
                field="number" if number == given[0] else f"more_number_{given.index(number)}",
            )


def insert(account_id: int, fields: Fields) -> PhoneBookEntry:
    """A new entry, unchecked: callers make sure its numbers are not taken."""
    now = utcnow()
    entry = PhoneBookEntry.create(
        account=account_id,
        name=fields.name,
        number=fields.number,
        label=fields.label or "",
        notes=fields.notes,
        favourite=bool(fields.favourite),
        created_at=now,
        updated_at=now,
    )
    replace_more(entry, fields.more or ())
    return entry


def replace_more(entry: PhoneBookEntry, more: Iterable[Numbered]) -> None:
    """Make `more` the entry's other numbers, in order."""
    PhoneBookNumber.delete().where(PhoneBookNumber.entry == entry.id).execute()
    for position, item in enumerate(more):
        PhoneBookNumber.create(
            entry=entry.id,
            account=entry.account_id,
            label=item.label,
            number=item.number,
            position=position,
        )
    if hasattr(entry, "all_numbers"):
        del entry.all_numbers


def create(account_id: int, fields: Fields) -> PhoneBookEntry:
    """A new entry; Conflict if the book already has one of its numbers."""
    with database_proxy.atomic():
        accounts.lock(account_id)
        refuse_taken(account_id, fields.numbers)
        return insert(account_id, fields)


def change(entry: PhoneBookEntry, fields: Fields) -> None:
    """Write `fields` to the entry (its numbers checked by the caller); what is None stays."""
    entry.name, entry.number, entry.notes = fields.name, fields.number, fields.notes
    if fields.favourite is not None:
        entry.favourite = fields.favourite
    if fields.label is not None:
        entry.label = fields.label
    entry.updated_at = utcnow()
    entry.save()
    if fields.more is not None:
        replace_more(entry, fields.more)


def update(account_id: int, entry_id: int, fields: Fields) -> PhoneBookEntry:
    """Change an entry; Conflict if one of its new numbers is another entry's."""
    with database_proxy.atomic():
        accounts.lock(account_id)
        entry = get(account_id, entry_id)
        if fields.more is None:  # its other numbers stay: the new first must not be one
            numbers_of([entry])
            kept = [item for item in entry.all_numbers[1:] if item.number != fields.number]
            fields = dataclasses.replace(fields, more=tuple(kept))
        refuse_taken(account_id, fields.numbers, entry.id)
        change(entry, fields)
    return entry


def set_favourite(account_id: int, entry_id: int, favourite: bool) -> PhoneBookEntry:
    """Show one of the account's entries on the home page, or stop showing it."""
    entry = get(account_id, entry_id)
    PhoneBookEntry.update(favourite=favourite).where(PhoneBookEntry.id == entry.id).execute()
    entry.favourite = favourite
    return entry


def delete(account_id: int, entry_id: int) -> PhoneBookEntry:
    """Delete one of the account's entries (and its numbers); the entry as it was."""
    with database_proxy.atomic():
        entry = get(account_id, entry_id)
        PhoneBookNumber.delete().where(PhoneBookNumber.entry == entry.id).execute()
        entry.delete_instance()
    return entry


def parse_csv(text: str, rules: numbers.NumberRules) -> tuple[list[Fields], list[str]]:
    """Rows of a CSV with a header naming `name` and `number` (and optionally `label`, `notes`
    and `other_numbers`, written "work: +49 30 1234567; home: 030 7654321").

    Returns the valid rows and one message per bad row, with its line number. A row with more
    values than the header names columns is bad (a comma outside quotes would lose data), and so
    is one repeating a number of an earlier row (one entry per number). A line the CSV reader
    cannot read (a value over `csv.field_size_limit()` characters) ends the reading there.
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rows: list[Fields] = []
    errors: list[str] = []
    try:
        read_rows(reader, rules, rows, errors)
    except csv.Error as exc:
        errors.append(f"Line {reader.reader.line_num}: {unreadable(exc)}")
    return rows, errors


def read_rows(
    reader: csv.DictReader, rules: numbers.NumberRules, rows: list[Fields], errors: list[str]
) -> None:
    """Add the reader's valid rows to `rows` and a message per bad row to `errors`."""
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "name" not in header or "number" not in header:
        errors.append("Line 1: the first line must name the columns, e.g. name,number,label,notes.")
        return
    reader.fieldnames = header
    first_lines: dict[str, int] = {}
    for index, row in enumerate(reader):
        line = reader.line_num
        if index >= MAX_IMPORT_ROWS:
            errors.append(
                f"Line {line}: at most {MAX_IMPORT_ROWS} entries can be imported at once."
            )
            break
        if not any(value.strip() for value in cells(row)):
            continue
        try:
            fields = read_row(row, len(header), rules)
            for number in fields.numbers:
                refuse_repeat(number, line, first_lines)
        except Invalid as exc:
            errors.append(f"Line {line}: {exc.message}")
        else:
            rows.append(fields)


def unreadable(exc: csv.Error) -> str:
    """What to do about a line the CSV reader refused."""
    if "field larger than field limit" in str(exc):
        return (
            f"a value is longer than {csv.field_size_limit()} characters; a name may have at "
            f"most {NAME_LENGTH} characters and notes at most {NOTES_LENGTH}."
        )
    return f"it is not readable as CSV ({exc}): save the file again as CSV (UTF-8)."


def cells(row: dict[str | None, Any]) -> list[str]:
    """Every value of a `csv.DictReader` row, those beyond the header's columns (key None) too."""
    named = [value for key, value in row.items() if key is not None and isinstance(value, str)]
    return named + (row.get(None) or [])


def read_row(row: dict[str | None, Any], columns: int, rules: numbers.NumberRules) -> Fields:
    """A CSV row's fields; Invalid if it has more values than the header's `columns`."""
    extra = row.get(None)
    if extra:
        raise Invalid(
            f"it has {columns + len(extra)} values but the first line names {columns} columns: "
            'put a value holding a comma in double quotes, e.g. "Smith, John".'
        )
    data = {key: unquote_formula(value) for key, value in row.items() if key}
    others = data.pop("other_numbers", None)
    if others is not None:
        first = {"label": data.get("label") or "", "number": data.get("number")}
        data["numbers"] = [first, *read_other_numbers(others)]
    return read_fields(data, rules)


def read_other_numbers(cell: Any) -> list[dict[str, str]]:
    """The `other_numbers` of a CSV row: "work: +49 30 1234567; home: 030 7654321"."""
    listed = []
    for part in str(cell or "").split(";"):
        label, colon, number = part.partition(":")
        if part.strip():
            listed.append(
                {"label": label.strip(), "number": number}
                if colon
                else {"label": "", "number": part}
            )
    return listed


def refuse_repeat(number: str, line: int, first_lines: dict[str, int]) -> None:
    """Invalid if an earlier line of the file has `number`; else remember this line has it."""
    first = first_lines.setdefault(number, line)
    if first != line:
        raise Invalid(f"{number} is already on line {first}: one entry per number.")


def merged(entry: PhoneBookEntry, row: Fields) -> Fields:
    """What importing `row` makes of the entry holding its number: a row without other numbers
    changes the name, notes (and the label of the number it names), never the numbers."""
    if row.more is not None:
        return row
    label = row.label if row.number == entry.number else None
    return Fields(row.name, entry.number, row.notes, None, label, None)


def differs(entry: PhoneBookEntry, fields: Fields) -> bool:
    """True when writing `fields` would change the entry (which has `all_numbers`)."""
    return (
        (entry.name, entry.notes) != (fields.name, fields.notes)
        or (fields.label is not None and fields.label != entry.label)
        or (
            fields.more is not None
            and [Numbered(fields.label or "", fields.number), *fields.more] != entry.all_numbers
        )
    )


def match(account_id: int, rows: list[Fields]) -> tuple[list[tuple[Fields, Any]], list[str]]:
    """Each row with the entry holding its numbers (None: a new entry), and a message for each
    row whose numbers are in two entries, or whose entry another row changes too."""
    held = holders(account_id, [number for row in rows for number in row.numbers])
    numbers_of({entry.id: entry for entry in held.values()}.values())
    matched, errors, claimed = [], [], {}
    for row in rows:
        entries = {held[n].id: held[n] for n in row.numbers if n in held}
        if len(entries) > 1:
            names = " and ".join(f'"{entry.name}"' for entry in entries.values())
            errors.append(
                f"{row.name} ({row.number}): its numbers are in two entries, {names}; "
                "give them in one line each, or merge the entries first."
            )
            continue
        entry = next(iter(entries.values()), None)
        if entry is not None and claimed.setdefault(entry.id, row.name) != row.name:
            errors.append(
                f'{row.name} ({row.number}): "{entry.name}" is changed by another line too '
                f"({claimed[entry.id]}); keep one line per person."
            )
            continue
        matched.append((row, entry))
    return matched, errors


def plan_import(account_id: int, rows: list[Fields]) -> ImportPlan:
    """What `import_rows` would do with the rows, writing nothing."""
    matched, errors = match(account_id, rows)
    plan = ImportPlan(errors=errors)
    for row, entry in matched:
        if entry is None:
            plan.adds.append(row)
        elif differs(entry, merged(entry, row)):
            plan.updates.append((describe(entry), merged(entry, row)))
        else:
            plan.unchanged += 1
    return plan


def import_rows(
    account_id: int, rows: list[Fields], overwrite: Iterable[int] | None = None
) -> ImportResult:
    """Add the rows; a row with a number already in the book updates that entry instead, if its
    id is among `overwrite` (None: any). Rows that cannot be matched (see `match`) are skipped."""
    allowed = None if overwrite is None else set(overwrite)
    result = ImportResult()
    with database_proxy.atomic():
        accounts.lock(account_id)
        matched, errors = match(account_id, rows)
        result.skipped = len(errors)
        for row, entry in matched:
            if entry is None:
                insert(account_id, row)
                result.created += 1
            elif not differs(entry, merged(entry, row)):
                continue
            elif allowed is None or entry.id in allowed:
                change(entry, merged(entry, row))
                result.updated += 1
            else:
                result.skipped += 1
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
    """The whole phone book as CSV (name, number, label, notes, other_numbers), importable
    again."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for entry in all_entries(account_id):
        others = "; ".join(
            f"{item.label}: {item.number}" if item.label else item.number
            for item in entry.all_numbers[1:]
        )
        writer.writerow(
            [
                spreadsheet_safe(entry.name),
                entry.number,
                spreadsheet_safe(entry.label),
                spreadsheet_safe(entry.notes),
                others,
            ]
        )
    return out.getvalue()
