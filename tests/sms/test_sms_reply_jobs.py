"""How a FreeSWITCH SMS reply is sent and stored, with a stand-in node: `bgapi chat`, the result
stored when the BACKGROUND_JOB comes (or the reason there is none), a failure logged once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gevent
import pytest

from esl_callback.config import settings_from_mapping
from esl_callback.db import Database
from esl_callback.models import SmsMessage
from esl_callback.sms import SmsService
from esl_callback.switch.connection import Job, NotConnected
from esl_callback.switch.protocol import Frame

SMS_NUMBER = "18005550300"
SENDER = "15550001001"


@dataclass
class Node:
    """An InboundConnection as the reply uses it: `bgapi` only (an `api` would fail the test)."""

    name: str = "fs1"
    fails: Exception | None = None
    jobs: list[Job] = field(default_factory=list)

    def bgapi(self, command: str) -> Job:
        if self.fails is not None:
            raise self.fails
        job = Job(f"job-{len(self.jobs)}", command)
        self.jobs.append(job)
        return job


@dataclass
class Dialer:
    nodes: list[Node]


def message_event() -> Frame:
    return Frame(
        [
            ("Event-Name", "MESSAGE"),
            ("proto", "sip"),
            ("from", f"{SENDER}@127.0.0.1"),
            ("to", f"{SMS_NUMBER}@127.0.0.1"),
        ]
    )


def service(db: Database, node: Node) -> SmsService:
    settings = settings_from_mapping({"sms": {"enabled": True, "numbers": [SMS_NUMBER]}}, {})
    return SmsService(db, settings, Dialer([node]))


def stored(db: Database) -> list[tuple[str, str, str]]:
    rows = db.run(lambda: list(SmsMessage.select().where(SmsMessage.direction == "out")))
    return [(row.destination, row.action, row.reply) for row in rows]


def background_job(job: Job, body: bytes) -> Frame:
    return Frame([("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", job.uuid)], body)


@pytest.mark.parametrize(
    ("body", "action"),
    [(b"Sent", "sent"), (b"Error! Message Not Sent", "not_sent: Error! Message Not Sen")],
)
def test_the_reply_goes_with_bgapi_and_is_stored_when_its_job_reports(
    db: Database, caplog, body, action
) -> None:
    node = Node()
    sms = service(db, node)

    sms.chat_reply(message_event(), "fs1", "Your balance is 10.00 EUR.")
    (job,) = node.jobs
    gevent.idle()  # whatever was ready to run has run: the reply waits for its job
    before = stored(db)
    job.complete(background_job(job, body))
    sms.replies.join(5)

    assert job.command == (
        f"chat sip|{SMS_NUMBER}@127.0.0.1|{SENDER}@127.0.0.1|Your balance is 10.00 EUR."
    )
    assert before == []  # nothing waited for the switch's answer
    assert stored(db) == [(f"{SENDER}@127.0.0.1", action, body.decode())]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == (0 if body == b"Sent" else 1)


def test_a_reply_the_switch_cannot_take_or_never_reports_is_stored_as_not_sent_once(
    db: Database, caplog
) -> None:
    down = service(db, Node(fails=NotConnected("fs1: not connected to 127.0.0.1:8021")))
    node = Node()
    stopping = service(db, node)

    down.chat_reply(message_event(), "fs1", "one")
    stopping.chat_reply(message_event(), "fs1", "two")
    node.jobs[0].give_up(NotConnected("fs1: connection stopped"))
    stopping.finish(timeout=5)

    reasons = ["-ERR fs1: not connected to 127.0.0.1:8021", "-ERR fs1: connection stopped"]
    assert [(action, reply) for _, action, reply in stored(db)] == [
        (f"not_sent: {reason}"[:32], reason)
        for reason in reasons  # the action column's 32
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all("not sent: -ERR fs1:" in w for w in warnings)
