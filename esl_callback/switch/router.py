"""Routes events from every FreeSWITCH node to the call they belong to.

A call is registered under a key (our callback request id) with one handler. Its channels and
bgapi jobs are bound to that key by UUID; an event whose Unique-ID is not bound yet is routed by
our channel variables (`variable_callback_request_id`), and its Unique-ID is bound from then on.
Events no call claims go to the handler registered for their name (Event-Name, or the
Event-Subclass of a CUSTOM event), or are counted and dropped.

Each call (and each event name) has its own lane: a queue drained by a greenlet of its own, which
exists only while the lane has work. Events of one call are handled one after the other in
arrival order; a slow handler only delays its own call. `dispatch` never blocks. A call whose
handler only queues the event for its own greenlet (the dialer's flows) is registered `inline`:
its handler runs within `dispatch`, without a lane.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable

import gevent

from esl_callback.switch.protocol import Frame

log = logging.getLogger(__name__)

Handler = Callable[[Frame, str], None]
ROUTE_VARIABLES = ("variable_callback_request_id",)


class _Lane:
    """Events for one handler, handled in order by one greenlet at a time."""

    def __init__(
        self, label: str, handler: Handler, router: EventRouter, inline: bool = False
    ) -> None:
        self.label = label
        self.handler = handler
        self.inline = inline
        self.router = router
        self.queue: deque[tuple[Frame, str]] = deque()
        self.worker: gevent.Greenlet | None = None

    def push(self, event: Frame, node: str) -> None:
        if self.inline:
            self._handle(event, node)
            return
        self.queue.append((event, node))
        if len(self.queue) > self.router.peak_backlog:
            self.router.peak_backlog = len(self.queue)
        if self.worker is None:
            self.worker = gevent.spawn(self._drain)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def _drain(self) -> None:
        try:
            while self.queue:
                self._handle(*self.queue.popleft())
        finally:
            self.worker = None

    def _handle(self, event: Frame, node: str) -> None:
        try:
            self.handler(event, node)
        except Exception:
            self.router.handler_errors += 1
            log.exception(
                "handler of %s failed on %s for channel %s (node %s)",
                self.label,
                event.get("Event-Name"),
                event.get("Unique-ID"),
                node,
            )


class EventRouter:
    """Hands each event to the handler of its call, or of its name; see the module docstring."""

    def __init__(self, route_variables: Iterable[str] = ROUTE_VARIABLES) -> None:
        self.route_variables = tuple(route_variables)
        self._calls: dict[str, _Lane] = {}
        self._names: dict[str, _Lane] = {}
        self._bindings: dict[str, str] = {}
        self._bound_by_call: dict[str, set[str]] = {}
        self.dispatched = 0
        self.dropped: Counter[str] = Counter()  # by Event-Name
        self.handler_errors = 0
        self.peak_backlog = 0  # the longest any lane's queue has been

    # -- registration ----------------------------------------------------------------------

    def register(self, key: str, handler: Handler, inline: bool = False) -> None:
        """Route the events of call `key` to `handler(event, node)` (replacing an earlier one).

        `inline`: the handler never blocks and runs within `dispatch` (no lane, no greenlet).
        """
        lane = self._calls.get(key)
        if lane is None:
            self._calls[key] = _Lane(f"call {key}", handler, self, inline)
        else:
            lane.handler, lane.inline = handler, inline
        self._bound_by_call.setdefault(key, set())

    def unregister(self, key: str) -> None:
        """Forget call `key` and every UUID bound to it; events already queued still run."""
        self._calls.pop(key, None)
        for bound in self._bound_by_call.pop(key, set()):
            self._bindings.pop(bound, None)

    def bind(self, uuid: str, key: str) -> None:
        """Route events whose Unique-ID (or a BACKGROUND_JOB's Job-UUID) is `uuid` to `key`."""
        if key not in self._calls:
            raise KeyError(f"no call registered as {key!r}")
        self._bindings[uuid] = key
        self._bound_by_call[key].add(uuid)

    def unbind(self, uuid: str) -> None:
        key = self._bindings.pop(uuid, None)
        if key is not None:
            self._bound_by_call.get(key, set()).discard(uuid)

    def on(self, name: str, handler: Handler) -> None:
        """Handle unclaimed events named `name` (Event-Name, or a CUSTOM event's subclass)."""
        self._names[name] = _Lane(f"event {name}", handler, self)

    # -- routing ---------------------------------------------------------------------------

    def call_for(self, event: Frame) -> str | None:
        """The key of the call `event` belongs to, binding its Unique-ID if found by variable."""
        for header in ("Unique-ID", "Job-UUID"):
            value = event.get(header)
            if value and value in self._bindings:
                return self._bindings[value]
        for variable in self.route_variables:
            key = event.get(variable)
            if key and key in self._calls:
                unique_id = event.get("Unique-ID")
                if unique_id:
                    self.bind(unique_id, key)
                return key
        return None

    def dispatch(self, event: Frame, node: str = "") -> None:
        """Queue `event` (from FreeSWITCH node `node`) for its handler; never blocks."""
        key = self.call_for(event)
        lane = self._calls.get(key) if key is not None else None
        if lane is None:
            name = event.get("Event-Name") or ""
            if name == "CUSTOM":
                lane = self._names.get(event.get("Event-Subclass") or "")
            lane = lane or self._names.get(name)
        if lane is None:
            self.dropped[name] += 1
            log.debug(
                "no handler for %s of channel %s (node %s): dropped",
                name,
                event.get("Unique-ID"),
                node,
            )
            return
        self.dispatched += 1
        lane.push(event, node)

    # -- figures ---------------------------------------------------------------------------

    def backlog(self) -> int:
        """The longest queue of events waiting for one handler (for metrics)."""
        lanes = [*self._calls.values(), *self._names.values()]
        return max((len(lane.queue) for lane in lanes), default=0)

    def idle(self) -> bool:
        """True when no registered handler has events queued or running."""
        return not any(lane.busy for lane in [*self._calls.values(), *self._names.values()])

    @property
    def calls(self) -> int:
        return len(self._calls)
