"""Following one callback live: a worker thread reading the request's status stream (the one the
portal's status page follows) and handing each snapshot to the UI thread.

Like a browser's EventSource, it connects again after a lost connection (up to `ATTEMPTS`
times in a row, a little later each time) and gets a fresh snapshot; it stops at the stream's
`end` event, when the request has ended and its legs are billed.
"""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QThread, Signal

from esl_callback.desktop.api_client import ApiClient
from esl_callback.desktop.api_errors import ApiError

ATTEMPTS = 5
# The server sends a snapshot at least every 15 s: silence for longer is a lost connection.
READ_TIMEOUT_SECONDS = 40.0


class StatusFollower(QThread):
    """Emits `snapshot(dict)` at each change, then `ended(dict)` with the last one, or
    `lost(str)` when the stream cannot be followed (the reason as a sentence)."""

    snapshot = Signal(object)
    ended = Signal(object)
    lost = Signal(str)

    def __init__(self, client: ApiClient, request_id: int) -> None:
        super().__init__()
        self.client = client
        self.request_id = request_id
        self._stop = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: Any = None

    def run(self) -> None:
        last: dict[str, Any] | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                stream = self.client.status_stream(self.request_id, READ_TIMEOUT_SECONDS)
            except ApiError as exc:
                failures += 1
                if exc.kind in ("signed_out", "not_found") or failures >= ATTEMPTS:
                    self.lost.emit(exc.message)
                    return
                self._stop.wait(failures)  # then connect again
                continue
            with self._stream_lock:
                self._stream = stream
            if self._stop.is_set():
                stream.close()
                return
            try:
                for name, data in stream.events():
                    if name == "status":
                        failures, last = 0, data
                        self.snapshot.emit(data)
                    elif name == "end":
                        self.ended.emit(last)
                        return
            except (OSError, ValueError):
                pass  # connection lost or a garbled event: connect again
            finally:
                stream.close()
            failures += 1  # the stream stopped before its end
            if failures >= ATTEMPTS:
                self.lost.emit("The live status of the call was lost; see it in Recent calls.")
                return
            self._stop.wait(failures - 1)

    def stop(self) -> None:
        """Stop following (from the UI thread); returns at once, the thread ends soon after."""
        self._stop.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.close()
