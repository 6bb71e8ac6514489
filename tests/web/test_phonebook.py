"""The phone book: add, edit, delete, search, CSV import and export, by API and by page."""

from __future__ import annotations

import io

import pytest
from flask.testing import FlaskClient
from web_helpers import User

from esl_callback.models import PhoneBookEntry


def add(client: FlaskClient, user: User, name: str, number: str, notes: str = ""):
    return client.post(
        "/api/v1/phonebook",
        json={"name": name, "number": number, "notes": notes},
        headers=user.auth,
    )


def names(client: FlaskClient, user: User, query: str = "") -> list[str]:
    found = client.get("/api/v1/phonebook", query_string={"q": query}, headers=user.auth)
    return [item["name"] for item in found.json["items"]]


def test_entries_are_added_edited_and_deleted(client: FlaskClient, alice: User) -> None:
    created = add(client, alice, "  Bob  ", "+49 (40) 222-2222", "work")
    assert created.status_code == 201
    entry = created.json
    assert (entry["name"], entry["number"], entry["notes"]) == ("Bob", "49402222222", "work")
    path = f"/api/v1/phonebook/{entry['id']}"
    changed = client.put(path, json={"name": "Robert", "number": "040 3333333"}, headers=alice.auth)
    assert changed.status_code == 200
    assert (changed.json["name"], changed.json["number"]) == ("Robert", "49403333333")
    assert client.get(path, headers=alice.auth).json["name"] == "Robert"
    assert client.delete(path, headers=alice.auth).status_code == 204
    assert client.get(path, headers=alice.auth).status_code == 404


def test_a_number_already_in_the_phone_book_is_refused_naming_its_entry(
    client: FlaskClient, alice: User, bob: User
) -> None:
    """Numbers are compared as stored: the same number written another way is the same."""
    add(client, alice, "Bob", "+49 40 2222222")
    again = add(client, alice, "Bobby", "0049 40 222 2222")
    assert again.status_code == 409
    assert again.json["error"] == {
        "code": "conflict",
        "message": '49402222222 is already in your phone book as "Bob": edit that entry instead.',
        "field": "number",
    }
    assert names(client, alice) == ["Bob"]
    assert add(client, bob, "Bob", "49402222222").status_code == 201  # another account's book


def test_an_entry_keeps_its_own_number_but_cannot_take_another_entrys(
    client: FlaskClient, alice: User
) -> None:
    add(client, alice, "Bob", "4940222222")
    carol = add(client, alice, "Carol", "4989333333").json["id"]
    path = f"/api/v1/phonebook/{carol}"
    taken = client.put(path, json={"name": "Carol", "number": "+49 40 222222"}, headers=alice.auth)
    assert taken.status_code == 409
    message = taken.json["error"]["message"]
    assert message.startswith('4940222222 is already in your phone book as "Bob"')
    assert client.get(path, headers=alice.auth).json["number"] == "4989333333"
    kept = client.put(path, json={"name": "Caroline", "number": "4989333333"}, headers=alice.auth)
    assert kept.status_code == 200
    # A number stored twice before it was refused: either entry can still be renamed.
    twin = PhoneBookEntry.create(account=alice.account.id, name="Bobby", number="4940222222")
    renamed = client.put(
        f"/api/v1/phonebook/{twin.id}",
        json={"name": "Robert", "number": "4940222222"},
        headers=alice.auth,
    )
    assert renamed.status_code == 200


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"name": "", "number": "4940222222"}, "name", "Name is missing: type it."),
        (
            {"name": "x" * 129, "number": "4940222222"},
            "name",
            "Name is too long: at most 128 characters, please.",
        ),
        (
            {"name": "Bob", "number": "040-CALL-ME"},
            "number",
            "That number has letters in it: type digits only (spaces, dashes and a leading + "
            "are fine).",
        ),
        ({"name": "Bob"}, "number", "Type a phone number."),
        (
            {"name": "Bob\x00\x1b[31m", "number": "4940222222"},
            "name",
            "Name must be one line of printable text; it holds the control character U+0000.",
        ),
        (
            {"name": "Bob", "number": "4940222222", "notes": "two\nlines"},
            "notes",
            "Notes must be one line of printable text; it holds the control character U+000A.",
        ),
        (
            {"name": "Bob", "number": 4940222222},
            "number",
            "That number must be text made of digits, not int.",
        ),
    ],
)
def test_invalid_entries_are_refused_with_a_clear_message(
    client: FlaskClient, alice: User, entry: dict, field: str, message: str
) -> None:
    response = client.post("/api/v1/phonebook", json=entry, headers=alice.auth)
    assert response.status_code == 422
    assert response.json["error"] == {"code": "invalid", "message": message, "field": field}
    assert PhoneBookEntry.select().count() == 0


def test_search_matches_names_in_any_case_and_parts_of_numbers(
    client: FlaskClient, alice: User
) -> None:
    add(client, alice, "Bob Builder", "4940222222")
    add(client, alice, "Carol", "4989333333")
    add(client, alice, "100% Dave_", "4930444444")
    assert names(client, alice, "bob") == ["Bob Builder"]
    assert names(client, alice, "+49 89") == ["Carol"]
    assert names(client, alice, "%") == ["100% Dave_"]  # wildcards are taken literally
    assert names(client, alice) == ["100% Dave_", "Bob Builder", "Carol"]


def test_search_takes_wildcards_and_the_escape_character_literally(
    client: FlaskClient, alice: User
) -> None:
    """`_`, `%` and `\\` are the LIKE pattern's wildcards and escape: each finds only names
    holding it, on SQLite and on PostgreSQL."""
    add(client, alice, "Bob", "4940222222")
    add(client, alice, "Dave_", "4930444444")
    add(client, alice, "100% Carol", "4989333333")
    add(client, alice, "C:\\Eve", "4930555555")
    assert names(client, alice, "_") == ["Dave_"]
    assert names(client, alice, "%") == ["100% Carol"]
    assert names(client, alice, "\\") == ["C:\\Eve"]
    assert names(client, alice, "\\_") == []  # no name holds a backslash before an underscore
    assert names(client, alice, "b_b") == []


def test_the_phone_book_is_paginated(client: FlaskClient, alice: User) -> None:
    for index in range(5):
        add(client, alice, f"Person {index}", f"49402222{index:03d}")
    page = client.get("/api/v1/phonebook?per_page=2&page=3", headers=alice.auth).json
    assert (page["total"], page["pages"], page["page"]) == (5, 3, 3)
    assert [item["name"] for item in page["items"]] == ["Person 4"]
    bad = client.get("/api/v1/phonebook?per_page=500", headers=alice.auth)
    assert bad.status_code == 422
    assert bad.json["error"]["field"] == "per_page"


def test_another_accounts_entries_are_invisible_and_untouchable(
    client: FlaskClient, alice: User, bob: User
) -> None:
    theirs = add(client, bob, "Bob's mother", "4940999999").json["id"]
    path = f"/api/v1/phonebook/{theirs}"
    assert client.get(path, headers=alice.auth).status_code == 404
    update = client.put(path, json={"name": "x", "number": "4940111111"}, headers=alice.auth)
    assert update.status_code == 404
    assert client.delete(path, headers=alice.auth).status_code == 404
    assert names(client, alice) == []
    assert "Bob" not in client.get("/api/v1/phonebook.csv", headers=alice.auth).text
    assert PhoneBookEntry.get_by_id(theirs).name == "Bob's mother"


def test_another_accounts_entry_pages_are_not_found(
    client: FlaskClient, logged_in: str, bob: User
) -> None:
    theirs = add(client, bob, "Bob's mother", "4940999999").json["id"]
    assert client.get(f"/phonebook/{theirs}/edit").status_code == 404
    posted = client.post(
        f"/phonebook/{theirs}/edit",
        data={"name": "x", "number": "4940111111", "csrf_token": logged_in},
    )
    assert posted.status_code == 404
    deleted = client.post(f"/phonebook/{theirs}/delete", data={"csrf_token": logged_in})
    assert deleted.status_code == 404
    assert PhoneBookEntry.get_by_id(theirs).name == "Bob's mother"


def test_csv_export_and_import_round_trip(client: FlaskClient, alice: User, bob: User) -> None:
    add(client, alice, "Bob", "4940222222", "likes, commas")
    add(client, alice, "=HYPERLINK(evil)", "4940333333")
    exported = client.get("/api/v1/phonebook.csv", headers=alice.auth)
    assert exported.mimetype == "text/csv"
    assert exported.headers["Content-Disposition"] == 'attachment; filename="phonebook.csv"'
    lines = exported.text.splitlines()
    assert lines[0] == "name,number,label,notes,other_numbers"
    assert "'=HYPERLINK(evil),4940333333,,," in lines  # not run as a formula by spreadsheets
    imported = client.post(
        "/api/v1/phonebook/import",
        data=exported.text,
        content_type="text/csv",
        headers=bob.auth,
    )
    assert imported.json == {"created": 2, "updated": 0, "skipped": 0}
    assert names(client, bob) == ["=HYPERLINK(evil)", "Bob"]


def test_importing_updates_entries_with_the_same_number(client: FlaskClient, alice: User) -> None:
    add(client, alice, "Bob", "4940222222")
    csv_text = "Name,Number,Notes\nRobert,+49 40 222 222,new\nCarol,4989333333,\n\n"
    result = client.post(
        "/api/v1/phonebook/import",
        data={"file": (io.BytesIO(csv_text.encode()), "contacts.csv")},
        headers=alice.auth,
    )
    assert result.json == {"created": 1, "updated": 1, "skipped": 0}
    assert names(client, alice) == ["Carol", "Robert"]


def test_an_import_with_bad_lines_imports_nothing_and_lists_them(
    client: FlaskClient, alice: User
) -> None:
    csv_text = "name,number\nGood,4940222222\n,4940333333\nBad,12ab\n"
    result = client.post(
        "/api/v1/phonebook/import", data=csv_text, content_type="text/csv", headers=alice.auth
    )
    assert result.status_code == 422
    assert result.json["error"]["lines"] == [
        "Line 3: Name is missing: type it.",
        "Line 4: That number has letters in it: type digits only (spaces, dashes and a leading "
        "+ are fine).",
    ]
    assert names(client, alice) == []


def import_csv(client: FlaskClient, user: User, csv_text: str):
    return client.post(
        "/api/v1/phonebook/import", data=csv_text, content_type="text/csv", headers=user.auth
    )


def test_an_import_with_more_values_on_a_line_than_columns_imports_nothing(
    client: FlaskClient, alice: User
) -> None:
    """An unquoted comma would cut a name or a note short: the line is refused, not truncated."""
    add(client, alice, "Bob", "4940222222")
    csv_text = (
        "number,name,notes\n"
        "4989333333,Carol,\n"
        "4940222222,Bob,call after 5, not before\n"
        '4930444444,"Smith, Ann",\n'
        "4930555555,Smith, John,friend\n"
    )
    result = import_csv(client, alice, csv_text)
    assert result.status_code == 422
    assert result.json["error"]["lines"] == [
        "Line 3: it has 4 values but the first line names 3 columns: put a value holding a "
        'comma in double quotes, e.g. "Smith, John".',
        "Line 5: it has 4 values but the first line names 3 columns: put a value holding a "
        'comma in double quotes, e.g. "Smith, John".',
    ]
    assert names(client, alice) == ["Bob"]
    assert client.get("/api/v1/phonebook", headers=alice.auth).json["items"][0]["notes"] == ""


def test_an_import_repeating_a_number_imports_nothing_and_names_both_lines(
    client: FlaskClient, alice: User
) -> None:
    """Numbers are compared as stored, so the same number written two ways is a repeat."""
    csv_text = "name,number\nCarol,4989333333\nBob,4940222222\nCaroline,+49 89 333333\n"
    result = import_csv(client, alice, csv_text)
    assert result.status_code == 422
    assert result.json["error"]["lines"] == [
        "Line 4: 4989333333 is already on line 2: one entry per number."
    ]
    assert names(client, alice) == []


def test_an_import_with_a_value_too_long_for_the_csv_reader_names_its_line(
    client: FlaskClient, alice: User
) -> None:
    """Python's CSV reader refuses a value over 131,072 characters: the line is named, nothing
    is imported, by API and by page."""
    csv_text = f"name,number,notes\nBob,4940222222,\nCarol,4989333333,{'x' * 140_000}\n"
    result = import_csv(client, alice, csv_text)
    assert result.status_code == 422
    assert result.json["error"]["lines"] == [
        "Line 3: a value is longer than 131072 characters; a name may have at most 128 "
        "characters and notes at most 1000."
    ]
    header = import_csv(client, alice, f"name,number,{'n' * 140_000}\nBob,4940222222,\n")
    assert header.json["error"]["lines"][0].startswith("Line 1: a value is longer than")
    assert names(client, alice) == []


def test_the_import_page_names_the_line_with_a_value_too_long(
    client: FlaskClient, logged_in: str
) -> None:
    csv_text = f"name,number\nBob,4940222222\nCarol,{'9' * 140_000}\n"
    response = client.post(
        "/phonebook/import",
        data={"file": (io.BytesIO(csv_text.encode()), "big.csv"), "csrf_token": logged_in},
    )
    assert response.status_code == 422
    assert "Nothing can be imported yet" in response.text
    assert "Line 3: a value is longer than 131072 characters" in response.text
    assert PhoneBookEntry.select().count() == 0


def test_an_import_without_a_header_is_refused(client: FlaskClient, alice: User) -> None:
    result = client.post(
        "/api/v1/phonebook/import",
        data="Bob,4940222222\n",
        content_type="text/csv",
        headers=alice.auth,
    )
    assert result.status_code == 422
    assert "must name the columns" in result.json["error"]["lines"][0]


def test_an_import_that_is_not_utf8_is_refused(client: FlaskClient, alice: User) -> None:
    result = client.post(
        "/api/v1/phonebook/import",
        data="name,number\nJos\xe9,4940222222\n".encode("latin-1"),
        content_type="text/csv",
        headers=alice.auth,
    )
    assert result.status_code == 422
    assert result.json["error"]["message"] == (
        "That file is not UTF-8 text: save it again as CSV (UTF-8)."
    )


def test_the_phone_book_page_adds_edits_searches_and_deletes(
    client: FlaskClient, logged_in: str
) -> None:
    added = client.post(
        "/phonebook",
        data={"name": "Bob", "number": "040 2222222", "notes": "", "csrf_token": logged_in},
    )
    assert added.headers["Location"] == "/phonebook"
    page = client.get("/phonebook")
    assert "Added Bob." in page.text and "49402222222" in page.text
    assert 'name="destination" value="49402222222"' in page.text  # one click calls the entry
    entry = PhoneBookEntry.get(PhoneBookEntry.name == "Bob")
    edit = client.get(f"/phonebook/{entry.id}/edit")
    assert 'value="Bob"' in edit.text
    client.post(
        f"/phonebook/{entry.id}/edit",
        data={"name": "Robert", "number": "4940222222", "csrf_token": logged_in},
    )
    assert "Robert" in client.get("/phonebook?q=rob").text
    assert "Robert" not in client.get("/phonebook?q=carol").text
    client.post(f"/phonebook/{entry.id}/delete", data={"csrf_token": logged_in})
    assert "Your phone book is empty." in client.get("/phonebook").text


def test_the_phone_book_page_shows_what_is_wrong_with_an_entry(
    client: FlaskClient, logged_in: str
) -> None:
    response = client.post(
        "/phonebook", data={"name": "Bob", "number": "call me", "csrf_token": logged_in}
    )
    assert response.status_code == 422
    assert 'id="number-error"' in response.text
    assert "That number has letters in it" in response.text
    assert 'value="Bob"' in response.text  # what was typed is kept


def test_the_phone_book_page_imports_and_exports_csv(client: FlaskClient, logged_in: str) -> None:
    csv_file = (io.BytesIO(b"name,number\nBob,4940222222\n"), "book.csv")
    imported = client.post(
        "/phonebook/import",
        data={"file": csv_file, "csrf_token": logged_in},
        content_type="multipart/form-data",
    )
    assert imported.status_code == 200 and "1 to add, 0 to update" in imported.text
    assert PhoneBookEntry.select().count() == 0  # a preview: nothing imported yet
    confirmed = client.post(
        "/phonebook/import/confirm",
        data={"csv": "name,number\nBob,4940222222\n", "csrf_token": logged_in},
    )
    assert confirmed.headers["Location"] == "/phonebook"
    assert "Imported: 1 added, 0 updated, 0 left as they were." in client.get("/phonebook").text
    assert client.get("/phonebook/export.csv").text == (
        "name,number,label,notes,other_numbers\r\nBob,4940222222,,,\r\n"
    )
    empty = client.post(
        "/phonebook/import", data={"csrf_token": logged_in}, content_type="multipart/form-data"
    )
    assert empty.status_code == 422
    assert "Choose a CSV file to import." in empty.text


def test_the_phone_book_page_refuses_a_number_already_in_the_book(
    client: FlaskClient, logged_in: str
) -> None:
    form = {"name": "Bob", "number": "040 2222222", "csrf_token": logged_in}
    client.post("/phonebook", data=form)
    again = client.post("/phonebook", data={**form, "name": "Bobby", "number": "+49402222222"})
    assert again.status_code == 409
    assert 'id="number-error"' in again.text
    assert "49402222222 is already in your phone book as &#34;Bob&#34;" in again.text
    assert 'value="Bobby"' in again.text  # what was typed is kept
    client.post("/phonebook", data={**form, "name": "Carol", "number": "4989333333"})
    carol = PhoneBookEntry.get(PhoneBookEntry.name == "Carol")
    edited = client.post(f"/phonebook/{carol.id}/edit", data={**form, "name": "Carol"})
    assert edited.status_code == 409
    assert "already in your phone book as &#34;Bob&#34;" in edited.text
    assert PhoneBookEntry.get_by_id(carol.id).number == "4989333333"


def test_the_phone_book_page_refuses_an_import_with_a_line_of_too_many_values(
    client: FlaskClient, logged_in: str
) -> None:
    csv_file = (io.BytesIO(b"name,number\nBob,4940222222\nSmith, John,4940333333\n"), "book.csv")
    refused = client.post(
        "/phonebook/import",
        data={"file": csv_file, "csrf_token": logged_in},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert 'class="error-summary"' in refused.text
    assert "Line 3: it has 3 values but the first line names 2 columns" in refused.text
    assert PhoneBookEntry.select().count() == 0
