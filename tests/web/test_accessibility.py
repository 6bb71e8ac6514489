"""Every form control on every page has a label; pages declare their language and viewport."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from flask.testing import FlaskClient
from web_helpers import User

from esl_callback.models import PhoneBookEntry


class Controls(HTMLParser):
    """Collects form controls, the ids labels point at, and the page's basic declarations."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.open_labels = 0
        self.wrapped: list[dict[str, str | None]] = []
        self.html_lang: str | None = None
        self.viewport = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.html_lang = attributes.get("lang")
        if tag == "meta" and attributes.get("name") == "viewport":
            self.viewport = True
        if tag == "label":
            self.open_labels += 1
            if attributes.get("for"):
                self.labelled.add(attributes["for"])
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes)
            if self.open_labels:
                self.wrapped.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1

    def unlabelled(self) -> list[dict[str, str | None]]:
        return [
            c
            for c in self.controls
            if c not in self.wrapped
            and c.get("id") not in self.labelled
            and not c.get("aria-label")
        ]


def parsed(html: str) -> Controls:
    controls = Controls()
    controls.feed(html)
    return controls


@pytest.mark.parametrize(
    "path",
    ["/call", "/phonebook", "/phonebook/{entry}/edit", "/history", "/settings"],
)
def test_every_control_on_the_portal_pages_has_a_label(
    client: FlaskClient, logged_in: str, alice: User, path: str
) -> None:
    entry = PhoneBookEntry.create(account=alice.account, name="Bob", number="4940222222")
    page = parsed(client.get(path.format(entry=entry.id)).text)
    assert page.controls
    assert page.unlabelled() == []
    assert page.html_lang == "en" and page.viewport


def test_the_login_form_is_labelled(client: FlaskClient) -> None:
    page = parsed(client.get("/login").text)
    assert {c["name"] for c in page.controls} == {"username", "password"}
    assert page.unlabelled() == []


def test_every_page_names_an_icon_that_is_served_so_browsers_do_not_ask_for_a_missing_one(
    client: FlaskClient,
) -> None:
    icon = re.search(
        r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', client.get("/login").text
    )
    assert icon is not None
    served = client.get(icon.group(1))
    assert (served.status_code, served.mimetype) == (200, "image/svg+xml")
    assert served.data.startswith(b"<svg")
