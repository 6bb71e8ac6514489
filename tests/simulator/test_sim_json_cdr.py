"""Golden tests of the simulator's mod_json_cdr against FreeSWITCH 1.10.12's own POSTs
(tests/fixtures/freeswitch-wire/http-json-cdr-post.txt and -retry.txt): the same call as
recorded, the same json_cdr.conf.xml settings (the recording's credentials too), and each
request compared with the recorded one: request line and headers byte for byte (after the
channel UUID, the listener's port and the body's length), the body printed the same way, and
its document key for key, in order, with every value equal once UUIDs, numbers, timestamps and
the host name are made neutral."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import yaml
from cdr_capture import ERROR, FIXTURES, Listener, Request, recorded
from sim_client import EslClient

from esl_callback.simulator import Simulator
from esl_callback.simulator.channel import CS_REPORTING
from esl_callback.simulator.config import from_mapping
from esl_callback.simulator.json_cdr import url_encode

SETUP = Path(__file__).resolve().parent / "recording_setup.yaml"
SPEED = 5.0
# The recording's originate (case a of http-json-cdr-post.txt).
A_LEG = "0ff173a0-8402-43c0-a245-a8747619a1e9"
ORIGINATE = (
    f"originate {{origination_uuid={A_LEG},callback_request_id=42,callback_leg=b}}"
    "loopback/15550002001/phones &park()"
)
# The recording's cred: its Authorization header is Basic base64 of this.
CRED = "cdr-test:cdr-test-pw-8199"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{4}-\d\d-\d\d%20\d\d%3A\d\d%3A\d\d")


def neutral(value: Any) -> Any:
    """The document with UUIDs, numbers and local timestamps replaced by what they are."""
    if isinstance(value, dict):
        return {key: neutral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [neutral(item) for item in value]
    if UUID.fullmatch(value):
        return "<uuid>"
    if value.isdigit():
        return "<number>"
    if STAMP.fullmatch(value):
        return "<stamp>"
    return value


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """`neutral`, and what differs by set-up only: the host name (the recording's switch was
    "vm") and the name of the B leg's extension (the recording's dialplan called it
    "dest-answers"; the simulator's phones are named by their numbers)."""
    document = neutral(document)
    document["switchname"] = "<host>"
    if document["variables"].get("loopback_leg") == "B":
        document["callflow"][0]["extension"]["name"] = "<phone>"
    return document


def comparable_head(request: Request) -> list[str]:
    """The request line and headers with the channel UUID and the listener's port made neutral;
    Content-Length must be the body's."""
    head = [UUID.sub("<uuid>", line) for line in request.head]
    head = [re.sub(r"^Host: 127\.0\.0\.1:\d+$", "Host: 127.0.0.1:<port>", line) for line in head]
    assert head[-1] == f"Content-Length: {len(request.body)}"
    return [*head[:-1], "Content-Length: <length of the body>"]


@pytest.fixture
def listener() -> Iterator[Listener]:
    started = Listener().start()
    try:
        yield started
    finally:
        started.stop()


def start_switch(listener: Listener, tmp_path: Path) -> Simulator:
    """The recording's dialplan with the recording's json_cdr.conf.xml (urls on `listener`)."""
    setup = yaml.safe_load(SETUP.read_text())
    setup["esl"] = {"listen": "127.0.0.1:0", "password": "ClueCon"}
    base = f"http://127.0.0.1:{listener.port}"
    setup["json_cdr"] = {
        "urls": [f"{base}/cdr", f"{base}/cdr-failover"],
        "cred": CRED,
        "retries": 2,
        "delay": 2,
        "timeout": 5,
        "err_log_dir": str(tmp_path),
    }
    return Simulator(from_mapping(setup), speed=SPEED).start()


def place_recorded_call(sim: Simulator) -> None:
    client = EslClient(sim.host, sim.port, "ClueCon")
    try:
        assert client.api(ORIGINATE).startswith(f"+OK {A_LEG}")
    finally:
        client.close()


def test_each_channel_posts_its_cdr_as_freeswitch_does_b_leg_first(
    listener: Listener, tmp_path: Path
) -> None:
    sim = start_switch(listener, tmp_path)
    try:
        place_recorded_call(sim)
        posted = listener.wait_for(2)
    finally:
        sim.stop()
    want = [Request(raw) for _, raw in recorded("http-json-cdr-post.txt")[:2]]
    assert [comparable_head(r) for r in posted] == [comparable_head(r) for r in want]
    for got, expected in zip(posted, want, strict=True):
        for request in (got, expected):  # cJSON_PrintUnformatted: one line, no spaces
            printed = json.dumps(request.document, separators=(",", ":"), ensure_ascii=False)
            assert request.body == printed.encode()
        assert comparable(got.document) == comparable(expected.document)
    b_leg, a_leg = (r.document["variables"] for r in posted)
    assert (b_leg["loopback_leg"], a_leg["loopback_leg"], a_leg["uuid"]) == ("B", "A", A_LEG)
    assert posted[0].head[0] == f"POST /cdr?uuid={b_leg['uuid']} HTTP/1.1"
    assert base64.b64decode(posted[0].head[2].split()[-1]).decode() == CRED
    assert not list(tmp_path.iterdir())  # delivered: nothing kept on disk


def test_a_failed_post_is_retried_then_kept_in_err_log_dir_before_the_hangup_completes(
    tmp_path: Path,
) -> None:
    states: list[int] = []
    sim: Simulator | None = None

    def while_posting(request: Request) -> None:
        uuid = re.search(r"uuid=([0-9a-f-]+)", request.head[0]).group(1)
        states.append(sim.channels[uuid].running_state if uuid in sim.channels else -1)

    listener = Listener(ERROR, on_request=while_posting).start()
    try:
        sim = start_switch(listener, tmp_path)
        place_recorded_call(sim)
        posted = listener.wait_for(6)
        files = wait_for_files(tmp_path, 2)
    finally:
        if sim is not None:
            sim.stop()
        listener.stop()
    assert states == [CS_REPORTING] * 6  # CHANNEL_HANGUP_COMPLETE waits for the retries
    by_uuid: dict[str, list[Request]] = {}
    for request in posted:
        uuid = re.search(r"uuid=([0-9a-f-]+)", request.head[0]).group(1)
        by_uuid.setdefault(uuid, []).append(request)
    assert sorted(len(tries) for tries in by_uuid.values()) == [3, 3]  # retries=2: 3 in all
    for tries in by_uuid.values():  # byte-identical but for the url the round robin picked
        assert {re.sub(rb"^POST /cdr(-failover)?", b"", t.raw) for t in tries} == {
            re.sub(rb"^POST /cdr(-failover)?", b"", tries[0].raw)
        }
    recorded_file = recorded_backup("96a69f5d-ea35-461e-b30d-5c280b1a314d.cdr.json")
    assert recorded_file.endswith(b"}\n") and not recorded_file.endswith(b"\n\n")
    for path in files:
        uuid = path.name.removesuffix(".cdr.json")
        assert path.read_bytes() == by_uuid[uuid][0].body + b"\n"
    b_leg = [json.loads(p.read_bytes()) for p in files]
    b_leg = [document for document in b_leg if document["variables"]["loopback_leg"] == "B"]
    assert [comparable(document) for document in b_leg] == [comparable(json.loads(recorded_file))]


def wait_for_files(folder: Path, count: int, timeout: float = 30.0) -> list[Path]:
    with gevent.Timeout(timeout):
        while len(found := sorted(folder.glob("*.cdr.json"))) < count:
            gevent.sleep(0.01)
    return found


def recorded_backup(name: str) -> bytes:
    """The bytes of an err-log-dir file of http-json-cdr-retry.txt."""
    data = (FIXTURES / "http-json-cdr-retry.txt").read_bytes()
    pattern = rb"# BEGIN err-log-dir FILE [^\n]*/" + re.escape(name.encode())
    pattern += rb"\n(?:#[^\n]*\n)*(.*?)#=+\n# END err-log-dir FILE"
    return re.search(pattern, data, re.S).group(1)


def test_url_encode_is_freeswitchs_switch_url_encode() -> None:
    assert url_encode('"Outbound Call" <phones>') == "%22Outbound%20Call%22%20%3Cphones%3E"
    assert url_encode("2026-12-07 18:48:31") == "2026-12-07%2018%3A48%3A31"
    assert url_encode("tone_stream://%(1000,0,440)") == "tone_stream%3A//%25(1000,0,440)"
    assert url_encode("100%2F") == "100%2F"  # an escape already there is kept
    assert url_encode("é") == "%C3%A9"
