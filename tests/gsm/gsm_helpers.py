"""The GSM gateway agent on a fake modem beside the real platform, for end-to-end tests.

The platform is the SMS tests' (simulator + `esl-callback serve` in-process, its web server on
a real port); the agent runs in this process too, in its own threads, as
`esl-callback gateway-agent` runs it, and opens the fake modem's pty through its symlink.
Tests wait for conditions, yielding to the platform's gevent hub meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from sms_helpers import GATEWAY, TOKEN, SmsPlatform

from esl_callback.gateway_agent.agent import Agent
from esl_callback.gateway_agent.config import AgentSettings, agent_settings
from esl_callback.gateway_agent.fake_modem import FakeModem
from esl_callback.models import CallbackRequest, SmsMessage

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "gsm"
MODEM_NUMBER = "18005550200"  # the gateway phone's number: the caller-ID access number
CALLER = "15550001001"  # alice's mobile
FRIEND = "15550002001"


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Poll `predicate` (yielding to the platform meanwhile) until it returns a true value."""
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while True:
            value = predicate()
            if value:
                return value
            gevent.sleep(0.05)


def settings_for(link: Path, platform_url: str, queue: Path, **sections: Any) -> AgentSettings:
    """Agent settings for a test: quick timings; `sections` override keys per section."""
    data: dict[str, Any] = {
        "platform": {"url": platform_url, "token": TOKEN, "timeout_seconds": 5},
        "modem": {
            "port": str(link),
            "own_number": MODEM_NUMBER,
            "command_timeout_seconds": 3,
            "poll_seconds": 2,
            "caller_id_wait_seconds": 1,
            "reopen_max_seconds": 0.5,
        },
        "queue": {"path": str(queue), "retry_min_seconds": 0.1, "retry_max_seconds": 0.5},
        "status": {"port": 0},
        "logging": {"level": "DEBUG"},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return agent_settings(data, environ={})


@dataclass
class Rig:
    """Platform, fake modem and agent; the agent can be stopped and started again."""

    platform: SmsPlatform
    modem: FakeModem
    settings: AgentSettings
    agent: Agent | None = None
    transcript: list[str] = field(default_factory=list)

    def start_agent(self) -> Agent:
        self.agent = Agent(self.settings, transcript=self.transcript).start()
        return self.agent

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None

    def snapshot(self) -> dict[str, Any]:
        assert self.agent is not None
        return self.agent.snapshot()

    def wait_ready(self, timeout: float = 20) -> None:
        wait_until(lambda: self.snapshot()["modem"]["state"] == "ready", "the modem ready", timeout)

    def wait_queue_empty(self, timeout: float = 20) -> dict[str, Any]:
        return wait_until(
            lambda: self.snapshot()["queue"]["queue_length"] == 0 and self.snapshot(),
            "the queue delivered",
            timeout,
        )

    def wait_sent(self, count: int, timeout: float = 20) -> list[tuple[str, str]]:
        """The SMS the agent sent through the modem, once there are `count`."""
        return wait_until(
            lambda: len(self.modem.sent_messages()) >= count and self.modem.sent_messages(),
            f"{count} SMS sent by the agent",
            timeout,
        )

    def gateway_requests(self) -> list[CallbackRequest]:
        return [r for r in self.platform.requests() if r.trigger == "gateway"]

    def sms_in(self, sender: str) -> list[SmsMessage]:
        return self.platform.db.run(
            lambda: list(
                SmsMessage.select()
                .where(SmsMessage.direction == "in", SmsMessage.source == sender)
                .order_by(SmsMessage.id)
            )
        )

    def items(self) -> list[dict[str, Any]]:
        assert self.agent is not None
        return self.agent.outbox.items()

    def save_transcript(self, name: str) -> Path:
        """The modem's side of the conversation, for reading after the test."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / (re.sub(r"[^\w.-]+", "_", name) + ".txt")
        path.write_text("\n".join(self.modem.transcript) + "\n", encoding="utf-8")
        return path


def sms_channel() -> str:
    return GATEWAY
