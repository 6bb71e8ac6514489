"""POST /api/v1/switch/cdr as FreeSWITCH's mod_json_cdr uses it: Basic auth, ?uuid=, the
three encodings it can send, and refusals that say what is wrong (the switch posts again and
keeps the CDR on its disk, so nothing is lost). Billing itself: tests/billing and tests/e2e."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from web_helpers import WebPlatform

from esl_callback.models import SwitchCdr

PASSWORD = "cdr-password-for-the-tests-0123"
UUID = "0ff173a0-8402-43c0-a245-a8747619a1e9"
VARIABLES = {"uuid": UUID, "hangup_cause": "NORMAL_CLEARING", "billsec": "8"}
DOCUMENT = {"core-uuid": "dc24fd9b-33b6-4a81-ac3d-9146e92a3648", "variables": VARIABLES}
TEXT = json.dumps(DOCUMENT, separators=(",", ":"))
# The A leg of the recording: encode-values wrote its caller ID's quotes as %22.
QUOTED = {**VARIABLES, "caller_id": "%22Outbound%20Call%22%20%3Cphones%3E"}
QUOTED_TEXT = json.dumps({**DOCUMENT, "variables": QUOTED}, separators=(",", ":"))
BASE64 = "application/x-www-form-base64-encoded"


def basic(password: str = PASSWORD, user: str = "freeswitch") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def switch(platform_with: Callable[..., WebPlatform]) -> FlaskClient:
    return platform_with(cdr={"enabled": True, "password": PASSWORD}).client()


def post(client: FlaskClient, body: str, content_type: str = "application/json", **kw: Any):
    headers = kw.pop("headers", basic())
    query = kw.pop("query", f"?uuid={UUID}")
    return client.post(
        f"/api/v1/switch/cdr{query}", data=body, content_type=content_type, headers=headers
    )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", QUOTED_TEXT),
        # encode=true: one URL-encoding of the whole text, the values' own %XX left alone
        ("application/x-www-form-urlencoded", "cdr=" + quote(TEXT, safe="%")),
        (BASE64, "cdr=" + base64.b64encode(QUOTED_TEXT.encode()).decode()),
    ],
)
def test_each_encoding_the_switch_may_send_is_stored(switch, content_type: str, body: str) -> None:
    answer = post(switch, body, content_type)
    assert (answer.status_code, answer.json) == (
        200,
        {"uuid": UUID, "outcome": "unknown", "deliveries": 1},
    )
    stored = SwitchCdr.get(SwitchCdr.uuid == UUID)
    assert (stored.billsec, stored.hangup_cause) == (8, "NORMAL_CLEARING")


@pytest.mark.parametrize(
    "headers",
    [{}, basic("wrong-password-0123456789"), basic(user="other"), {"Authorization": "Basic %%%"}],
)
def test_without_the_switchs_login_nothing_is_stored(switch, headers: dict[str, str]) -> None:
    answer = post(switch, TEXT, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="esl-callback switch CDR"'
    assert SwitchCdr.select().count() == 0


@pytest.mark.parametrize(
    ("query", "body", "content_type", "message"),
    [
        ("", TEXT, "application/json", "no ?uuid=: mod_json_cdr appends ?uuid=<channel uuid>"),
        ("?uuid=other", TEXT, "application/json", "?uuid=other is not the CDR's own"),
        (f"?uuid={UUID}", TEXT, "text/plain", "Content-Type text/plain is not one"),
        (f"?uuid={UUID}", TEXT[:-1], "application/json", "the CDR is not valid JSON"),
        (f"?uuid={UUID}", "cdr=!!", BASE64, "not base64"),
        (
            f"?uuid={UUID}",
            "cdr=" + quote(QUOTED_TEXT, safe="%"),
            "application/x-www-form-urlencoded",
            "set encode to false in json_cdr.conf.xml",
        ),
    ],
)
def test_what_is_not_a_cdr_is_refused_saying_why(
    switch, query: str, body: str, content_type: str, message: str
) -> None:
    answer = post(switch, body, content_type, query=query)
    assert answer.status_code == 400
    assert message in answer.json["error"]["message"]
    assert SwitchCdr.select().count() == 0


def test_while_cdrs_are_off_the_switch_is_told_to_try_later(
    platform_with: Callable[..., WebPlatform],
) -> None:
    answer = post(platform_with().client(), TEXT)
    assert answer.status_code == 503
    assert "cdr.enabled" in answer.json["error"]["message"]
