"""Placing, following and cancelling one callback at a time, for the window.

Placing asks for the quote first (in the same worker task): a call the quote refuses (balance
too low, a number not allowed, no price) is not placed, and the panel says why. Then the
request is started and its status stream followed (`live_status.StatusFollower`); the panel
takes no second call until it has ended. The notifier tells when the call connects or fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from esl_callback.desktop.api_client import ApiClient
from esl_callback.desktop.api_errors import REFUSALS, ApiError
from esl_callback.desktop.call_panel import CallPanel
from esl_callback.desktop.live_call_view import LiveCallView
from esl_callback.desktop.live_status import StatusFollower
from esl_callback.desktop.notifier import Notifier
from esl_callback.desktop.tasks import TaskRunner
from esl_callback.desktop.wording import amount, number_with_name


def refusal_sentence(quote: dict[str, Any]) -> str:
    """Why a quote refuses the call, as a sentence (with the money available when it is that)."""
    code = quote["refusal"]
    text = REFUSALS.get(code) or f"This call cannot be placed: {quote['refusal_words']}."
    if code == "balance_too_low":
        text += f" Available: {amount(quote['available'], quote['currency'])}."
    return text


def place(client: ApiClient, order: tuple[str, str, str]) -> dict[str, Any]:
    """On a worker: the quote, and the call started if the quote allows it."""
    quote = client.quote(*order)
    if not quote["allowed"]:
        return {"quote": quote, "started": None}
    return {"quote": quote, "started": client.start_callback(*order)}


class CallController(QObject):
    """Emits `status(snapshot)` at each change, `ended(snapshot)` once a call is over and
    `problem(ApiError)` for what the window should show or do (signed out)."""

    status = Signal(object)
    ended = Signal(object)
    problem = Signal(object)

    def __init__(
        self,
        client: Callable[[], ApiClient],
        tasks: TaskRunner,
        panel: CallPanel,
        view: LiveCallView,
        notifier: Notifier,
    ) -> None:
        super().__init__(panel)
        self.client, self.tasks, self.panel, self.view = client, tasks, panel, view
        self.notifier = notifier
        self.follower: StatusFollower | None = None
        self.names: dict[str, str] = {}  # number -> name, from the phone book
        self._stopping: set[StatusFollower] = set()
        self._connected_told = False
        panel.quote_wanted.connect(self.quote)
        panel.call_wanted.connect(self.place)
        view.cancel_wanted.connect(self.cancel)

    @property
    def live(self) -> bool:
        return self.follower is not None

    # -- quote ------------------------------------------------------------------------------

    def quote(self, order: tuple[str, str, str]) -> None:
        def shown(quote: dict[str, Any]) -> None:
            if self.panel.order() == order:  # still what the panel holds
                refusal = None if quote["allowed"] else refusal_sentence(quote)
                self.panel.show_quote(quote, refusal)

        def failed(error: ApiError) -> None:
            if error.kind == "signed_out":
                self.problem.emit(error)
            elif self.panel.order() == order:
                self.panel.show_error(error.message)

        self.tasks.run(self.client().quote, *order, done=shown, failed=failed)

    # -- placing ----------------------------------------------------------------------------

    def place(self, order: tuple[str, str, str]) -> None:
        if self.live:
            self.panel.show_error("A call is in progress: end it before placing another.")
            return
        self.panel.set_calling(True)
        self.panel.show_error("")
        self.tasks.run(place, self.client(), order, done=self._placed, failed=self._not_placed)

    def _placed(self, outcome: dict[str, Any]) -> None:
        quote, snap = outcome["quote"], outcome["started"]
        if snap is None:  # the quote says why, where the price would be
            self.panel.set_calling(False)
            self.panel.show_quote(quote, refusal_sentence(quote))
            return
        self.panel.show_quote(quote)
        self._connected_told = False
        self._show(snap)
        follower = StatusFollower(self.client(), snap["id"])
        follower.snapshot.connect(self._show)
        follower.ended.connect(self._ended)
        follower.lost.connect(self._lost)
        self.follower = follower
        follower.start()

    def _not_placed(self, error: ApiError) -> None:
        self.panel.set_calling(False)
        self.panel.show_error(error.message)
        if error.kind == "signed_out":
            self.problem.emit(error)

    # -- following --------------------------------------------------------------------------

    def _show(self, snap: dict[str, Any]) -> None:
        self.view.show_status(snap)
        self.status.emit(snap)
        if snap["state"] == "bridged" and not self._connected_told:
            self._connected_told = True
            whom = number_with_name(snap["destination"], self.names)
            self.notifier.notify("Call connected", f"You are connected to {whom}.")

    def _ended(self, snap: dict[str, Any] | None) -> None:
        self._stop_following()
        if snap is None:
            return
        self._show(snap)
        if snap["state"] == "failed":
            why = snap.get("failure_words") or snap["state_words"]
            whom = number_with_name(snap["destination"], self.names)
            self.notifier.notify("Call failed", f"The call to {whom} failed: {why}.", failed=True)
        self.ended.emit(snap)

    def _lost(self, message: str) -> None:
        self._stop_following()
        self.problem.emit(ApiError(message, "lost"))

    def _stop_following(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
            # Kept until its thread has finished: a QThread must not be freed while it runs.
            if not follower.isFinished():
                self._stopping.add(follower)
                follower.finished.connect(lambda: self._stopping.discard(follower))
        self.panel.set_calling(False)

    # -- cancelling -------------------------------------------------------------------------

    def cancel(self, request_id: int) -> None:
        def refused(error: ApiError) -> None:
            if error.kind != "conflict":  # 409: it has ended already; the stream says how
                self.view.cancelling(False)
                self.problem.emit(error)

        self.tasks.run(self.client().cancel, request_id, failed=refused)

    def close(self) -> None:
        """Stop following (the window closes or signs out); the call itself goes on."""
        self._stop_following()
        for follower in list(self._stopping):
            follower.wait(5000)
