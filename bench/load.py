"""The load: phones placing trigger calls, web clients posting callbacks, and what the switch saw.

`Switch` is an ESL client of the simulator, like a second application on a real FreeSWITCH: it
places the trigger calls (`originate {origination_caller_id_number=X}loopback/ACCESS/access
&park()`, as a phone would call in) and records, from the switch's own event timestamps, when
each call's trigger arrived, its legs were created and answered, bridged and hung up.
`WebClients` posts source-first callbacks to the JSON API with API tokens.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.queue import Queue

from bench import plan
from esl_callback.switch.connection import ESLError, InboundConnection

log = logging.getLogger(__name__)

EVENTS = ("CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE")


@dataclass
class Call:
    """One callback of the load, by its source number; times in epoch seconds."""

    source: str
    destination: str
    started: float  # trigger call created on the switch (phone) or POST sent (web)
    a_created: float | None = None
    b_uuid: str | None = None
    b_answered: float | None = None
    bridged: float | None = None
    ended: set[str] = field(default_factory=set)  # legs ("a", "b") hung up
    error: str | None = None  # the load itself failed (originate refused, HTTP error)

    @property
    def completed(self) -> bool:
        """Bridged, and both legs hung up afterwards."""
        return self.bridged is not None and self.ended >= {"a", "b"}

    @property
    def setup_seconds(self) -> float | None:
        return None if self.a_created is None else self.a_created - self.started

    @property
    def bridge_seconds(self) -> float | None:
        if self.bridged is None or self.b_answered is None:
            return None
        return self.bridged - self.b_answered


def _stamp(event: Any) -> float:
    return int(event.get("Event-Date-Timestamp") or 0) / 1e6


class Switch:
    """The load's ESL connection to the simulator, and the calls it follows."""

    def __init__(self, port: int) -> None:
        self.calls: dict[str, Call] = {}  # by source number
        self._by_destination: dict[str, Call] = {}
        self._triggers: dict[str, float] = {}  # trigger arrival by caller, until placed
        self._legs: dict[str, tuple[Call, str]] = {}  # channel uuid -> (call, "a" | "b")
        self.esl = InboundConnection(
            name="load",
            host="127.0.0.1",
            port=port,
            password=plan.SWITCH_PASSWORD,
            events=EVENTS,
            on_event=self.record,
        ).start()
        if not self.esl.wait_connected(10):
            raise RuntimeError(f"the load cannot connect to the simulator on port {port}")

    def follow(self, source: str, destination: str, started: float) -> Call:
        call = Call(source, destination, started)
        self.calls[source] = call
        self._by_destination[destination] = call
        return call

    def place_trigger(self, caller: str) -> None:
        """A phone calls the PIN access number; the call is followed from its arrival."""
        call = self.follow(caller, plan.destination_for(caller), time.time())
        command = (
            f"originate {{origination_caller_id_number={caller}}}"
            f"loopback/{plan.ACCESS_NUMBER}/{plan.ACCESS_CONTEXT} &park()"
        )
        try:
            self.esl.bgapi(command)
        except ESLError as exc:
            call.error = f"originate: {exc}"

    def hang_up(self, call: Call) -> None:
        """The destination of a held call hangs up (the bridged caller follows)."""
        if call.b_uuid is not None:
            try:
                self.esl.api(f"uuid_kill {call.b_uuid} NORMAL_CLEARING")
            except ESLError as exc:
                call.error = f"hangup: {exc}"

    def hang_up_all(self) -> None:
        """Clear the switch after a failed step: calls a controller lost would linger."""
        self.esl.api("hupall NORMAL_CLEARING")

    def record(self, event: Any, node: str) -> None:
        name = event.get("Event-Name")
        uuid = event.get("Unique-ID") or ""
        if name == "CHANNEL_CREATE":
            self._created(event, uuid)
            return
        found = self._legs.get(uuid)
        if found is None:
            return
        call, role = found
        if name == "CHANNEL_ANSWER" and role == "b":
            call.b_answered = _stamp(event)
        elif name == "CHANNEL_BRIDGE":
            call.bridged = _stamp(event)
        elif name == "CHANNEL_HANGUP_COMPLETE":
            call.ended.add(role)
            del self._legs[uuid]

    def _created(self, event: Any, uuid: str) -> None:
        channel = event.get("Channel-Name") or ""
        number = event.get("Caller-Destination-Number") or ""
        if (
            channel.startswith("loopback/")
            and channel.endswith("-b")
            and number == plan.ACCESS_NUMBER
        ):
            call = self.calls.get(event.get("Caller-Caller-ID-Number") or "")
            if call is not None:
                call.started = _stamp(event)  # the trigger reaches the switch's dialplan
            return
        if not channel.startswith("sofia/gateway/"):
            return
        call = self.calls.get(number)
        if call is not None and call.a_created is None:
            call.a_created = _stamp(event)
            self._legs[uuid] = (call, "a")
            return
        call = self._by_destination.get(number)
        if call is not None:
            call.b_uuid = uuid
            self._legs[uuid] = (call, "b")

    def stop(self) -> None:
        self.esl.stop()


class WebClients:
    """Source-first callbacks through POST /api/v1/requests, on keep-alive connections."""

    def __init__(self, port: int, logins: list[plan.WebLogin], connections: int = 32) -> None:
        self.port = port
        self.logins = logins
        self.pool: Queue[http.client.HTTPConnection] = Queue()
        for _ in range(connections):
            self.pool.put(http.client.HTTPConnection("127.0.0.1", port, timeout=30))
        self.response_seconds: list[float] = []

    def post(self, switch: Switch, index: int, held: bool) -> None:
        login = self.logins[index % len(self.logins)]
        serial = index // len(self.logins)
        source = plan.number(plan.WEB_SOURCE, login.account, serial)
        kind = plan.DEST_HELD if held else plan.DEST_SHORT
        destination = plan.number(kind, login.account, serial)
        call = switch.follow(source, destination, time.time())
        body = json.dumps({"source": source, "destination": destination, "mode": "source_first"})
        headers = {"Authorization": f"Bearer {login.token}", "Content-Type": "application/json"}
        connection = self.pool.get()
        try:
            connection.request("POST", "/api/v1/requests", body, headers)
            response = connection.getresponse()
            reply = response.read()
            if response.status != 201:
                call.error = f"HTTP {response.status}: {reply[:200]!r}"
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            call.error = f"HTTP: {exc!r}"
        finally:
            self.response_seconds.append(time.time() - call.started)
            self.pool.put(connection)


def pace(rate: float, seconds: float, start_one: Any) -> int:
    """Call `start_one(i)` in a greenlet of its own, `rate` times a second for `seconds`."""
    count = int(rate * seconds)
    begun = time.monotonic()
    for index in range(count):
        delay = begun + index / rate - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        gevent.spawn(start_one, index)
    return count
