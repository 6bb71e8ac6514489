"""The load: phones placing trigger calls, web clients posting callbacks, and what the switch saw.

`Switch` is an ESL client of the simulator, like a second application on a real FreeSWITCH: it
places the trigger calls (`originate {origination_caller_id_number=X}loopback/ACCESS/access
&park()`, as a phone would call in) and records, from the switch's own times, when each call's
trigger arrived, its legs were created and answered, bridged and hung up. It reads them as a CDR
would, from each channel's CHANNEL_HANGUP_COMPLETE (its caller profile's created, answered and
bridged times), plus CHANNEL_BRIDGE to know a held call is up: watching every channel's creation
and answer made the switch build and send 11 events per callback for the load, now 5, and the
simulator's CPU per callback is then closer to what serving the controller costs.
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

EVENTS = ("CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE")


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


def _stamp(event: Any, header: str = "Event-Date-Timestamp") -> float | None:
    """A time the switch reports (epoch microseconds) in seconds; None when it is 0 (never)."""
    micros = int(event.get(header) or 0)
    return micros / 1e6 if micros else None


class Switch:
    """The load's ESL connection to the simulator, and the calls it follows."""

    def __init__(self, port: int) -> None:
        self.calls: dict[str, Call] = {}  # by source number
        self._by_destination: dict[str, Call] = {}
        self._triggers: dict[str, float] = {}  # trigger arrival by caller, until placed
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
        if event.get("Event-Name") == "CHANNEL_BRIDGE":
            self._bridged(event)
        else:
            self._ended(event)

    def _bridged(self, event: Any) -> None:
        """A call is up: note when, and leg B's UUID (its destination hangs it up later)."""
        number = event.get("Caller-Destination-Number") or ""
        call = self.calls.get(number) or self._by_destination.get(number)
        if call is None or call.bridged is not None:
            return
        call.bridged = _stamp(event)
        mine = number == call.destination
        call.b_uuid = event.get("Unique-ID" if mine else "Other-Leg-Unique-ID")

    def _ended(self, event: Any) -> None:
        """A channel's record: the trigger's arrival, leg A's creation, leg B's answer."""
        channel = event.get("Channel-Name") or ""
        number = event.get("Caller-Destination-Number") or ""
        if channel.startswith("loopback/"):
            if channel.endswith("-b") and number == plan.ACCESS_NUMBER:
                call = self.calls.get(event.get("Caller-Caller-ID-Number") or "")
                if call is not None:  # the trigger reached the switch's dialplan
                    call.started = _stamp(event, "Caller-Channel-Created-Time") or call.started
            return
        if not channel.startswith("sofia/gateway/"):
            return
        call = self.calls.get(number)
        if call is not None:
            if call.a_created is None:
                call.a_created = _stamp(event, "Caller-Channel-Created-Time")
            call.ended.add("a")
            return
        call = self._by_destination.get(number)
        if call is not None:
            call.b_uuid = call.b_uuid or event.get("Unique-ID")
            call.b_answered = _stamp(event, "Caller-Channel-Answered-Time")
            call.ended.add("b")

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
