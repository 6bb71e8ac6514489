"""The whole platform in one process for end-to-end tests: simulator + controller service.

Everything talks over real sockets: the controller's inbound ESL connection to the simulator,
the simulator's outbound socket connections to the controller, exactly as with FreeSWITCH.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import gevent
from ports import free_port

from esl_callback.callback import billing, requests
from esl_callback.callback.rating import RateRow, RateSnapshot
from esl_callback.config import Settings, settings_from_mapping
from esl_callback.models import CallbackRequest, Leg
from esl_callback.service import Service
from esl_callback.simulator.config import from_mapping
from esl_callback.simulator.core import Simulator
from esl_callback.switch.connection import InboundConnection

ACCESS_CONTEXT = "access"
PIN_ACCESS = "18005550100"
ANI_ACCESS = "18005550200"


def controller_settings(
    database_url: str,
    switch_ports: list[int],
    outbound_port: int,
    web: dict[str, Any] | None = None,
    billing: dict[str, Any] | None = None,
    routes: list[dict[str, Any]] | None = None,
    cdr: dict[str, Any] | None = None,
    **callback: Any,
) -> Settings:
    """Controller settings pointing at the simulators (nodes sim, sim2, ...); quick timings.

    `web`: the web section (default: the portal off); `billing`: keys added to the billing
    section; `routes`: the routes (default: every number over loopback to the phones);
    `cdr`: the cdr section (the switch's CDRs); `callback`: keys of the callback section.
    """
    nodes = [
        {"name": "sim" if i == 0 else f"sim{i + 1}", "port": port, "password": "test-secret"}
        for i, port in enumerate(switch_ports)
    ]
    return settings_from_mapping(
        {
            "freeswitch": {
                "nodes": nodes,
                "reconnect_min_seconds": 0.2,
                "reconnect_max_seconds": 1,
            },
            "outbound": {"port": outbound_port},
            "database": {"url": database_url},
            "web": web or {"enabled": False},
            "metrics": {"port": free_port()},  # not serve's 9464: a controller may run there
            "callback": {
                "delay_seconds": 0.2,
                "leg_a_retries": 0,
                "retry_delay_seconds": 0.5,
                "originate_timeout_seconds": 6,
                "announce_balance": False,
                **callback,
            },
            "ivr": {"first_digit_timeout_ms": 4000, "inter_digit_timeout_ms": 2000},
            "routes": routes or [{"prefix": "", "template": "loopback/{number}/phones"}],
            "billing": {"warning_seconds_before_hangup": 0, **(billing or {})},
            "cdr": cdr or {},
            "logging": {"level": "DEBUG"},
        },
        environ={},
    )


def simulator_config(
    outbound_port: int,
    phones: dict[str, Any],
    speed: float,
    switch: dict[str, Any] | None = None,
    sounds: dict[str, float] | None = None,
    users: dict[str, Any] | None = None,
    chatplan: dict[str, Any] | None = None,
    json_cdr: dict[str, Any] | None = None,
) -> Any:
    """The simulator with the access numbers' dialplan and `phones` (also behind the sofia
    gateway `carrier`); `switch`: its switch section (e.g. media_frame_ms); `sounds`: how
    long files play (seconds, default 2); `users`: its SIP users (registered phones);
    `chatplan`: what mod_sms does with an incoming SMS (default: no extension); `json_cdr`:
    mod_json_cdr's settings (default: not loaded)."""
    return from_mapping(
        {
            "esl": {"listen": "127.0.0.1:0", "password": "test-secret"},
            "speed": speed,
            "switch": switch or {},
            "sounds": {"files": sounds or {}},
            "users": users or {},
            "chatplan": chatplan or {},
            "dialplan": {
                ACCESS_CONTEXT: [
                    {
                        "name": "callback_triggers",
                        "expression": r"^(1800555\d{4}|1888\d{7})$",
                        "actions": [
                            f"socket 127.0.0.1:{outbound_port} async full",
                            "hangup NORMAL_TEMPORARY_FAILURE",
                        ],
                    }
                ]
            },
            "phones": {"context": "phones", "lines": phones},
            "gateways": {"carrier": {"context": "phones"}},
            "json_cdr": json_cdr or {},
        }
    )


def standard_rates() -> None:
    """1/1 increments so costs are easy to check: 0.60/min in general, 1.20/min to 15550002..."""
    billing.import_rates(
        [
            RateRow(RateSnapshot("1", Decimal("0.60"), Decimal(0), 1, 1), "North America", 2),
            RateRow(RateSnapshot("15550002", Decimal("1.20"), Decimal(0), 1, 1), "Destinations", 3),
        ],
        replace=True,
    )


class Observer:
    """A second, independent ESL client on the simulator recording what ran on which channel.

    Used to check what a caller heard (the prompts played on leg A) without trusting the
    controller's own account of it.
    """

    def __init__(self, sim: Simulator) -> None:
        # (channel name, app or CHANNEL_ANSWER, data), in the order the switch reported them
        self.executed: list[tuple[str, str, str]] = []
        self.connection = InboundConnection(
            name="observer",
            host="127.0.0.1",
            port=sim.port,
            password="test-secret",
            events=["CHANNEL_EXECUTE", "CHANNEL_ANSWER"],
            on_event=self.record,
        ).start()
        assert self.connection.wait_connected(5)

    def record(self, event: Any, node: str) -> None:
        name = event.get("Event-Name")
        self.executed.append(
            (
                event.get("Channel-Name") or "",
                event.get("Application") or "" if name == "CHANNEL_EXECUTE" else name,
                event.get("Application-Data") or "",
            )
        )

    def on_leg_a(self, number: str) -> list[str]:
        """What happened on the callback leg towards `number`: apps run and its answer."""
        channel = f"loopback/{number}-a"
        return [app for name, app, _ in self.executed if name == channel]

    def played(self, number: str) -> list[str]:
        """Sounds played to the callback leg towards `number` (its loopback -a channel), in
        order: by `playback`, or as the prompt of a question (`play_and_get_digits`); the
        sounds of a `file_string://a!b` one by one."""
        channel = f"loopback/{number}-a"
        sounds: list[str] = []
        for name, app, data in self.executed:
            if name != channel:
                continue
            if app == "playback":
                sounds += sounds_of(data)
            elif app == "play_and_get_digits":
                sounds += sounds_of(data.split()[5])
        return sounds

    def questions(self, number: str) -> list[list[str]]:
        """The prompts of the questions (`play_and_get_digits`) asked on the leg to `number`."""
        channel = f"loopback/{number}-a"
        return [
            sounds_of(data.split()[5])
            for name, app, data in self.executed
            if name == channel and app == "play_and_get_digits"
        ]


def sounds_of(prompt: str) -> list[str]:
    """The sounds of a prompt: `file_string://a!b` is a then b."""
    if prompt.startswith("file_string://"):
        return prompt.removeprefix("file_string://").split("!")
    return [prompt]


@dataclass
class Platform:
    sim: Simulator
    service: Service
    observer: Observer
    other_sims: list[Simulator] = field(default_factory=list)

    @property
    def db(self):
        return self.service.db

    def trigger(self, caller: str, number: str) -> str:
        """A phone calls an access number or DID, as a real caller would."""
        return self.sim.place_call(caller, number, ACCESS_CONTEXT)

    def wait_request(
        self, predicate: Callable[[CallbackRequest], bool] | None = None, timeout: float = 30
    ) -> CallbackRequest:
        """The newest request once it satisfies `predicate` (default: it ended)."""
        done = predicate or (lambda r: r.state not in requests.LIVE)
        with gevent.Timeout(timeout, AssertionError("request did not reach the expected state")):
            while True:
                request = self.db.run(
                    lambda: CallbackRequest.select().order_by(CallbackRequest.id.desc()).first()
                )
                if request is not None and done(request):
                    return request
                gevent.sleep(0.05)

    def legs(self, request_id: int) -> list[Leg]:
        """The request's legs in the order they were originated."""
        return self.db.run(requests.legs_of, request_id)

    def requests(self) -> list[CallbackRequest]:
        return self.db.run(lambda: list(CallbackRequest.select().order_by(CallbackRequest.id)))

    def restart_controller(self) -> None:
        """Stop the controller abruptly (no graceful wait) and start a fresh one."""
        settings = self.service.settings
        self.service.stop(timeout=0)
        self.service = Service(settings).start()
        for node in self.service.nodes:
            assert node.wait_connected(5), "restarted controller did not connect"

    def drop_controller_connection(self) -> None:
        """The switch drops the controller's inbound connection (as on a network cut)."""
        for connection in list(self.sim.connections):
            if connection is not None:
                connection.kill()

    def wait_idle(self, timeout: float = 15) -> None:
        """Until the switch has no channel left (every hangup reported)."""
        with gevent.Timeout(timeout, AssertionError(f"channels left: {list(self.sim.channels)}")):
            while self.sim.channels or self.service.dialer.flows:
                gevent.sleep(0.05)


def start_platform(
    database_url: str,
    phones: dict[str, Any],
    speed: float = 1.0,
    nodes: int = 1,
    web: dict[str, Any] | None = None,
    trigger_port: Callable[[int], int] | None = None,
    billing: dict[str, Any] | None = None,
    switch: dict[str, Any] | None = None,
    sounds: dict[str, float] | None = None,
    routes: list[dict[str, Any]] | None = None,
    switch_port: Callable[[int], int] | None = None,
    json_cdr: dict[str, Any] | None = None,
    cdr: dict[str, Any] | None = None,
    **callback: Any,
) -> Platform:
    """Simulators (one per FreeSWITCH node) and a controller connected to all of them.

    `web`: the controller's web section, e.g. to run the portal as serve does; `billing`: keys
    of its billing section; `switch`: the simulators' switch section; `sounds`: how long
    files play on them; `routes`: the controller's routes.
    `trigger_port(outbound_port)`: the port the simulators' dialplan hands trigger calls to
    instead of the controller's (a relay in front of it); callback legs still go straight.
    `switch_port(esl_port)`: the port the controller reaches a simulator's ESL at instead (a
    relay in front of it). `json_cdr`: the simulators' mod_json_cdr settings; `cdr`: the
    controller's cdr section.
    """
    outbound_port = free_port()
    dialplan_port = trigger_port(outbound_port) if trigger_port else outbound_port
    sims = [
        Simulator(
            simulator_config(dialplan_port, phones, speed, switch, sounds, json_cdr=json_cdr)
        ).start()
        for _ in range(nodes)
    ]
    ports = [switch_port(s.port) if switch_port else s.port for s in sims]
    settings = controller_settings(
        database_url, ports, outbound_port, web, billing, routes, cdr, **callback
    )
    service = Service(settings).start()
    for node in service.nodes:
        assert node.wait_connected(5), "controller did not connect to the simulator"
    return Platform(sims[0], service, Observer(sims[0]), sims[1:])
