"""Delivers the outbox to the platform, oldest first, with backoff.

A call goes to POST /api/v1/gateway/call (`from`, `to` = the modem's number, `call_id`), an SMS
to POST /api/v1/sms/inbound (`from`, `to`, `text`, `message_id`), with the gateway's token in
`X-Gateway-Token`. The head of the queue is retried until the platform takes it: the platform
down, the network gone, a 5xx or a 401 (a token the platform does not know: fixed there or in
agent.yaml, the queue is still there) or a 404 (a wrong platform.url) are retried after
2, 4, 8 ... seconds up to `queue.retry_max_seconds`; nothing behind it overtakes it. Only a
refusal that no retry can change (400, 413 or 422: the request itself is wrong) takes an item
out of the queue, kept as `refused`. A retry of something the platform did receive is
harmless: the same call id or message id is acted on once.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from esl_callback import __version__
from esl_callback.gateway_agent.config import AgentSettings
from esl_callback.gateway_agent.outbox import Item, Outbox
from esl_callback.gateway_agent.status import AgentStatus

log = logging.getLogger(__name__)

PERMANENT = (400, 413, 422)  # the request itself is wrong: no retry can change that
PATHS = {"call": "/api/v1/gateway/call", "sms": "/api/v1/sms/inbound"}


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: `delivered` (with the answer), `retry` or `refused`."""

    kind: str
    answer: dict[str, Any] | None = None
    error: str | None = None


class Backoff:
    """2, 4, 8 ... seconds (from `low`), at most `high`; back to `low` after a success."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.next = low

    def failed(self) -> float:
        delay, self.next = self.next, min(self.next * 2, self.high)
        return delay

    def succeeded(self) -> None:
        self.next = self.low


class Poster:
    """The delivery loop (`run`, in a thread of its own)."""

    def __init__(
        self, settings: AgentSettings, outbox: Outbox, status: AgentStatus, on_delivered: Any
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.status = status
        self.on_delivered = on_delivered  # wakes the modem: a SIM copy to delete, a reply
        self.new_work = threading.Event()
        self.stopping = threading.Event()
        q = settings.queue
        self.backoff = Backoff(q.retry_min_seconds, q.retry_max_seconds)

    def stop(self) -> None:
        self.stopping.set()
        self.new_work.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            item = self.outbox.next_pending()
            if item is None:
                self.new_work.wait(5)
                self.new_work.clear()
                continue
            outcome = self.deliver(item)
            if outcome.kind == "delivered":
                self.backoff.succeeded()
                answer = outcome.answer or {}
                reply = answer.get("reply") if item.kind == "sms" else None
                self.outbox.delivered(item, answer, reply if isinstance(reply, str) else None)
                self.status.delivered()
                log.info("%s %s delivered: %s", item.kind, item.key, summary(item, answer))
                self.on_delivered()
            elif outcome.kind == "refused":
                self.outbox.refused(item, outcome.error or "")
                self.status.error(f"the platform refused {item.kind} {item.key}: {outcome.error}")
                log.error(
                    "%s %s refused by the platform, not sent again: %s",
                    item.kind,
                    item.key,
                    outcome.error,
                )
                self.on_delivered()  # its SIM copy can go: it is kept in the queue file
            else:
                self.outbox.attempt_failed(item, outcome.error or "")
                delay = self.backoff.failed()
                self.status.platform_down(outcome.error or "")
                log.warning(
                    "%s %s not delivered (attempt %d), next try in %.1f s: %s",
                    item.kind,
                    item.key,
                    item.attempts + 1,
                    delay,
                    outcome.error,
                )
                self.stopping.wait(delay)

    def deliver(self, item: Item) -> Outcome:
        """One attempt at posting `item`."""
        own = self.settings.modem.own_number
        if item.kind == "call":
            body = {"from": item.sender, "to": own, "call_id": item.key}
        else:
            body = {"from": item.sender, "to": own, "text": item.text, "message_id": item.key}
        request = urllib.request.Request(
            self.settings.platform.url.rstrip("/") + PATHS[item.kind],
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Gateway-Token": self.settings.platform.token,
                "User-Agent": f"esl-callback-gateway-agent/{__version__}",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.settings.platform.timeout_seconds
            ) as r:
                return Outcome("delivered", json.loads(r.read() or b"{}"))
        except urllib.error.HTTPError as exc:
            return refusal(exc)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return Outcome(
                "retry", error=f"platform {self.settings.platform.url} not reached: {reason}"
            )


def refusal(exc: urllib.error.HTTPError) -> Outcome:
    """What an error status means for the item."""
    try:
        detail = json.loads(exc.read() or b"{}").get("error", {}).get("message", "")
    except (ValueError, AttributeError, OSError):
        detail = ""
    text = f"HTTP {exc.code}{': ' + detail if detail else ''}"
    if exc.code == 401:
        return Outcome(
            "retry",
            error=f"{text}; the platform does not know this gateway's token: set platform.token "
            "to the token of this gateway in the platform's sms.gateways",
        )
    if exc.code in (404, 405):
        return Outcome(
            "retry",
            error=f"{text}; is platform.url the portal's address (serve's web.port), without a "
            "path? The web portal must be enabled there",
        )
    if exc.code in PERMANENT:
        return Outcome("refused", error=text)
    return Outcome("retry", error=text)


def summary(item: Item, answer: dict[str, Any]) -> str:
    """The platform's answer in a few words (never the SMS text or the reply)."""
    if item.kind == "call":
        parts = [f"request {answer.get('request_id')}", str(answer.get("state"))]
        if answer.get("reason"):
            parts.append(str(answer["reason"]))
    else:
        parts = [
            str(answer.get("action")),
            "a reply to send" if answer.get("reply") else "no reply",
        ]
    if answer.get("duplicate"):
        parts.append("duplicate: acted on before")
    return ", ".join(parts)
