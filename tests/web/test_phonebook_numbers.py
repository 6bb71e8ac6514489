"""Phone-book entries with several labelled numbers (API, page, CSV, call form, names), the
import preview that asks before overwriting a contact, and a one-click call to any of an entry's
numbers; on SQLite and PostgreSQL, against the portal the controller serves."""

from __future__ import annotations

import io
import re

from flask.testing import FlaskClient
from web_helpers import BUSY, FRIEND, User, WebPlatform, form_token_from, wait_until_ended

from esl_callback.contact_names import names_of
from esl_callback.models import CallbackRequest, PhoneBookEntry, PhoneBookNumber

MARY = {
    "name": "Mary",
    "numbers": [
        {"label": "mobile", "number": "+49 40 333333"},
        {"label": "work", "number": "+49 40 2222222"},
    ],
}


def add_mary(client: FlaskClient, user: User) -> dict:
    created = client.post("/api/v1/phonebook", json=MARY, headers=user.auth)
    assert created.status_code == 201, created.json
    return created.json


def test_an_entry_keeps_several_labelled_numbers_and_its_first_as_number(
    client: FlaskClient, alice: User
) -> None:
    mary = add_mary(client, alice)

    assert mary["number"] == BUSY and mary["label"] == "mobile"
    assert mary["numbers"] == [
        {"label": "mobile", "number": BUSY},
        {"label": "work", "number": FRIEND},
    ]
    found = client.get("/api/v1/phonebook", query_string={"q": "2222222"}, headers=alice.auth)
    assert [item["name"] for item in found.json["items"]] == ["Mary"]  # by her second number
    assert names_of(alice.account.id, [FRIEND, BUSY]) == {FRIEND: "Mary", BUSY: "Mary"}


def test_an_app_sending_only_number_changes_the_first_and_keeps_the_others(
    client: FlaskClient, alice: User
) -> None:
    """The desktop client sends name, number and notes: an entry's other numbers survive it."""
    mary = add_mary(client, alice)

    changed = client.put(
        f"/api/v1/phonebook/{mary['id']}",
        json={"name": "Mary Jones", "number": "+49 40 7777777", "notes": "new phone"},
        headers=alice.auth,
    )

    assert changed.status_code == 200
    assert changed.json["number"] == "49407777777"
    assert [n["number"] for n in changed.json["numbers"]] == ["49407777777", FRIEND]


def test_a_number_of_another_entry_is_refused_be_it_first_or_not(
    client: FlaskClient, alice: User, bob: User
) -> None:
    add_mary(client, alice)

    again = client.post(
        "/api/v1/phonebook", json={"name": "Office", "number": FRIEND}, headers=alice.auth
    )
    twice = client.post(
        "/api/v1/phonebook",
        json={"name": "Joe", "numbers": [{"number": "4989111"}, {"number": "+49 89 111"}]},
        headers=alice.auth,
    )
    theirs = client.post("/api/v1/phonebook", json=MARY, headers=bob.auth)

    assert again.status_code == 409
    assert again.json["error"]["message"] == (
        f'{FRIEND} is already in your phone book as "Mary": edit that entry instead.'
    )
    assert twice.status_code == 422 and "is given twice" in twice.json["error"]["message"]
    assert theirs.status_code == 201  # another account's book is another book


def test_the_page_adds_and_edits_an_entrys_numbers_and_deleting_removes_them(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    client.post(
        "/phonebook",
        data={
            "name": "Mary",
            "label": "mobile",
            "number": "040 333333",
            "more_label_1": "work",
            "more_number_1": "040 2222222",
            "csrf_token": logged_in,
        },
    )
    mary = PhoneBookEntry.get(PhoneBookEntry.name == "Mary")
    edit = client.get(f"/phonebook/{mary.id}/edit").text
    assert 'id="more_number_1" name="more_number_1" type="tel" value="49402222222"' in edit
    assert 'id="more_number_2"' in edit  # room for one more

    bad = client.post(
        f"/phonebook/{mary.id}/edit",
        data={
            "name": "Mary",
            "number": BUSY,
            "more_number_1": FRIEND,
            "more_number_2": "call me",
            "csrf_token": logged_in,
        },
    )
    assert bad.status_code == 422
    field = re.search(r'<input id="more_number_2"[^>]*>', bad.text).group(0)
    assert 'aria-invalid="true"' in field and "autofocus" in field
    assert 'id="more_number_2-error">That number has letters in it' in bad.text

    client.post(
        f"/phonebook/{mary.id}/edit",
        data={"name": "Mary", "number": BUSY, "more_number_1": "", "csrf_token": logged_in},
    )
    assert PhoneBookNumber.select().count() == 0  # the emptied number is gone
    client.post(
        f"/phonebook/{mary.id}/edit",
        data={"name": "Mary", "number": BUSY, "more_number_1": FRIEND, "csrf_token": logged_in},
    )
    client.post(f"/phonebook/{mary.id}/delete", data={"csrf_token": logged_in})
    assert PhoneBookNumber.select().count() == 0


def test_the_call_form_offers_every_number_of_an_entry(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    add_mary(client, alice)

    page = client.get("/call").text

    assert f'<option value="{BUSY}">Mary (mobile)</option>' in page
    assert f'<option value="{FRIEND}">Mary (work)</option>' in page


def test_csv_keeps_other_numbers_and_reads_files_without_them(
    client: FlaskClient, alice: User, bob: User
) -> None:
    add_mary(client, alice)
    exported = client.get("/api/v1/phonebook.csv", headers=alice.auth).text
    assert exported.splitlines()[1] == f"Mary,{BUSY},mobile,,work: {FRIEND}"

    imported = client.post(
        "/api/v1/phonebook/import", data=exported, content_type="text/csv", headers=bob.auth
    )
    old_style = client.post(
        "/api/v1/phonebook/import",
        data="name,number,notes\nCarol,4989333333,\n",
        content_type="text/csv",
        headers=bob.auth,
    )

    assert imported.json["created"] == 1 and old_style.json["created"] == 1
    entries = client.get("/api/v1/phonebook", headers=bob.auth).json["items"]
    assert [[n["number"] for n in e["numbers"]] for e in entries] == [
        ["4989333333"],
        [BUSY, FRIEND],
    ]


def upload(client: FlaskClient, token: str, text: str):
    return client.post(
        "/phonebook/import",
        data={"file": (io.BytesIO(text.encode()), "book.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )


def test_an_import_is_previewed_and_overwrites_only_the_contacts_ticked(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    add_mary(client, alice)
    client.post(
        "/api/v1/phonebook", json={"name": "Bob", "number": "4930999999"}, headers=alice.auth
    )
    text = (
        "name,number,notes\n"
        f"Mary Jones,{FRIEND},moved\n"  # her work number: an update
        "Bob Builder,4930999999,\n"  # an update left unticked
        "Carol,4989333333,\n"  # new
    )

    preview = upload(client, logged_in, text)

    assert preview.status_code == 200
    assert "1 to add, 2 to update" in preview.text
    assert "Carol" in preview.text and "Overwrite <strong>Mary</strong>" in preview.text
    assert PhoneBookEntry.select().count() == 2  # nothing written yet
    mary = PhoneBookEntry.get(PhoneBookEntry.name == "Mary")
    done = client.post(
        "/phonebook/import/confirm",
        data={"csv": text, "overwrite": [str(mary.id)], "csrf_token": logged_in},
        follow_redirects=True,
    )
    assert "Imported: 1 added, 1 updated, 1 left as they were." in done.text
    assert sorted(e.name for e in PhoneBookEntry.select()) == ["Bob", "Carol", "Mary Jones"]
    mary = PhoneBookEntry.get_by_id(mary.id)
    assert (mary.number, mary.notes) == (BUSY, "moved")  # her numbers are kept


def test_an_import_with_errors_lists_them_at_the_top_and_offers_nothing_to_import(
    client: FlaskClient, alice: User, logged_in: str
) -> None:
    add_mary(client, alice)
    client.post(
        "/api/v1/phonebook", json={"name": "Bob", "number": "4930999999"}, headers=alice.auth
    )
    text = f"name,number,other_numbers\nBad,12ab,\nBoth,{BUSY},4930999999\n"

    page = upload(client, logged_in, text)

    assert page.status_code == 422
    summary = page.text.index('class="error-summary"')
    assert summary < page.text.index("<h1>") + 400  # at the top, under the heading
    assert "Line 2: That number has letters in it" in page.text
    assert "its numbers are in two entries, &#34;Mary&#34; and &#34;Bob&#34;" in page.text
    assert "/phonebook/import/confirm" not in page.text


def test_one_click_on_an_entrys_second_number_calls_it(
    client: FlaskClient, alice: User, logged_in: str, platform: WebPlatform
) -> None:
    add_mary(client, alice)
    page = client.get("/phonebook").text
    assert 'Call<span class="visually-hidden"> Mary work 49402222222</span>' in page

    started = client.post(
        "/call",
        data={
            "destination": FRIEND,
            "mode": "source_first",
            "csrf_token": logged_in,
            "form_token": form_token_from(page),
        },
    )

    assert started.status_code == 302
    request = CallbackRequest.select().order_by(CallbackRequest.id.desc()).first()
    assert request.destination == FRIEND
    assert wait_until_ended(request.id)["outcome"] == "connected"


def test_the_api_refuses_an_import_whose_line_has_numbers_of_two_entries(
    client: FlaskClient, alice: User
) -> None:
    add_mary(client, alice)
    client.post(
        "/api/v1/phonebook", json={"name": "Bob", "number": "4930999999"}, headers=alice.auth
    )

    refused = client.post(
        "/api/v1/phonebook/import",
        data=f"name,number,other_numbers\nBoth,{BUSY},4930999999\nCarol,4989333333,\n",
        content_type="text/csv",
        headers=alice.auth,
    )

    assert refused.status_code == 422
    assert "its numbers are in two entries" in refused.json["error"]["lines"][0]
    assert PhoneBookEntry.select().count() == 2  # nothing imported, Carol neither
