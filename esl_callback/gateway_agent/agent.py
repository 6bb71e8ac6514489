"""The agent wired together: outbox file, modem thread, delivery thread, status server."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from esl_callback.gateway_agent.config import AgentSettings
from esl_callback.gateway_agent.modem import Modem, open_serial
from esl_callback.gateway_agent.outbox import Outbox
from esl_callback.gateway_agent.poster import Poster
from esl_callback.gateway_agent.status import AgentStatus, StatusServer

log = logging.getLogger(__name__)


class Agent:
    """`start` runs it in background threads; `stop` ends them (the queue stays on disk)."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        transcript: list[str] | None = None,
        open_port: Any = open_serial,
    ) -> None:
        self.settings = settings
        self.status = AgentStatus()
        self.outbox = Outbox(Path(settings.queue.path))
        self.poster = Poster(settings, self.outbox, self.status, on_delivered=self._wake_modem)
        self.modem = Modem(
            settings,
            self.outbox,
            self.status,
            on_queued=self.poster.new_work.set,
            transcript=transcript,
            open_port=open_port,
        )
        self.status_server: StatusServer | None = None
        self.threads: list[threading.Thread] = []

    def _wake_modem(self) -> None:
        self.modem.work.set()

    def snapshot(self) -> dict[str, Any]:
        return self.status.snapshot(self.outbox.figures())

    def start(self) -> Agent:
        s = self.settings
        if s.status.enabled:
            self.status_server = StatusServer(s.status.bind, s.status.port, self.snapshot).start()
        for name, target in (("agent-modem", self.modem.run), ("agent-poster", self.poster.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        log.info(
            "gateway agent running: modem %s at %d baud, platform %s, queue %s%s",
            s.modem.port,
            s.modem.baudrate,
            s.platform.url,
            s.queue.path,
            f", status on {s.status_url}/status" if self.status_server else "",
        )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.modem.stop()
        self.poster.stop()
        for thread in self.threads:
            thread.join(timeout)
        if self.status_server is not None:
            self.status_server.stop()
        self.outbox.close()
        log.info("gateway agent stopped")

    def run_until_signalled(self) -> None:
        """Once started: run until SIGTERM or SIGINT, then stop."""
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        while not stopping.wait(1):
            pass
        log.warning(
            "stopping: what is queued stays in %s for the next start", self.settings.queue.path
        )
        self.stop()
